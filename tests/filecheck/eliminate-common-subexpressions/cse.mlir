// RUN: pyflame-opt %s -p eliminate-common-subexpressions | filecheck %s

// Same op, operands and properties: one node. Different properties: two.
// CHECK-LABEL: func.func @main
// CHECK:      %[[A:.*]] = graph.add %x, %x
// CHECK-NEXT: %[[G1:.*]] = graph.gemm %[[A]], %w {trans_b = true}
// CHECK-NEXT: %[[G2:.*]] = graph.gemm %[[A]], %w {trans_b = true, alpha = 2.000000e+00 : f32}
// CHECK-NEXT: %[[S:.*]] = graph.add %[[G1]], %[[G1]]
// CHECK-NEXT: %[[T:.*]] = graph.add %[[S]], %[[G2]]
// CHECK-NEXT: func.return %[[T]]
func.func @main(%x: tensor<?x4xf32> {graph.name = "x", graph.dims = ["batch", "4"]}) -> (tensor<?x4xf32> {graph.name = "y", graph.dims = ["batch", "4"]}) {
  %w = graph.constant @w : tensor<4x4xf32>
  %w2 = graph.constant @w : tensor<4x4xf32>
  %a1 = graph.add %x, %x : (tensor<?x4xf32>, tensor<?x4xf32>) -> tensor<?x4xf32>
  %a2 = graph.add %x, %x : (tensor<?x4xf32>, tensor<?x4xf32>) -> tensor<?x4xf32>
  %g1 = graph.gemm %a1, %w {trans_b = true} : (tensor<?x4xf32>, tensor<4x4xf32>) -> tensor<?x4xf32>
  %g2 = graph.gemm %a2, %w2 {trans_b = true} : (tensor<?x4xf32>, tensor<4x4xf32>) -> tensor<?x4xf32>
  %g3 = graph.gemm %a2, %w2 {trans_b = true, alpha = 2.0 : f32} : (tensor<?x4xf32>, tensor<4x4xf32>) -> tensor<?x4xf32>
  %s = graph.add %g1, %g2 : (tensor<?x4xf32>, tensor<?x4xf32>) -> tensor<?x4xf32>
  %t = graph.add %s, %g3 : (tensor<?x4xf32>, tensor<?x4xf32>) -> tensor<?x4xf32>
  func.return %t : tensor<?x4xf32>
}
