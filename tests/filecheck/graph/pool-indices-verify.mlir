// RUN: not pyflame-opt %s 2>&1 | filecheck %s
// MaxUnpool's output cannot be smaller than the box its indices address.

// CHECK: graph.max_unpool: spatial_shape [3, 4] is smaller than index_shape [4, 4]
func.func @main(%x: tensor<1x1x2x2xf32>, %i: tensor<1x1x2x2xi64>) -> tensor<1x1x3x4xf32> {
  %u = graph.max_unpool %x, %i {index_shape = array<i64: 4, 4>, spatial_shape = array<i64: 3, 4>} : (tensor<1x1x2x2xf32>, tensor<1x1x2x2xi64>) -> tensor<1x1x3x4xf32>
  func.return %u : tensor<1x1x3x4xf32>
}
