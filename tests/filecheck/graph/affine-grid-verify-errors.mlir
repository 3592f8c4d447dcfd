// RUN: not pyflame-opt %s 2>&1 | filecheck %s

// CHECK: AffineGrid of a size of 4 dims needs theta [N, 2, 3], got [2, 3, 4]
func.func @affine(%t: tensor<2x3x4xf32>) -> tensor<2x4x4x2xf32> {
  %y = graph.affine_grid %t {size = ["2", "3", "4", "4"]} : (tensor<2x3x4xf32>) -> tensor<2x4x4x2xf32>
  func.return %y : tensor<2x4x4x2xf32>
}
