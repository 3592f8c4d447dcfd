// RUN: not pyflame-opt %s 2>&1 | filecheck %s

// CHECK: graph.gru: r must be [1, 6, 2]
func.func @main(%x: tensor<5x1x3xf32>, %w: tensor<1x6x3xf32>, %r: tensor<1x6x3xf32>) -> (tensor<5x1x1x2xf32>, tensor<1x1x2xf32>) {
  %y, %y_h = "graph.gru"(%x, %w, %r) <{hidden_size = 2 : i64, activations = ["sigmoid", "tanh"], activation_alpha = array<f32: 0.0, 0.0>, activation_beta = array<f32: 0.0, 0.0>, operandSegmentSizes = array<i32: 1, 1, 1, 0, 0, 0>}> : (tensor<5x1x3xf32>, tensor<1x6x3xf32>, tensor<1x6x3xf32>) -> (tensor<5x1x1x2xf32>, tensor<1x1x2xf32>)
  func.return %y, %y_h : tensor<5x1x1x2xf32>, tensor<1x1x2xf32>
}
