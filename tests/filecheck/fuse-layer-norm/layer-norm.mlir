// RUN: pyflame-opt %s -p fuse-layer-norm | filecheck %s

// LayerNorm as torch exports it below opset 17: one graph.layer_norm (epsilon 1e-5, the default, is not printed).
// CHECK-LABEL: func.func @main
// CHECK:      %[[LN:.*]] = graph.layer_norm %x, %gamma, %beta {axis = 2 : i64} : (tensor<?x5x8xf32>, tensor<8xf32>, tensor<8xf32>) -> tensor<?x5x8xf32>
// The variance as d * d and no beta: still a LayerNorm.
// CHECK:      %[[LN2:.*]] = graph.layer_norm %x, %gamma {axis = 2 : i64, epsilon = 1.000000e-03 : f32} : (tensor<?x5x8xf32>, tensor<8xf32>) -> tensor<?x5x8xf32>
// CHECK-NOT:  graph.reduce
// CHECK:      func.return %[[LN]], %[[LN2]]
func.func @main(%x: tensor<?x5x8xf32> {graph.name = "x", graph.dims = ["n", "5", "8"]}) -> (tensor<?x5x8xf32> {graph.name = "y", graph.dims = ["n", "5", "8"]}, tensor<?x5x8xf32> {graph.name = "z", graph.dims = ["n", "5", "8"]}) {
  %gamma = graph.constant {value = dense<1.5> : tensor<8xf32>} : tensor<8xf32>
  %beta = graph.constant {value = dense<0.25> : tensor<8xf32>} : tensor<8xf32>
  %two = graph.constant {value = dense<2.0> : tensor<f32>} : tensor<f32>
  %eps = graph.constant {value = dense<1.0e-5> : tensor<f32>} : tensor<f32>
  %mean = graph.reduce %x {kind = #graph<reduce_kind mean>, axes = array<i64: -1>} : (tensor<?x5x8xf32>) -> tensor<?x5x1xf32>
  %d = graph.sub %x, %mean : (tensor<?x5x8xf32>, tensor<?x5x1xf32>) -> tensor<?x5x8xf32>
  %p = graph.pow %d, %two : (tensor<?x5x8xf32>, tensor<f32>) -> tensor<?x5x8xf32>
  %var = graph.reduce %p {kind = #graph<reduce_kind mean>, axes = array<i64: -1>} : (tensor<?x5x8xf32>) -> tensor<?x5x1xf32>
  %v = graph.add %var, %eps : (tensor<?x5x1xf32>, tensor<f32>) -> tensor<?x5x1xf32>
  %s = graph.sqrt %v : (tensor<?x5x1xf32>) -> tensor<?x5x1xf32>
  %n = graph.div %d, %s : (tensor<?x5x8xf32>, tensor<?x5x1xf32>) -> tensor<?x5x8xf32>
  %g = graph.mul %n, %gamma : (tensor<?x5x8xf32>, tensor<8xf32>) -> tensor<?x5x8xf32>
  %y = graph.add %g, %beta : (tensor<?x5x8xf32>, tensor<8xf32>) -> tensor<?x5x8xf32>
  %eps2 = graph.constant {value = dense<1.0e-3> : tensor<1xf32>} : tensor<1xf32>
  %mean2 = graph.reduce %x {kind = #graph<reduce_kind mean>, axes = array<i64: 2>} : (tensor<?x5x8xf32>) -> tensor<?x5x1xf32>
  %d2 = graph.sub %x, %mean2 : (tensor<?x5x8xf32>, tensor<?x5x1xf32>) -> tensor<?x5x8xf32>
  %p2 = graph.mul %d2, %d2 : (tensor<?x5x8xf32>, tensor<?x5x8xf32>) -> tensor<?x5x8xf32>
  %var2 = graph.reduce %p2 {kind = #graph<reduce_kind mean>, axes = array<i64: 2>} : (tensor<?x5x8xf32>) -> tensor<?x5x1xf32>
  %v2 = graph.add %eps2, %var2 : (tensor<1xf32>, tensor<?x5x1xf32>) -> tensor<?x5x1xf32>
  %s2 = graph.sqrt %v2 : (tensor<?x5x1xf32>) -> tensor<?x5x1xf32>
  %n2 = graph.div %d2, %s2 : (tensor<?x5x8xf32>, tensor<?x5x1xf32>) -> tensor<?x5x8xf32>
  %z = graph.mul %gamma, %n2 : (tensor<8xf32>, tensor<?x5x8xf32>) -> tensor<?x5x8xf32>
  func.return %y, %z : tensor<?x5x8xf32>, tensor<?x5x8xf32>
}
