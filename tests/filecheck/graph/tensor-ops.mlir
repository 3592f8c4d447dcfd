// RUN: pyflame-opt %s | filecheck %s
// RUN: pyflame-opt %s | pyflame-opt | filecheck %s
// Tensor-level ops of the graph dialect (math, reductions, indexing, symbolic shape values) round trip.

// CHECK-LABEL: func.func @main
func.func @main(%x: tensor<?x8xf32> {graph.name = "x", graph.dims = ["batch", "8"]}, %ids: tensor<?x?xi64> {graph.name = "ids", graph.dims = ["batch", "seq"]}, %w: tensor<10x8xf32>) -> (tensor<?x8xf32>) {
  %e = graph.exp %x : (tensor<?x8xf32>) -> tensor<?x8xf32>
  // CHECK: graph.gelu %{{.*}} {approximate = #graph<gelu_approximation tanh>}
  %g = graph.gelu %e {approximate = #graph<gelu_approximation tanh>} : (tensor<?x8xf32>) -> tensor<?x8xf32>
  // CHECK: graph.leaky_relu %{{.*}} {alpha = 2.000000e-01 : f32}
  %l = graph.leaky_relu %g {alpha = 2.000000e-01 : f32} : (tensor<?x8xf32>) -> tensor<?x8xf32>
  // CHECK: graph.cast %{{.*}} to float32 : (tensor<?x?xi64>) -> tensor<?x?xf32>
  %c = graph.cast %ids to float32 : (tensor<?x?xi64>) -> tensor<?x?xf32>
  // CHECK: graph.less {{.*}} -> tensor<?x8xi1>
  %m = graph.less %x, %e : (tensor<?x8xf32>, tensor<?x8xf32>) -> tensor<?x8xi1>
  // CHECK: graph.where
  %wh = graph.where %m, %x, %l : (tensor<?x8xi1>, tensor<?x8xf32>, tensor<?x8xf32>) -> tensor<?x8xf32>
  // CHECK: graph.sum %{{.*}}, %{{.*}}, %{{.*}} :
  %s = graph.sum %x, %wh, %l : (tensor<?x8xf32>, tensor<?x8xf32>, tensor<?x8xf32>) -> tensor<?x8xf32>
  // CHECK: graph.reduce %{{.*}} {kind = #graph<reduce_kind mean>, axes = array<i64: -1>, keepdims = false} : (tensor<?x8xf32>) -> tensor<?xf32>
  %r = graph.reduce %s {kind = #graph<reduce_kind mean>, axes = array<i64: -1>, keepdims = false} : (tensor<?x8xf32>) -> tensor<?xf32>
  // CHECK: graph.softmax %{{.*}} : (tensor<?x8xf32>) -> tensor<?x8xf32>
  %sm = graph.softmax %s {axis = -1 : i64} : (tensor<?x8xf32>) -> tensor<?x8xf32>
  // CHECK: graph.gather %{{.*}}, %{{.*}} : (tensor<10x8xf32>, tensor<?x?xi64>) -> tensor<?x?x8xf32>
  %gt = graph.gather %w, %ids {axis = 0 : i64} : (tensor<10x8xf32>, tensor<?x?xi64>) -> tensor<?x?x8xf32>
  // CHECK: graph.dim_values {values = ["batch", "2*seq", "8"]} : tensor<3xi64>
  %dv = graph.dim_values {values = ["batch", "2*seq", "8"]} : tensor<3xi64>
  // CHECK: graph.range {{.*}}size = "seq", dtype = #graph<element_type int64>} : tensor<?xi64>
  %rg = graph.range {start = 0.0, delta = 1.0, size = "seq", dtype = #graph<element_type int64>} : tensor<?xi64>
  // CHECK: graph.einsum %{{.*}}, %{{.*}} {equation = "bi,ji->bj"}
  %es = graph.einsum %x, %w {equation = "bi,ji->bj"} : (tensor<?x8xf32>, tensor<10x8xf32>) -> tensor<?x10xf32>
  // CHECK: graph.topk %{{.*}} {k = "3"} : (tensor<?x8xf32>) -> (tensor<?x3xf32>, tensor<?x3xi64>)
  %tv, %ti = graph.topk %x {k = "3"} : (tensor<?x8xf32>) -> (tensor<?x3xf32>, tensor<?x3xi64>)
  func.return %sm : tensor<?x8xf32>
}
