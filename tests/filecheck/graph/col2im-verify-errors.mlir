// RUN: not pyflame-opt %s 2>&1 | filecheck %s

// CHECK: graph.col2im: Col2Im input dim 2 differs from the 9 block positions: 10 vs 9
func.func @main(%x: tensor<1x8x10xf32>) -> tensor<1x2x4x4xf32> {
  %y = graph.col2im %x image [4, 4] block [2, 2] strides [1, 1] dilations [1, 1] pads [0, 0, 0, 0] : (tensor<1x8x10xf32>) -> tensor<1x2x4x4xf32>
  func.return %y : tensor<1x2x4x4xf32>
}
