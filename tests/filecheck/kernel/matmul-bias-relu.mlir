// RUN: pyflame-opt %s --to kernel --cpu x86-64-v3 | filecheck %s

// MatMul + bias + Relu (fused into one Gemm by the optimizer): the kernel level names the
// io tensors, the packed weight and the padded bias, computes the GEMM's blocking from the
// batch dim with index arithmetic, and launches one GEMM kernel whose epilogue adds the bias
// and applies the Relu, writing straight into the output slot.
func.func @main(%x: tensor<?x16xf32> {graph.name = "x", graph.dims = ["batch", "16"]}) -> (tensor<?x8xf32> {graph.name = "y", graph.dims = ["batch", "8"]}) {
  %w = graph.constant {value = dense<0.5> : tensor<16x8xf32>} : tensor<16x8xf32>
  %b = graph.constant {value = dense<1.0> : tensor<8xf32>} : tensor<8xf32>
  %m = graph.matmul %x, %w : (tensor<?x16xf32>, tensor<16x8xf32>) -> tensor<?x8xf32>
  %a = graph.add %m, %b : (tensor<?x8xf32>, tensor<8xf32>) -> tensor<?x8xf32>
  %y = graph.relu %a : (tensor<?x8xf32>) -> tensor<?x8xf32>
  func.return %y : tensor<?x8xf32>
}

// CHECK:      func.func public @gemm_{{.*}}_b_relu_{{.*}}(%{{.*}}: !llvm.ptr, %{{.*}}: i64, %{{.*}}: i64)
// CHECK:      kernel.schedule @model dims ["batch"] attributes {op_summary = {gemm = 1 : i64}} {
// CHECK-NEXT:   %[[X:.*]] = kernel.io input 0 "x" ["batch", "16"] "float32"
// CHECK-NEXT:   %[[Y:.*]] = kernel.io output 1 "y" ["batch", "8"] "float32"
// CHECK-NEXT:   %{{.*}} = kernel.io status 2 "status" [] "int64"
// CHECK-NEXT:   %[[W:.*]] = kernel.weight "packed_b" 1024 bytes
// CHECK-NEXT:   %[[B:.*]] = kernel.weight "bias" 64 bytes
// CHECK-NEXT:   %[[M:.*]] = kernel.dim "batch"
// CHECK:        %{{.*}} = arith.ceildivsi %[[M]], %{{.*}} : index
// CHECK:        kernel.launch @gemm_{{.*}}_b_relu_{{.*}}(%[[X]], %[[W]], %[[Y]], %[[B]], %[[M]], {{.*}}) items(%{{.*}}) grain(%{{.*}}) for "gemm#1" : !kernel.buffer, !kernel.buffer, !kernel.buffer, !kernel.buffer, index,
// CHECK-NOT:    kernel.launch
// CHECK:      }
