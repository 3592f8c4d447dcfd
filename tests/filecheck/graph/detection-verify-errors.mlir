// RUN: not pyflame-opt %s 2>&1 | filecheck %s
// NonMaxSuppression's boxes and scores must agree in their box count.

// CHECK: graph.non_max_suppression: boxes and scores differ in box count
func.func @main(%b: tensor<1x5x4xf32>, %s: tensor<1x3x6xf32>, %m: tensor<1xi64>, %i: tensor<1xf32>) -> tensor<?x3xi64> {
  %y = graph.non_max_suppression %b, %s, %m, %i {center_point_box = false, count = "y_count"} : (tensor<1x5x4xf32>, tensor<1x3x6xf32>, tensor<1xi64>, tensor<1xf32>) -> tensor<?x3xi64>
  func.return %y : tensor<?x3xi64>
}
