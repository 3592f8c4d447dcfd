// RUN: pyflame-opt %s -p fold-constants | filecheck %s

// A shape computed from constants only: its bind_dims goes, its values are the reshape's dims and
// the output's (a product with another dim keeps that one), and nothing is left to bind at run time.
// CHECK-LABEL: func.func @main
// CHECK-SAME:    -> (tensor<?x?xf32> {graph.name = "y", graph.dims = ["2", "3*n"]})
// CHECK-NOT:     graph.bind_dims
// CHECK:         %[[Y:.*]] = graph.reshape %x {shape = ["2", "3*n"]}
// CHECK-NEXT:    func.return %[[Y]]
func.func @main(%x: tensor<?xf32> {graph.name = "x", graph.dims = ["6*n"]}) -> (tensor<?x?xf32> {graph.name = "y", graph.dims = ["s_0", "n*s_1"]}) {
  %a = graph.constant {value = dense<[0.0, 2.0, 1.0]> : tensor<3xf32>} : tensor<3xf32>
  %b = graph.constant {value = dense<[1.0, 0.0, 2.0]> : tensor<3xf32>} : tensor<3xf32>
  %f = graph.add %a, %b : (tensor<3xf32>, tensor<3xf32>) -> tensor<3xf32>
  %i = graph.cast %f to int64 : (tensor<3xf32>) -> tensor<3xi64>
  %s = graph.bind_dims %i {dims = ["s_valid", "s_0", "s_1"], refusal = "the shape is invalid"} : (tensor<3xi64>) -> tensor<3xi64>
  %y = graph.reshape %x {shape = ["s_0", "n*s_1"]} : (tensor<?xf32>) -> tensor<?x?xf32>
  func.return %y : tensor<?x?xf32>
}

// A dim that is a term of a sum symbol has no text for its value alone: the binding stays for the run.
// CHECK-LABEL: func.func @sum
// CHECK:         graph.bind_dims %c {dims = ["k_0"]}
// CHECK:         graph.concat {{.*}} -> tensor<?xf32>
func.func @sum(%x: tensor<?xf32> {graph.name = "x", graph.dims = ["n"]}) -> (tensor<?xf32> {graph.name = "y", graph.dims = ["k_0+n"]}) {
  %c = graph.constant {value = dense<2> : tensor<1xi64>} : tensor<1xi64>
  %k = graph.bind_dims %c {dims = ["k_0"]} : (tensor<1xi64>) -> tensor<1xi64>
  %z = graph.constant_of_shape {shape = ["k_0"], value = 0.0 : f64, dtype = #graph<element_type float32>} : tensor<?xf32>
  %y = graph.concat %z, %x {axis = 0 : i64} : (tensor<?xf32>, tensor<?xf32>) -> tensor<?xf32>
  func.return %y : tensor<?xf32>
}
