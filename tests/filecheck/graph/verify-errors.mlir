// RUN: not pyflame-opt %s 2>&1 | filecheck %s

// CHECK: graph.gemm: Gemm inner dims differ: 8 vs 7
func.func @main(%a: tensor<?x8xf32>, %b: tensor<7x4xf32>) -> tensor<?x4xf32> {
  %y = graph.gemm %a, %b : (tensor<?x8xf32>, tensor<7x4xf32>) -> tensor<?x4xf32>
  func.return %y : tensor<?x4xf32>
}
