// RUN: pyflame-opt %s -p fuse-activation | filecheck %s
// RUN: pyflame-opt %s -O2 | filecheck %s --check-prefix=O2

// Relu moves into the producer's `activation` when that op has the slot and the Relu is its only user.
// CHECK-LABEL: func.func @main
// CHECK:      %[[G:.*]] = graph.gemm %x, %w, %b {trans_b = true, activation = #graph.activation<relu>}
// CHECK-NEXT: %[[A:.*]] = graph.add %[[G]], %[[G]] {activation = #graph.activation<relu>}
// Sub has no activation slot; a Relu of a value with two users stays.
// CHECK-NEXT: %[[S:.*]] = graph.sub %[[A]], %x
// CHECK-NEXT: %[[R:.*]] = graph.relu %[[S]]
// CHECK-NEXT: %[[A2:.*]] = graph.add %[[R]], %x
// CHECK-NEXT: %[[R2:.*]] = graph.relu %[[A2]]
// CHECK-NEXT: func.return %[[R2]], %[[A2]]

// At -O2, MatMul + Add + Relu -> one Gemm with C and the fused relu.
// O2: graph.gemm %x, %w, %b {trans_b = true, activation = #graph.activation<relu>}
// O2-NOT: graph.relu %{{.*}}G
func.func @main(%x: tensor<?x4xf32> {graph.name = "x", graph.dims = ["n", "4"]}) -> (tensor<?x4xf32> {graph.name = "y", graph.dims = ["n", "4"]}, tensor<?x4xf32> {graph.name = "z", graph.dims = ["n", "4"]}) {
  %w = graph.constant {value = dense<0.5> : tensor<4x4xf32>} : tensor<4x4xf32>
  %b = graph.constant {value = dense<1.0> : tensor<4xf32>} : tensor<4xf32>
  %g = graph.gemm %x, %w, %b {trans_b = true} : (tensor<?x4xf32>, tensor<4x4xf32>, tensor<4xf32>) -> tensor<?x4xf32>
  %gr = graph.relu %g : (tensor<?x4xf32>) -> tensor<?x4xf32>
  %a = graph.add %gr, %gr : (tensor<?x4xf32>, tensor<?x4xf32>) -> tensor<?x4xf32>
  %ar = graph.relu %a : (tensor<?x4xf32>) -> tensor<?x4xf32>
  %s = graph.sub %ar, %x : (tensor<?x4xf32>, tensor<?x4xf32>) -> tensor<?x4xf32>
  %sr = graph.relu %s : (tensor<?x4xf32>) -> tensor<?x4xf32>
  %a2 = graph.add %sr, %x : (tensor<?x4xf32>, tensor<?x4xf32>) -> tensor<?x4xf32>
  %a2r = graph.relu %a2 : (tensor<?x4xf32>) -> tensor<?x4xf32>
  func.return %a2r, %a2 : tensor<?x4xf32>, tensor<?x4xf32>
}
