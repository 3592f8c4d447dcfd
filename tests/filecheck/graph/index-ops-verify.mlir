// RUN: not pyflame-opt %s 2>&1 | filecheck %s
// ScatterND updates must have shape indices[:-1] + data[k:].

// CHECK: graph.scatter_nd: updates differ from shape indices[:-1] + data[1:] (['2', '3'] vs ['2', '4']): 3 vs 4
func.func @main(%x: tensor<5x4xf32>, %r: tensor<2x1xi64>, %v: tensor<2x3xf32>) -> tensor<5x4xf32> {
  %m = graph.scatter_nd %x, %r, %v : (tensor<5x4xf32>, tensor<2x1xi64>, tensor<2x3xf32>) -> tensor<5x4xf32>
  func.return %m : tensor<5x4xf32>
}
