// RUN: not pyflame-opt %s 2>&1 | filecheck %s

// With the folded dim static, the same reshape as in symbolic-sizes.mlir is refuted.
// CHECK: graph.reshape: dim 816 is not divisible by 1088
func.func @main(%folded: tensor<3x17x16xf32>) -> tensor<?x4x17x16xf32> {
  %heads = graph.reshape %folded {shape = array<i64: -1, 4, 17, 16>} : (tensor<3x17x16xf32>) -> tensor<?x4x17x16xf32>
  func.return %heads : tensor<?x4x17x16xf32>
}
