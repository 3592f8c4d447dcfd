// RUN: not pyflame-opt %s 2>&1 | filecheck %s

// CHECK: graph.conv: Conv residual shape differs from the result's (['?2_0', '8', '8', '8'] vs ['?0_0', '8', '6', '6']): 8 vs 6
func.func @main(%x: tensor<?x3x8x8xf32>, %w: tensor<8x3x3x3xf32>, %r: tensor<?x8x8x8xf32>) -> tensor<?x8x6x6xf32> {
  %y = graph.conv %x, %w residual %r : tensor<?x8x8x8xf32> strides [1, 1] dilations [1, 1] pads [0, 0, 0, 0] : (tensor<?x3x8x8xf32>, tensor<8x3x3x3xf32>) -> tensor<?x8x6x6xf32>
  func.return %y : tensor<?x8x6x6xf32>
}
