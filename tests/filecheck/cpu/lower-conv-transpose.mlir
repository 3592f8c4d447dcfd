// RUN: pyflame-opt %s -p lower-graph-to-cpu | filecheck %s

// ConvTranspose (weights fed at run time, two groups, W stride 3) becomes: pack the input as
// the GEMM's B, a GEMM reading the weights through transposed strides (the `_sa` variant), then
// the col2im scatter-add, scalar because the W stride is not 1.
func.func @main(%x: tensor<2x4x5x3xf32> {graph.name = "x"}, %w: tensor<4x3x3x4xf32> {graph.name = "w"}) -> (tensor<2x6x10x8xf32> {graph.name = "y"}) {
  %y = graph.conv_transpose %x, %w strides [2, 3] dilations [1, 1] pads [1, 0, 0, 2] output_padding [0, 0] group 2 : (tensor<2x4x5x3xf32>, tensor<4x3x3x4xf32>) -> tensor<2x6x10x8xf32>
  func.return %y : tensor<2x6x10x8xf32>
}

// CHECK: func.func public @pack_b_{{[0-9]+}}(
// CHECK: func.func public @gemm_{{[0-9]+}}x{{[0-9]+}}_w{{[0-9]+}}_nb_none_{{[a-z0-9]+}}_sa(
// CHECK: func.func public @col2im_w1_nb(
// CHECK-NOT: graph.
