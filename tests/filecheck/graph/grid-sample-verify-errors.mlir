// RUN: not pyflame-opt %s 2>&1 | filecheck %s

// A 2-d grid sample needs grid points of 2 coordinates.
// CHECK: GridSample of a 4-d input needs a grid [N, ..., 2], got 4-d grid with last dim 3
func.func @main(%x: tensor<1x2x4x4xf32>, %g: tensor<1x3x5x3xf32>) -> tensor<1x2x3x5xf32> {
  %y = graph.grid_sample %x, %g : (tensor<1x2x4x4xf32>, tensor<1x3x5x3xf32>) -> tensor<1x2x3x5xf32>
  func.return %y : tensor<1x2x3x5xf32>
}
