// RUN: not pyflame-opt %s 2>&1 | filecheck %s

// CHECK: graph.is_nan: operand must be a float tensor, got int32
func.func @main(%x: tensor<4xi32>) -> tensor<4xi1> {
  %z = graph.is_nan %x : (tensor<4xi32>) -> tensor<4xi1>
  func.return %z : tensor<4xi1>
}
