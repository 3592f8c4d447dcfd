// RUN: pyflame-opt %s -p lower-graph-to-cpu | filecheck %s

// Col2Im's input [N, C * KK, L] is already the col2im kernel's columns: no GEMM, only the
// scatter-add (vectorized: the W stride is 1; no bias).
func.func @main(%x: tensor<2x12x30xf32> {graph.name = "x"}) -> (tensor<2x3x6x7xf32> {graph.name = "y"}) {
  %y = graph.col2im %x image [6, 7] block [2, 2] strides [1, 1] dilations [1, 1] pads [0, 0, 0, 0] : (tensor<2x12x30xf32>) -> tensor<2x3x6x7xf32>
  func.return %y : tensor<2x3x6x7xf32>
}

// CHECK-NOT: func.func public @gemm
// CHECK: func.func public @col2im_w{{[0-9]+}}_nb(
// CHECK-NOT: graph.
