// RUN: pyflame-opt --load %examples/div_to_mul_pass.py %s -p div-to-mul | filecheck %s
// RUN: pyflame-opt --load %examples/div_to_mul_pass.py --list-passes | filecheck %s --check-prefix=LIST

// The worked example of docs/writing-a-pass.md: x / c -> x * (1 / c) for a float constant c.
// CHECK-LABEL: func.func @main
// CHECK:      %[[R:.*]] = graph.constant {value = dense<[5.000000e-01, 2.500000e-01]> : tensor<2xf32>} : tensor<2xf32>
// CHECK-NEXT: %[[Y:.*]] = graph.mul %x, %[[R]] : (tensor<?x2xf32>, tensor<2xf32>) -> tensor<?x2xf32>
// A divisor with a zero, or one that is not a constant, stays a division.
// CHECK-NEXT: %[[Z:.*]] = graph.div %[[Y]], %zero
// CHECK-NEXT: graph.div %[[Z]], %x
// LIST: div-to-mul {{ *}}Division by a constant becomes multiplication by its reciprocal.
func.func @main(%x: tensor<?x2xf32> {graph.name = "x", graph.dims = ["n", "2"]}) -> (tensor<?x2xf32> {graph.name = "y", graph.dims = ["n", "2"]}) {
  %c = graph.constant {value = dense<[2.0, 4.0]> : tensor<2xf32>} : tensor<2xf32>
  %zero = graph.constant {value = dense<[2.0, 0.0]> : tensor<2xf32>} : tensor<2xf32>
  %y = graph.div %x, %c : (tensor<?x2xf32>, tensor<2xf32>) -> tensor<?x2xf32>
  %z = graph.div %y, %zero : (tensor<?x2xf32>, tensor<2xf32>) -> tensor<?x2xf32>
  %w = graph.div %z, %x : (tensor<?x2xf32>, tensor<?x2xf32>) -> tensor<?x2xf32>
  func.return %w : tensor<?x2xf32>
}
