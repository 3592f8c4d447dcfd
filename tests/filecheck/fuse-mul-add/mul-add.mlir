// RUN: pyflame-opt %s -p fuse-mul-add | filecheck %s

// CHECK-LABEL: func.func @main
// CHECK:      %[[F:.*]] = graph.mul_add %x, %s, %t : (tensor<?x4xf32>, tensor<4xf32>, tensor<4xf32>) -> tensor<?x4xf32>
// The Mul's result is also a graph output: no fusion.
// CHECK:      %[[M:.*]] = graph.mul %x, %s
// CHECK-NEXT: graph.add %[[M]], %t
// CHECK:      func.return %[[F]]
func.func @main(%x: tensor<?x4xf32> {graph.name = "x", graph.dims = ["n", "4"]}) -> (tensor<?x4xf32> {graph.name = "y", graph.dims = ["n", "4"]}, tensor<?x4xf32> {graph.name = "z", graph.dims = ["n", "4"]}, tensor<?x4xf32> {graph.name = "m", graph.dims = ["n", "4"]}) {
  %s = graph.constant {value = dense<2.0> : tensor<4xf32>} : tensor<4xf32>
  %t = graph.constant {value = dense<1.0> : tensor<4xf32>} : tensor<4xf32>
  %m = graph.mul %x, %s : (tensor<?x4xf32>, tensor<4xf32>) -> tensor<?x4xf32>
  %y = graph.add %t, %m : (tensor<4xf32>, tensor<?x4xf32>) -> tensor<?x4xf32>
  %m2 = graph.mul %x, %s : (tensor<?x4xf32>, tensor<4xf32>) -> tensor<?x4xf32>
  %z = graph.add %m2, %t : (tensor<?x4xf32>, tensor<4xf32>) -> tensor<?x4xf32>
  func.return %y, %z, %m2 : tensor<?x4xf32>, tensor<?x4xf32>, tensor<?x4xf32>
}
