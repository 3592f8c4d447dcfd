// RUN: pyflame-opt %s -p fuse-softmax | filecheck %s

// CHECK-LABEL: func.func @main
// CHECK:      %[[A:.*]] = graph.softmax %x {axis = 1 : i64} : (tensor<?x8xf32>) -> tensor<?x8xf32>
// Without the max subtraction it is the same function (softmax is shift-invariant).
// CHECK-NEXT: %[[B:.*]] = graph.softmax %x {axis = 1 : i64}
// A max over another axis is not part of it: the softmax starts after that Sub.
// CHECK:      %[[D:.*]] = graph.sub %x, %{{.*}} : (tensor<?x8xf32>, tensor<1x8xf32>)
// CHECK-NEXT: %[[C:.*]] = graph.softmax %[[D]] {axis = 1 : i64}
// CHECK-NOT:  graph.exp
// CHECK:      func.return %[[A]], %[[B]], %[[C]]
func.func @main(%x: tensor<?x8xf32> {graph.name = "x", graph.dims = ["n", "8"]}) -> (tensor<?x8xf32> {graph.name = "a", graph.dims = ["n", "8"]}, tensor<?x8xf32> {graph.name = "b", graph.dims = ["n", "8"]}, tensor<?x8xf32> {graph.name = "c", graph.dims = ["n", "8"]}) {
  %m = graph.reduce %x {kind = #graph<reduce_kind max>, axes = array<i64: -1>} : (tensor<?x8xf32>) -> tensor<?x1xf32>
  %d = graph.sub %x, %m : (tensor<?x8xf32>, tensor<?x1xf32>) -> tensor<?x8xf32>
  %e = graph.exp %d : (tensor<?x8xf32>) -> tensor<?x8xf32>
  %s = graph.reduce %e {kind = #graph<reduce_kind sum>, axes = array<i64: 1>} : (tensor<?x8xf32>) -> tensor<?x1xf32>
  %a = graph.div %e, %s : (tensor<?x8xf32>, tensor<?x1xf32>) -> tensor<?x8xf32>
  %e2 = graph.exp %x : (tensor<?x8xf32>) -> tensor<?x8xf32>
  %s2 = graph.reduce %e2 {kind = #graph<reduce_kind sum>, axes = array<i64: -1>} : (tensor<?x8xf32>) -> tensor<?x1xf32>
  %b = graph.div %e2, %s2 : (tensor<?x8xf32>, tensor<?x1xf32>) -> tensor<?x8xf32>
  %m3 = graph.reduce %x {kind = #graph<reduce_kind max>, axes = array<i64: 0>} : (tensor<?x8xf32>) -> tensor<1x8xf32>
  %d3 = graph.sub %x, %m3 : (tensor<?x8xf32>, tensor<1x8xf32>) -> tensor<?x8xf32>
  %e3 = graph.exp %d3 : (tensor<?x8xf32>) -> tensor<?x8xf32>
  %s3 = graph.reduce %e3 {kind = #graph<reduce_kind sum>, axes = array<i64: 1>} : (tensor<?x8xf32>) -> tensor<?x1xf32>
  %c = graph.div %e3, %s3 : (tensor<?x8xf32>, tensor<?x1xf32>) -> tensor<?x8xf32>
  func.return %a, %b, %c : tensor<?x8xf32>, tensor<?x8xf32>, tensor<?x8xf32>
}
