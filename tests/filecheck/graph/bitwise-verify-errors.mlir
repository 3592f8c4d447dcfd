// RUN: not pyflame-opt %s 2>&1 | filecheck %s

// CHECK: graph.bitwise_or needs integer tensors, got float32
func.func @main(%x: tensor<4xf32>, %y: tensor<4xf32>) -> tensor<4xf32> {
  %z = graph.bitwise_or %x, %y : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
  func.return %z : tensor<4xf32>
}
