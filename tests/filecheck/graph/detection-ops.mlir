// RUN: pyflame-opt %s | filecheck %s
// RUN: pyflame-opt %s | pyflame-opt | filecheck %s
// NonMaxSuppression round trips, with and without its score threshold; RoiAlign and MaxRoiPool too.

// CHECK-LABEL: func.func @main
func.func @main(%b: tensor<2x5x4xf32>, %s: tensor<2x3x5xf32>, %m: tensor<1xi64>, %i: tensor<1xf32>, %t: tensor<f32>) -> (tensor<?x3xi64>, tensor<?x3xi64>) {
  // CHECK: graph.non_max_suppression %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} {center_point_box = false, count = "y_count"} : (tensor<2x5x4xf32>, tensor<2x3x5xf32>, tensor<1xi64>, tensor<1xf32>, tensor<f32>) -> tensor<?x3xi64>
  %y = graph.non_max_suppression %b, %s, %m, %i, %t {center_point_box = false, count = "y_count"} : (tensor<2x5x4xf32>, tensor<2x3x5xf32>, tensor<1xi64>, tensor<1xf32>, tensor<f32>) -> tensor<?x3xi64>
  // CHECK: graph.non_max_suppression %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} {center_point_box = true, count = "z_count"} : (tensor<2x5x4xf32>, tensor<2x3x5xf32>, tensor<1xi64>, tensor<1xf32>) -> tensor<?x3xi64>
  %z = graph.non_max_suppression %b, %s, %m, %i {center_point_box = true, count = "z_count"} : (tensor<2x5x4xf32>, tensor<2x3x5xf32>, tensor<1xi64>, tensor<1xf32>) -> tensor<?x3xi64>
  func.return %y, %z : tensor<?x3xi64>, tensor<?x3xi64>
}

// CHECK-LABEL: func.func @rois
func.func @rois(%x: tensor<2x3x8x8xf32>, %r: tensor<5x4xf32>, %bi: tensor<5xi64>, %r5: tensor<5x5xf32>) -> (tensor<5x3x2x2xf32>, tensor<5x3x3x1xf32>) {
  // CHECK: graph.roi_align %{{.*}}, %{{.*}}, %{{.*}} {output_height = 2 : i64, output_width = 2 : i64, spatial_scale = 5.000000e-01 : f64, mode = #graph<reduce_kind max>, sampling_ratio = 0 : i64, half_pixel = true} : (tensor<2x3x8x8xf32>, tensor<5x4xf32>, tensor<5xi64>) -> tensor<5x3x2x2xf32>
  %a = graph.roi_align %x, %r, %bi {output_height = 2 : i64, output_width = 2 : i64, spatial_scale = 5.000000e-01 : f64, mode = #graph<reduce_kind max>, sampling_ratio = 0 : i64, half_pixel = true} : (tensor<2x3x8x8xf32>, tensor<5x4xf32>, tensor<5xi64>) -> tensor<5x3x2x2xf32>
  // CHECK: graph.max_roi_pool %{{.*}}, %{{.*}} {output_height = 3 : i64, output_width = 1 : i64, spatial_scale = 1.000000e+00 : f64} : (tensor<2x3x8x8xf32>, tensor<5x5xf32>) -> tensor<5x3x3x1xf32>
  %m = graph.max_roi_pool %x, %r5 {output_height = 3 : i64, output_width = 1 : i64, spatial_scale = 1.000000e+00 : f64} : (tensor<2x3x8x8xf32>, tensor<5x5xf32>) -> tensor<5x3x3x1xf32>
  func.return %a, %m : tensor<5x3x2x2xf32>, tensor<5x3x3x1xf32>
}
