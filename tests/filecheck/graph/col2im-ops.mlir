// RUN: pyflame-opt %s | pyflame-opt | filecheck %s

// CHECK: graph.col2im %x image [4, 5] block [2, 2] strides [1, 2] dilations [1, 1] pads [0, 1, 0, 0] : (tensor<?x8x9xf32>) -> tensor<?x2x4x5xf32>
func.func @main(%x: tensor<?x8x9xf32>) -> tensor<?x2x4x5xf32> {
  %y = graph.col2im %x image [4, 5] block [2, 2] strides [1, 2] dilations [1, 1] pads [0, 1, 0, 0] : (tensor<?x8x9xf32>) -> tensor<?x2x4x5xf32>
  func.return %y : tensor<?x2x4x5xf32>
}
