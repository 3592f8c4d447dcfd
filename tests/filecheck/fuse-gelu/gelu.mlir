// RUN: pyflame-opt %s -p fuse-gelu | filecheck %s

// CHECK-LABEL: func.func @main
// erf form as torch exports it: x * 0.5 placement after the product.
// CHECK:      %[[A:.*]] = graph.gelu %x : (tensor<?x8xf32>) -> tensor<?x8xf32>
// erf form with x * (1/sqrt 2) and the 0.5 applied to x first.
// CHECK-NEXT: %[[B:.*]] = graph.gelu %x : (tensor<?x8xf32>) -> tensor<?x8xf32>
// tanh form with Pow(x, 3).
// CHECK-NEXT: %[[C:.*]] = graph.gelu %x {approximate = #graph<gelu_approximation tanh>} : (tensor<?x8xf32>) -> tensor<?x8xf32>
// CHECK-NEXT: func.return %[[A]], %[[B]], %[[C]]
func.func @main(%x: tensor<?x8xf32> {graph.name = "x", graph.dims = ["n", "8"]}) -> (tensor<?x8xf32> {graph.name = "a", graph.dims = ["n", "8"]}, tensor<?x8xf32> {graph.name = "b", graph.dims = ["n", "8"]}, tensor<?x8xf32> {graph.name = "c", graph.dims = ["n", "8"]}) {
  %sqrt2 = graph.constant {value = dense<1.41421354> : tensor<f32>} : tensor<f32>
  %inv_sqrt2 = graph.constant {value = dense<0.707106769> : tensor<f32>} : tensor<f32>
  %one = graph.constant {value = dense<1.0> : tensor<f32>} : tensor<f32>
  %half = graph.constant {value = dense<0.5> : tensor<f32>} : tensor<f32>
  %t = graph.div %x, %sqrt2 : (tensor<?x8xf32>, tensor<f32>) -> tensor<?x8xf32>
  %e = graph.erf %t : (tensor<?x8xf32>) -> tensor<?x8xf32>
  %p = graph.add %e, %one : (tensor<?x8xf32>, tensor<f32>) -> tensor<?x8xf32>
  %m = graph.mul %x, %p : (tensor<?x8xf32>, tensor<?x8xf32>) -> tensor<?x8xf32>
  %a = graph.mul %m, %half : (tensor<?x8xf32>, tensor<f32>) -> tensor<?x8xf32>
  %t2 = graph.mul %x, %inv_sqrt2 : (tensor<?x8xf32>, tensor<f32>) -> tensor<?x8xf32>
  %e2 = graph.erf %t2 : (tensor<?x8xf32>) -> tensor<?x8xf32>
  %p2 = graph.add %one, %e2 : (tensor<f32>, tensor<?x8xf32>) -> tensor<?x8xf32>
  %h2 = graph.mul %half, %x : (tensor<f32>, tensor<?x8xf32>) -> tensor<?x8xf32>
  %b = graph.mul %h2, %p2 : (tensor<?x8xf32>, tensor<?x8xf32>) -> tensor<?x8xf32>
  %three = graph.constant {value = dense<3.0> : tensor<f32>} : tensor<f32>
  %k = graph.constant {value = dense<0.044715> : tensor<f32>} : tensor<f32>
  %s = graph.constant {value = dense<0.797884583> : tensor<f32>} : tensor<f32>
  %x3 = graph.pow %x, %three : (tensor<?x8xf32>, tensor<f32>) -> tensor<?x8xf32>
  %kx3 = graph.mul %x3, %k : (tensor<?x8xf32>, tensor<f32>) -> tensor<?x8xf32>
  %in = graph.add %x, %kx3 : (tensor<?x8xf32>, tensor<?x8xf32>) -> tensor<?x8xf32>
  %sin = graph.mul %in, %s : (tensor<?x8xf32>, tensor<f32>) -> tensor<?x8xf32>
  %th = graph.tanh %sin : (tensor<?x8xf32>) -> tensor<?x8xf32>
  %p3 = graph.add %th, %one : (tensor<?x8xf32>, tensor<f32>) -> tensor<?x8xf32>
  %h3 = graph.mul %x, %half : (tensor<?x8xf32>, tensor<f32>) -> tensor<?x8xf32>
  %c = graph.mul %h3, %p3 : (tensor<?x8xf32>, tensor<?x8xf32>) -> tensor<?x8xf32>
  func.return %a, %b, %c : tensor<?x8xf32>, tensor<?x8xf32>, tensor<?x8xf32>
}
