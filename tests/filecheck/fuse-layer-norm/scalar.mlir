// RUN: pyflame-opt %s -p fuse-layer-norm | filecheck %s

// A multiply-add of scalars (run-time shape arithmetic) has no dims to normalize: left as it is.
// CHECK-LABEL: func.func @main
// CHECK:      %[[M:.*]] = graph.mul %x, %c
// CHECK-NEXT: %[[Y:.*]] = graph.add %[[M]], %c
// CHECK-NEXT: func.return %[[Y]]
func.func @main(%x: tensor<i64> {graph.name = "x", graph.dims = []}) -> (tensor<i64> {graph.name = "y", graph.dims = []}) {
  %c = graph.constant {value = dense<2> : tensor<i64>} : tensor<i64>
  %m = graph.mul %x, %c : (tensor<i64>, tensor<i64>) -> tensor<i64>
  %y = graph.add %m, %c : (tensor<i64>, tensor<i64>) -> tensor<i64>
  func.return %y : tensor<i64>
}
