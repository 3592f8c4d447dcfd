// RUN: pyflame-opt %s -p fuse-matmul-add,fuse-activation,eliminate-common-subexpressions | filecheck %s

// `graph.node` names the ONNX node an op computes (shape errors name it). A fused op keeps the
// name of the op whose requirements it takes over (the MatMul's, not the Add's); CSE merges ops
// that differ only in their names and keeps the first one's.
// CHECK-LABEL: func.func @main
// CHECK:      %[[G:.*]] = graph.gemm %x, %w, %b {graph.node = "mm", activation = #graph.activation<relu>} :
// CHECK-NEXT: %[[N:.*]] = graph.neg %[[G]] {graph.node = "neg1"} :
// CHECK-NEXT: func.return %[[N]], %[[N]]
func.func @main(%x: tensor<?x8xf32> {graph.name = "x", graph.dims = ["n", "8"]}) -> (tensor<?x4xf32> {graph.name = "y", graph.dims = ["n", "4"]}, tensor<?x4xf32> {graph.name = "z", graph.dims = ["n", "4"]}) {
  %w = graph.constant {value = dense<0.5> : tensor<8x4xf32>} : tensor<8x4xf32>
  %b = graph.constant {value = dense<[1.0, 2.0, 3.0, 4.0]> : tensor<4xf32>} : tensor<4xf32>
  %m = graph.matmul %x, %w {graph.node = "mm"} : (tensor<?x8xf32>, tensor<8x4xf32>) -> tensor<?x4xf32>
  %a = graph.add %m, %b {graph.node = "bias"} : (tensor<?x4xf32>, tensor<4xf32>) -> tensor<?x4xf32>
  %r = graph.relu %a {graph.node = "act"} : (tensor<?x4xf32>) -> tensor<?x4xf32>
  %n1 = graph.neg %r {graph.node = "neg1"} : (tensor<?x4xf32>) -> tensor<?x4xf32>
  %n2 = graph.neg %r {graph.node = "neg2"} : (tensor<?x4xf32>) -> tensor<?x4xf32>
  func.return %n1, %n2 : tensor<?x4xf32>, tensor<?x4xf32>
}
