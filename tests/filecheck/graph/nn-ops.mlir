// RUN: pyflame-opt %s | filecheck %s
// RUN: pyflame-opt %s | pyflame-opt | filecheck %s

// CHECK-LABEL: func.func @main
func.func @main(%x: tensor<?x3x8x8xf32> {graph.name = "x", graph.dims = ["batch", "3", "8", "8"]}) -> (tensor<?x12x4x4xf32> {graph.name = "y", graph.dims = ["batch", "12", "4", "4"]}) {
  %w = graph.constant @w : tensor<8x3x3x3xf32>
  %b = graph.constant @b : tensor<8xf32>
  %s = graph.constant @s : tensor<8xf32>
  // CHECK: graph.conv %{{.*}}, %{{.*}}, %{{.*}} strides [1, 1] dilations [1, 1] pads [1, 1, 1, 1] activation <relu> : (tensor<?x3x8x8xf32>, tensor<8x3x3x3xf32>, tensor<8xf32>) -> tensor<?x8x8x8xf32>
  %c = graph.conv %x, %w, %b strides [1, 1] dilations [1, 1] pads [1, 1, 1, 1] activation <relu> : (tensor<?x3x8x8xf32>, tensor<8x3x3x3xf32>, tensor<8xf32>) -> tensor<?x8x8x8xf32>
  // A residual operand (after the optional bias, named by a keyword) and the default group stay implicit.
  // CHECK: graph.conv %{{.*}}, %{{.*}} residual %{{.*}} : tensor<?x8x8x8xf32> strides [1, 1] dilations [1, 1] pads [1, 1, 1, 1] : (tensor<?x8x8x8xf32>, tensor<8x8x3x3xf32>) -> tensor<?x8x8x8xf32>
  %w8 = graph.constant @w8 : tensor<8x8x3x3xf32>
  %cr = graph.conv %c, %w8 residual %c : tensor<?x8x8x8xf32> strides [1, 1] dilations [1, 1] pads [1, 1, 1, 1] : (tensor<?x8x8x8xf32>, tensor<8x8x3x3xf32>) -> tensor<?x8x8x8xf32>
  // CHECK: graph.batch_norm %{{.*}} {epsilon = 1.000000e-03 : f32}
  %n = graph.batch_norm %cr, %s, %s, %s, %s {epsilon = 1.0e-3 : f32} : (tensor<?x8x8x8xf32>, tensor<8xf32>, tensor<8xf32>, tensor<8xf32>, tensor<8xf32>) -> tensor<?x8x8x8xf32>
  // CHECK: graph.max_pool %{{.*}} {kernel_shape = array<i64: 2, 2>, strides = array<i64: 2, 2>, dilations = array<i64: 1, 1>, pads = array<i64: 0, 0, 0, 0>} : (tensor<?x8x8x8xf32>) -> tensor<?x8x4x4xf32>
  %p = graph.max_pool %n {kernel_shape = array<i64: 2, 2>, strides = array<i64: 2, 2>, dilations = array<i64: 1, 1>, pads = array<i64: 0, 0, 0, 0>} : (tensor<?x8x8x8xf32>) -> tensor<?x8x4x4xf32>
  // CHECK: graph.slice %{{.*}} {starts = ["3"], ends = ["0"], axes = array<i64: 1>, steps = array<i64: -1>}
  %sl = graph.slice %p {starts = ["3"], ends = ["0"], axes = array<i64: 1>, steps = array<i64: -1>} : (tensor<?x8x4x4xf32>) -> tensor<?x3x4x4xf32>
  // CHECK: graph.pad %{{.*}} {pads = array<i64: 0, 0, 1, 0, 0, 0, 0, 0>, mode = #graph<pad_mode reflect>}
  %pd = graph.pad %sl {pads = array<i64: 0, 0, 1, 0, 0, 0, 0, 0>, mode = #graph<pad_mode reflect>} : (tensor<?x3x4x4xf32>) -> tensor<?x3x5x4xf32>
  // CHECK: graph.resize %{{.*}} {scales = array<f64: 1.000000e+00, 1.000000e+00, 8.000000e-01, 1.000000e+00>, mode = #graph<resize_mode linear>}
  %rs = graph.resize %pd {scales = array<f64: 1.0, 1.0, 0.8, 1.0>, mode = #graph<resize_mode linear>} : (tensor<?x3x5x4xf32>) -> tensor<?x3x4x4xf32>
  // CHECK: graph.concat %{{.*}}, %{{.*}} {axis = 1 : i64} : (tensor<?x8x4x4xf32>, tensor<?x3x4x4xf32>) -> tensor<?x11x4x4xf32>
  %cc = graph.concat %p, %rs {axis = 1 : i64} : (tensor<?x8x4x4xf32>, tensor<?x3x4x4xf32>) -> tensor<?x11x4x4xf32>
  %one = graph.slice %cc {starts = ["0"], ends = ["1"], axes = array<i64: 1>, steps = array<i64: 1>} : (tensor<?x11x4x4xf32>) -> tensor<?x1x4x4xf32>
  // CHECK: graph.squeeze %{{.*}} {axes = array<i64: 1>} : (tensor<?x1x4x4xf32>) -> tensor<?x4x4xf32>
  %sq = graph.squeeze %one {axes = array<i64: 1>} : (tensor<?x1x4x4xf32>) -> tensor<?x4x4xf32>
  // CHECK: graph.unsqueeze %{{.*}} {axes = array<i64: -3>} : (tensor<?x4x4xf32>) -> tensor<?x1x4x4xf32>
  %us = graph.unsqueeze %sq {axes = array<i64: -3>} : (tensor<?x4x4xf32>) -> tensor<?x1x4x4xf32>
  // CHECK: graph.transpose %{{.*}} {perm = array<i64: 0, 1, 3, 2>}
  %t = graph.transpose %us {perm = array<i64: 0, 1, 3, 2>} : (tensor<?x1x4x4xf32>) -> tensor<?x1x4x4xf32>
  %y = graph.concat %cc, %t {axis = 1 : i64} : (tensor<?x11x4x4xf32>, tensor<?x1x4x4xf32>) -> tensor<?x12x4x4xf32>
  func.return %y : tensor<?x12x4x4xf32>
}
