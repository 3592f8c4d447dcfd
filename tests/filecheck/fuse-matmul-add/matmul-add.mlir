// RUN: pyflame-opt %s -p fuse-matmul-add | filecheck %s

// 2-D MatMul + row Add -> Gemm with C; N-D x 2-D -> matmul_bias; a [1, N] bias is reshaped to [N].
// CHECK-LABEL: func.func @main
// CHECK:      %[[G:.*]] = graph.gemm %x2, %w, %b : (tensor<?x8xf32>, tensor<8x4xf32>, tensor<4xf32>) -> tensor<?x4xf32>
// CHECK:      %[[ROW:.*]] = graph.constant @b14_row : tensor<4xf32>
// CHECK-NEXT: %[[MB:.*]] = graph.matmul_bias %x3, %w, %[[ROW]] : (tensor<?x3x8xf32>, tensor<8x4xf32>, tensor<4xf32>) -> tensor<?x3x4xf32>
// A Gemm without C takes the Add as its C (beta becomes 1).
// CHECK:      graph.gemm %x2, %w, %b {alpha = 2.000000e+00 : f32} :
// A MatMul with a second user, and a full-matrix Add, stay as they are.
// CHECK:      %[[KEEP:.*]] = graph.matmul %x2, %w
// CHECK-NEXT: graph.add %[[KEEP]], %b
// CHECK:      %[[FULL:.*]] = graph.matmul %x2, %w
// CHECK-NEXT: graph.add %[[FULL]], %x4
func.func @main(%x2: tensor<?x8xf32> {graph.name = "x2", graph.dims = ["n", "8"]}, %x3: tensor<?x3x8xf32> {graph.name = "x3", graph.dims = ["n", "3", "8"]}, %x4: tensor<?x4xf32> {graph.name = "x4", graph.dims = ["n", "4"]}) -> (tensor<?x4xf32> {graph.name = "a", graph.dims = ["n", "4"]}, tensor<?x3x4xf32> {graph.name = "b", graph.dims = ["n", "3", "4"]}, tensor<?x4xf32> {graph.name = "c", graph.dims = ["n", "4"]}, tensor<?x4xf32> {graph.name = "d", graph.dims = ["n", "4"]}, tensor<?x4xf32> {graph.name = "e", graph.dims = ["n", "4"]}, tensor<?x4xf32> {graph.name = "f", graph.dims = ["n", "4"]}) {
  %w = graph.constant {value = dense<0.5> : tensor<8x4xf32>} : tensor<8x4xf32>
  %b = graph.constant {value = dense<[1.0, 2.0, 3.0, 4.0]> : tensor<4xf32>} : tensor<4xf32>
  %b14 = graph.constant {value = dense<[[1.0, 2.0, 3.0, 4.0]]> : tensor<1x4xf32>} : tensor<1x4xf32>
  %m1 = graph.matmul %x2, %w : (tensor<?x8xf32>, tensor<8x4xf32>) -> tensor<?x4xf32>
  %a1 = graph.add %m1, %b : (tensor<?x4xf32>, tensor<4xf32>) -> tensor<?x4xf32>
  %m2 = graph.matmul %x3, %w : (tensor<?x3x8xf32>, tensor<8x4xf32>) -> tensor<?x3x4xf32>
  %a2 = graph.add %b14, %m2 : (tensor<1x4xf32>, tensor<?x3x4xf32>) -> tensor<?x3x4xf32>
  %g = graph.gemm %x2, %w {alpha = 2.0 : f32, beta = 3.0 : f32} : (tensor<?x8xf32>, tensor<8x4xf32>) -> tensor<?x4xf32>
  %a3 = graph.add %g, %b : (tensor<?x4xf32>, tensor<4xf32>) -> tensor<?x4xf32>
  %m4 = graph.matmul %x2, %w : (tensor<?x8xf32>, tensor<8x4xf32>) -> tensor<?x4xf32>
  %a4 = graph.add %m4, %b : (tensor<?x4xf32>, tensor<4xf32>) -> tensor<?x4xf32>
  %m5 = graph.matmul %x2, %w : (tensor<?x8xf32>, tensor<8x4xf32>) -> tensor<?x4xf32>
  %a5 = graph.add %m5, %x4 : (tensor<?x4xf32>, tensor<?x4xf32>) -> tensor<?x4xf32>
  func.return %a1, %a2, %a3, %a4, %m4, %a5 : tensor<?x4xf32>, tensor<?x3x4xf32>, tensor<?x4xf32>, tensor<?x4xf32>, tensor<?x4xf32>, tensor<?x4xf32>
}
