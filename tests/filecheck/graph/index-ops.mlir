// RUN: pyflame-opt %s | filecheck %s
// RUN: pyflame-opt %s | pyflame-opt | filecheck %s
// RUN: pyflame-opt %s -p lower-graph-to-cpu | filecheck %s --check-prefix=CPU
// Element-wise indexing ops round trip and lower to the parameterized index kernel (one per
// gather / scatter reduction, element type and tuple length).

// CHECK-LABEL: func.func @main
// CPU-DAG: func.func public @index_gather_float32_int64_k1(
// CPU-DAG: func.func public @index_scatter_add_float32_int64_k1(
// CPU-DAG: func.func public @index_gather_float32_int64_k2(
// CPU-DAG: func.func public @index_scatter_none_float32_int32_k1(
func.func @main(%x: tensor<?x4xf32> {graph.name = "x", graph.dims = ["batch", "4"]}, %i: tensor<?x2xi64> {graph.name = "i", graph.dims = ["batch", "2"]}, %u: tensor<?x2xf32> {graph.name = "u", graph.dims = ["batch", "2"]}, %t: tensor<3x2xi64> {graph.name = "t", graph.dims = ["3", "2"]}, %r: tensor<2x1xi32> {graph.name = "r", graph.dims = ["2", "1"]}, %v: tensor<2x4xf32> {graph.name = "v", graph.dims = ["2", "4"]}) -> (tensor<?x2xf32>, tensor<?x4xf32>, tensor<3xf32>, tensor<?x4xf32>) {
  // CHECK: graph.gather_elements %{{.*}}, %{{.*}} {axis = 1 : i64} : (tensor<?x4xf32>, tensor<?x2xi64>) -> tensor<?x2xf32>
  %g = graph.gather_elements %x, %i {axis = 1 : i64} : (tensor<?x4xf32>, tensor<?x2xi64>) -> tensor<?x2xf32>
  // CHECK: graph.scatter_elements %{{.*}}, %{{.*}}, %{{.*}} {axis = -1 : i64, reduction = #graph<scatter_reduction add>}
  %s = graph.scatter_elements %x, %i, %u {axis = -1 : i64, reduction = #graph<scatter_reduction add>} : (tensor<?x4xf32>, tensor<?x2xi64>, tensor<?x2xf32>) -> tensor<?x4xf32>
  // CHECK: graph.gather_nd %{{.*}}, %{{.*}} : (tensor<?x4xf32>, tensor<3x2xi64>) -> tensor<3xf32>
  %n = graph.gather_nd %x, %t : (tensor<?x4xf32>, tensor<3x2xi64>) -> tensor<3xf32>
  // CHECK: graph.scatter_nd %{{.*}}, %{{.*}}, %{{.*}} : (tensor<?x4xf32>, tensor<2x1xi32>, tensor<2x4xf32>) -> tensor<?x4xf32>
  %m = graph.scatter_nd %x, %r, %v : (tensor<?x4xf32>, tensor<2x1xi32>, tensor<2x4xf32>) -> tensor<?x4xf32>
  func.return %g, %s, %n, %m : tensor<?x2xf32>, tensor<?x4xf32>, tensor<3xf32>, tensor<?x4xf32>
}
