// RUN: pyflame-opt %s | filecheck %s
// RUN: pyflame-opt %s -p lower-graph-to-cpu | filecheck %s --check-prefix=CPU
// Det of a batch of matrices round trips and lowers to one LU kernel per element type.

// CHECK: graph.det %{{.*}} : (tensor<?x5x5xf32>) -> tensor<?xf32>
// CHECK: graph.det %{{.*}} : (tensor<3x3xf64>) -> tensor<f64>
// CPU-DAG: func.func public @det_float32(
// CPU-DAG: func.func public @det_float64(
func.func @main(%x: tensor<?x5x5xf32> {graph.name = "x", graph.dims = ["batch", "5", "5"]}, %y: tensor<3x3xf64> {graph.name = "y"}) -> (tensor<?xf32>, tensor<f64>) {
  %d = graph.det %x : (tensor<?x5x5xf32>) -> tensor<?xf32>
  %e = graph.det %y : (tensor<3x3xf64>) -> tensor<f64>
  func.return %d, %e : tensor<?xf32>, tensor<f64>
}
