// RUN: pyflame-opt %s | filecheck %s
// RUN: pyflame-opt %s | pyflame-opt | filecheck %s
// NonMaxSuppression round trips, with and without its score threshold.

// CHECK-LABEL: func.func @main
func.func @main(%b: tensor<2x5x4xf32>, %s: tensor<2x3x5xf32>, %m: tensor<1xi64>, %i: tensor<1xf32>, %t: tensor<f32>) -> (tensor<?x3xi64>, tensor<?x3xi64>) {
  // CHECK: graph.non_max_suppression %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} {center_point_box = false, count = "y_count"} : (tensor<2x5x4xf32>, tensor<2x3x5xf32>, tensor<1xi64>, tensor<1xf32>, tensor<f32>) -> tensor<?x3xi64>
  %y = graph.non_max_suppression %b, %s, %m, %i, %t {center_point_box = false, count = "y_count"} : (tensor<2x5x4xf32>, tensor<2x3x5xf32>, tensor<1xi64>, tensor<1xf32>, tensor<f32>) -> tensor<?x3xi64>
  // CHECK: graph.non_max_suppression %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} {center_point_box = true, count = "z_count"} : (tensor<2x5x4xf32>, tensor<2x3x5xf32>, tensor<1xi64>, tensor<1xf32>) -> tensor<?x3xi64>
  %z = graph.non_max_suppression %b, %s, %m, %i {center_point_box = true, count = "z_count"} : (tensor<2x5x4xf32>, tensor<2x3x5xf32>, tensor<1xi64>, tensor<1xf32>) -> tensor<?x3xi64>
  func.return %y, %z : tensor<?x3xi64>, tensor<?x3xi64>
}
