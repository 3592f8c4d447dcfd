// RUN: not pyflame-opt %s 2>&1 | filecheck %s

// CHECK: pow needs a float base and exponent of one type, or an integer base and an int64 or float exponent
func.func @main(%x: tensor<4xi32>, %e: tensor<4xi32>) -> tensor<4xi32> {
  %y = graph.pow %x, %e : (tensor<4xi32>, tensor<4xi32>) -> tensor<4xi32>
  func.return %y : tensor<4xi32>
}
