// RUN: not pyflame-opt %s 2>&1 | filecheck %s

// CHECK: graph.conv: Conv input channels differ from weight channels x group 1: 4 vs 3
func.func @main(%x: tensor<?x4x8x8xf32>, %w: tensor<8x3x3x3xf32>) -> tensor<?x8x6x6xf32> {
  %y = graph.conv %x, %w strides [1, 1] dilations [1, 1] pads [0, 0, 0, 0] : (tensor<?x4x8x8xf32>, tensor<8x3x3x3xf32>) -> tensor<?x8x6x6xf32>
  func.return %y : tensor<?x8x6x6xf32>
}
