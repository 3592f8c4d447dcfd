// RUN: pyflame-opt %s -p expand-quant --cpu x86-64-v3 | filecheck %s --check-prefix=KERNELS
// RUN: pyflame-opt %s -p expand-quant --cpu x86-64 | filecheck %s --check-prefix=NONE

// A target with int8 kernels (AVX2's vpmaddwd path and up) keeps DynamicQuantizeLinear and a
// MatMulInteger by a constant int8 weight of zero point 0; one without (SSE2) expands both.
// KERNELS:     %q, %s, %z = quant.dynamic_quantize %x
// KERNELS:     %y = quant.matmul_integer %q, %w zero_points(%z, %wz)
// NONE-NOT:    quant.
// NONE:        %y = graph.cast %{{.*}} to int32
func.func @main(%x: tensor<2x8xf32>) -> tensor<2x4xi32> {
  %w = graph.constant {value = dense<3> : tensor<8x4xi8>} : tensor<8x4xi8>
  %wz = graph.constant {value = dense<0> : tensor<i8>} : tensor<i8>
  %q, %s, %z = quant.dynamic_quantize %x : (tensor<2x8xf32>) -> (tensor<2x8xui8>, tensor<f32>, tensor<ui8>)
  %y = quant.matmul_integer %q, %w zero_points(%z, %wz) : (tensor<2x8xui8>, tensor<8x4xi8>, tensor<ui8>, tensor<i8>) -> tensor<2x4xi32>
  func.return %y : tensor<2x4xi32>
}
