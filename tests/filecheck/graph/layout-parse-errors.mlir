// RUN: not pyflame-opt %s 2>&1 | filecheck %s

// Kinds, modes and layouts are enum attributes: a value outside the enum does not parse.
// CHECK: Expected `NCHW`, or `NHWC`.
func.func @main(%x: tensor<1x4x8x8xf32>) -> tensor<1x4x1x1xf32> {
  %y = graph.global_average_pool %x {layout = #graph<layout NCWH>} : (tensor<1x4x8x8xf32>) -> tensor<1x4x1x1xf32>
  func.return %y : tensor<1x4x1x1xf32>
}
