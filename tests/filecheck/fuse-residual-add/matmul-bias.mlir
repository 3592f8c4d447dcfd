// RUN: pyflame-opt %s -p fuse-residual-add | filecheck %s
// RUN: pyflame-opt %s -O2 | filecheck %s --check-prefix=O2

// A transformer skip connection: Add(matmul_bias(h), x) -> matmul_bias with residual x (4th operand).
// CHECK-LABEL: func.func @main
// CHECK:      %[[Y:.*]] = graph.matmul_bias %h, %w, %b, %x : (tensor<?x3x4xf32>, tensor<4x4xf32>, tensor<4xf32>, tensor<?x3x4xf32>) -> tensor<?x3x4xf32>
// A matmul_bias with a fused activation keeps its Add.
// CHECK:      %[[R:.*]] = graph.matmul_bias %h, %w, %b {activation = #graph.activation<relu>}
// CHECK-NEXT: graph.add %x, %[[R]]

// At -O2 MatMul + bias Add + residual Add + Relu become one matmul_bias.
// O2:     graph.matmul_bias %h, %w, %b, %x {activation = #graph.activation<relu>}
func.func @main(%h: tensor<?x3x4xf32> {graph.name = "h", graph.dims = ["n", "3", "4"]}, %x: tensor<?x3x4xf32> {graph.name = "x", graph.dims = ["n", "3", "4"]}) -> (tensor<?x3x4xf32>, tensor<?x3x4xf32>, tensor<?x3x4xf32>) {
  %w = graph.constant {value = dense<0.5> : tensor<4x4xf32>} : tensor<4x4xf32>
  %b = graph.constant {value = dense<1.0> : tensor<4xf32>} : tensor<4xf32>
  %mb0 = graph.matmul_bias %h, %w, %b : (tensor<?x3x4xf32>, tensor<4x4xf32>, tensor<4xf32>) -> tensor<?x3x4xf32>
  %y0 = graph.add %mb0, %x : (tensor<?x3x4xf32>, tensor<?x3x4xf32>) -> tensor<?x3x4xf32>
  %m = graph.matmul %h, %w : (tensor<?x3x4xf32>, tensor<4x4xf32>) -> tensor<?x3x4xf32>
  %mb = graph.add %m, %b : (tensor<?x3x4xf32>, tensor<4xf32>) -> tensor<?x3x4xf32>
  %y = graph.add %mb, %x : (tensor<?x3x4xf32>, tensor<?x3x4xf32>) -> tensor<?x3x4xf32>
  %yr = graph.relu %y : (tensor<?x3x4xf32>) -> tensor<?x3x4xf32>
  %r = graph.matmul_bias %h, %w, %b {activation = #graph.activation<relu>} : (tensor<?x3x4xf32>, tensor<4x4xf32>, tensor<4xf32>) -> tensor<?x3x4xf32>
  %z = graph.add %x, %r : (tensor<?x3x4xf32>, tensor<?x3x4xf32>) -> tensor<?x3x4xf32>
  func.return %y0, %yr, %z : tensor<?x3x4xf32>, tensor<?x3x4xf32>, tensor<?x3x4xf32>
}
