// RUN: pyflame-opt %s | filecheck %s
// RUN: pyflame-opt %s | pyflame-opt | filecheck %s

// A resize whose scales are a run-time tensor: its sizes are dims bound from floor(in * scale), axes
// name the axis each scale applies to; then a grid sample of the result.
// CHECK-LABEL: func.func @main
func.func @main(%x: tensor<1x2x4x4xf32> {graph.name = "x", graph.dims = ["1", "2", "4", "4"]}, %scales: tensor<2xf32> {graph.name = "scales", graph.dims = ["2"]}, %g: tensor<1x3x5x2xf32> {graph.name = "g", graph.dims = ["1", "3", "5", "2"]}) -> (tensor<1x2x3x5xf32> {graph.name = "y", graph.dims = ["1", "2", "3", "5"]}) {
  %d = graph.dim_values {values = ["4", "4"]} : tensor<2xi64>
  %f = graph.cast %d to float32 : (tensor<2xi64>) -> tensor<2xf32>
  %p = graph.mul %f, %scales : (tensor<2xf32>, tensor<2xf32>) -> tensor<2xf32>
  %fl = graph.floor %p : (tensor<2xf32>) -> tensor<2xf32>
  %n = graph.cast %fl to int64 : (tensor<2xf32>) -> tensor<2xi64>
  %b = graph.bind_dims %n {dims = ["r_0", "r_1"]} : (tensor<2xi64>) -> tensor<2xi64>
  // CHECK: graph.resize %{{.*}} scales %{{.*}} : tensor<2xf32> {scales = array<f64: 1.000000e+00, 1.000000e+00, 1.000000e+00, 1.000000e+00>, mode = #graph<resize_mode linear>, sizes = ["1", "2", "r_1", "r_0"], axes = array<i64: 3, 2>} : (tensor<1x2x4x4xf32>) -> tensor<1x2x?x?xf32>
  %r = graph.resize %x scales %scales : tensor<2xf32> {scales = array<f64: 1.0, 1.0, 1.0, 1.0>, mode = #graph<resize_mode linear>, sizes = ["1", "2", "r_1", "r_0"], axes = array<i64: 3, 2>} : (tensor<1x2x4x4xf32>) -> tensor<1x2x?x?xf32>
  // CHECK: graph.grid_sample %{{.*}}, %{{.*}} {mode = #graph<resize_mode cubic>, padding_mode = #graph<grid_padding_mode reflection>, align_corners = true} : (tensor<1x2x?x?xf32>, tensor<1x3x5x2xf32>) -> tensor<1x2x3x5xf32>
  %y = graph.grid_sample %r, %g {mode = #graph<resize_mode cubic>, padding_mode = #graph<grid_padding_mode reflection>, align_corners = true} : (tensor<1x2x?x?xf32>, tensor<1x3x5x2xf32>) -> tensor<1x2x3x5xf32>
  func.return %y : tensor<1x2x3x5xf32>
}

// An affine grid over a size whose spatial dims are bound at run time.
// CHECK-LABEL: func.func @affine
func.func @affine(%t: tensor<2x2x3xf32> {graph.name = "theta", graph.dims = ["2", "2", "3"]}) -> (tensor<2x?x?x2xf32> {graph.name = "y", graph.dims = ["2", "size_2", "size_3", "2"]}) {
  // CHECK: graph.affine_grid %{{.*}} {size = ["2", "3", "size_2", "size_3"], align_corners = true} : (tensor<2x2x3xf32>) -> tensor<2x?x?x2xf32>
  %y = graph.affine_grid %t {size = ["2", "3", "size_2", "size_3"], align_corners = true} : (tensor<2x2x3xf32>) -> tensor<2x?x?x2xf32>
  func.return %y : tensor<2x?x?x2xf32>
}
