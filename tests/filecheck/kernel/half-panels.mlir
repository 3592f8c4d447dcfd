// RUN: pyflame-opt %s -p convert-to-bf16 --to kernel --cpu x86-64-v3 | filecheck %s --check-prefix=BF16
// RUN: pyflame-opt %s -p convert-to-fp16 --to kernel --cpu x86-64-v3 | filecheck %s --check-prefix=FP16
// RUN: pyflame-opt %s --to kernel --cpu x86-64-v3 | filecheck %s --check-prefix=FP32

// A MatMul of a half-precision model runs the GEMM kernel of its half panels: the weight is packed
// at compile time in the half type (16 x 8 padded to one 16-column panel: 512 bytes, not 1024),
// widened to float32 in the kernel (AVX2 has no bf16 dot product). The float32 model keeps
// float32 panels.
func.func @main(%x: tensor<?x16xf32> {graph.name = "x", graph.dims = ["batch", "16"]}) -> (tensor<?x8xf32> {graph.name = "y", graph.dims = ["batch", "8"]}) {
  %w = graph.constant {value = dense<0.5> : tensor<16x8xf32>} : tensor<16x8xf32>
  %y = graph.matmul %x, %w : (tensor<?x16xf32>, tensor<16x8xf32>) -> tensor<?x8xf32>
  func.return %y : tensor<?x8xf32>
}

// BF16:     func.func public @gemm_{{[^(]*}}_bf16(
// BF16:     kernel.weight "packed_b" 512 bytes
// BF16:     kernel.launch @gemm_{{[^(]*}}_bf16(

// FP16:     func.func public @gemm_{{[^(]*}}_f16(
// FP16:     kernel.weight "packed_b" 512 bytes
// FP16:     kernel.launch @gemm_{{[^(]*}}_f16(

// FP32:     func.func public @gemm_{{[^(]*}}_k576m24n16(
// FP32:     kernel.weight "packed_b" 1024 bytes
