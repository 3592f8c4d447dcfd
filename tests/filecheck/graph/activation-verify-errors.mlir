// RUN: not pyflame-opt %s 2>&1 | filecheck %s

// A fused activation's parameter count is checked against its kind.
// CHECK: activation clip takes 2 parameters (min, max), got 1
func.func @main(%x: tensor<4xf32>, %y: tensor<4xf32>) -> tensor<4xf32> {
  %z = graph.add %x, %y {activation = #graph.activation<clip, 1.0>} : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
  func.return %z : tensor<4xf32>
}
