// RUN: not pyflame-opt %s 2>&1 | filecheck %s
// RoiAlign pools by mean or max only.

// CHECK: graph.roi_align: mode must be mean or max, got sum
func.func @main(%x: tensor<1x3x8x8xf32>, %r: tensor<2x4xf32>, %b: tensor<2xi64>) -> tensor<2x3x1x1xf32> {
  %y = graph.roi_align %x, %r, %b {output_height = 1 : i64, output_width = 1 : i64, spatial_scale = 1.000000e+00 : f64, mode = #graph<reduce_kind sum>, sampling_ratio = 0 : i64, half_pixel = true} : (tensor<1x3x8x8xf32>, tensor<2x4xf32>, tensor<2xi64>) -> tensor<2x3x1x1xf32>
  func.return %y : tensor<2x3x1x1xf32>
}
