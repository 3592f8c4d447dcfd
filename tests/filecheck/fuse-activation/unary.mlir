// RUN: pyflame-opt %s -p fuse-activation | filecheck %s

// Every unary activation with a fused form moves into the producer's epilogue, its parameters
// written into the activation string; one that is not an activation (Exp), and a Clip
// with other bounds than relu / relu6 of an integer result, stay.
// CHECK-LABEL: func.func @main
// CHECK:      %[[M1:.*]] = graph.matmul_bias %x, %w, %b {activation = #graph.activation<gelu>}
// CHECK-NEXT: %[[M2:.*]] = graph.matmul_bias %x, %w, %b {activation = #graph.activation<gelu_tanh>}
// CHECK-NEXT: %[[A1:.*]] = graph.add %[[M1]], %[[M2]] {activation = #graph.activation<leaky_relu, 0.2>}
// CHECK-NEXT: %[[A2:.*]] = graph.add %[[A1]], %x {activation = #graph.activation<sigmoid>}
// CHECK-NEXT: %[[A3:.*]] = graph.add %[[A2]], %x {activation = #graph.activation<tanh>}
// CHECK-NEXT: %[[A4:.*]] = graph.add %[[A3]], %x {activation = #graph.activation<hard_sigmoid, 0.3, 0.4>}
// CHECK-NEXT: %[[A5:.*]] = graph.add %[[A4]], %x {activation = #graph.activation<hard_swish>}
// CHECK-NEXT: %[[A6:.*]] = graph.add %[[A5]], %x :
// CHECK-NEXT: %[[E:.*]] = graph.exp %[[A6]]
// CHECK-NEXT: %[[I:.*]] = graph.add %i, %i :
// CHECK-NEXT: %[[C:.*]] = graph.clip %[[I]]
func.func @main(%x: tensor<?x8xf32> {graph.name = "x", graph.dims = ["n", "8"]}, %i: tensor<4xi32> {graph.name = "i"}) -> (tensor<?x8xf32>, tensor<4xi32>) {
  %w = graph.constant {value = dense<0.5> : tensor<8x8xf32>} : tensor<8x8xf32>
  %b = graph.constant {value = dense<1.0> : tensor<8xf32>} : tensor<8xf32>
  %m1 = graph.matmul_bias %x, %w, %b : (tensor<?x8xf32>, tensor<8x8xf32>, tensor<8xf32>) -> tensor<?x8xf32>
  %g1 = graph.gelu %m1 : (tensor<?x8xf32>) -> tensor<?x8xf32>
  %m2 = graph.matmul_bias %x, %w, %b : (tensor<?x8xf32>, tensor<8x8xf32>, tensor<8xf32>) -> tensor<?x8xf32>
  %g2 = graph.gelu %m2 {approximate = #graph<gelu_approximation tanh>} : (tensor<?x8xf32>) -> tensor<?x8xf32>
  %a1 = graph.add %g1, %g2 : (tensor<?x8xf32>, tensor<?x8xf32>) -> tensor<?x8xf32>
  %l = graph.leaky_relu %a1 {alpha = 2.000000e-01 : f32} : (tensor<?x8xf32>) -> tensor<?x8xf32>
  %a2 = graph.add %l, %x : (tensor<?x8xf32>, tensor<?x8xf32>) -> tensor<?x8xf32>
  %s = graph.sigmoid %a2 : (tensor<?x8xf32>) -> tensor<?x8xf32>
  %a3 = graph.add %s, %x : (tensor<?x8xf32>, tensor<?x8xf32>) -> tensor<?x8xf32>
  %t = graph.tanh %a3 : (tensor<?x8xf32>) -> tensor<?x8xf32>
  %a4 = graph.add %t, %x : (tensor<?x8xf32>, tensor<?x8xf32>) -> tensor<?x8xf32>
  %h = graph.hard_sigmoid %a4 {alpha = 3.000000e-01 : f32, beta = 4.000000e-01 : f32} : (tensor<?x8xf32>) -> tensor<?x8xf32>
  %a5 = graph.add %h, %x : (tensor<?x8xf32>, tensor<?x8xf32>) -> tensor<?x8xf32>
  %hs = graph.hard_swish %a5 : (tensor<?x8xf32>) -> tensor<?x8xf32>
  %a6 = graph.add %hs, %x : (tensor<?x8xf32>, tensor<?x8xf32>) -> tensor<?x8xf32>
  %e = graph.exp %a6 : (tensor<?x8xf32>) -> tensor<?x8xf32>
  %ia = graph.add %i, %i : (tensor<4xi32>, tensor<4xi32>) -> tensor<4xi32>
  %ic = graph.clip %ia {min = -1.0 : f32, max = 3.0 : f32} : (tensor<4xi32>) -> tensor<4xi32>
  func.return %e, %ic : tensor<?x8xf32>, tensor<4xi32>
}
