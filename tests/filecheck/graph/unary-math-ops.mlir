// RUN: pyflame-opt %s | filecheck %s
// RUN: pyflame-opt %s | pyflame-opt | filecheck %s
// Trigonometric / hyperbolic ops, Round, Sign, IsNaN / IsInf (bool results) and the attribute
// activations (Celu, Shrink, ThresholdedRelu) round trip.

// CHECK-LABEL: func.func @main
func.func @main(%x: tensor<?x8xf32> {graph.name = "x", graph.dims = ["batch", "8"]}, %i: tensor<8xi32>) -> (tensor<?x8xf32>, tensor<?x8xi1>, tensor<8xi32>) {
  // CHECK: graph.sin %{{.*}} : (tensor<?x8xf32>) -> tensor<?x8xf32>
  %s = graph.sin %x : (tensor<?x8xf32>) -> tensor<?x8xf32>
  // CHECK: graph.atanh
  %a = graph.atanh %s : (tensor<?x8xf32>) -> tensor<?x8xf32>
  // CHECK: graph.round
  %r = graph.round %a : (tensor<?x8xf32>) -> tensor<?x8xf32>
  // CHECK: graph.celu %{{.*}} {alpha = 2.000000e+00 : f32}
  %c = graph.celu %r {alpha = 2.000000e+00 : f32} : (tensor<?x8xf32>) -> tensor<?x8xf32>
  // CHECK: graph.shrink %{{.*}} {lambd = 1.000000e+00 : f32, bias = 5.000000e-01 : f32}
  %h = graph.shrink %c {lambd = 1.000000e+00 : f32, bias = 5.000000e-01 : f32} : (tensor<?x8xf32>) -> tensor<?x8xf32>
  // CHECK: graph.is_inf %{{.*}} {detect_negative = false} : (tensor<?x8xf32>) -> tensor<?x8xi1>
  %f = graph.is_inf %h {detect_positive = true, detect_negative = false} : (tensor<?x8xf32>) -> tensor<?x8xi1>
  // CHECK: graph.sign %{{.*}} : (tensor<8xi32>) -> tensor<8xi32>
  %g = graph.sign %i : (tensor<8xi32>) -> tensor<8xi32>
  func.return %h, %f, %g : tensor<?x8xf32>, tensor<?x8xi1>, tensor<8xi32>
}
