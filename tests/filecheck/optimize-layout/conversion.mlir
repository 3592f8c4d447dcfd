// RUN: pyflame-opt %s -p optimize-layout | filecheck %s

// A conv and a pool with channels-last CPU kernels become NHWC, wrapped in transposes; the
// transposes between them cancel, so the chain keeps one transpose at each end. A conv's residual
// is transposed like its input.
// CHECK-LABEL: func.func @main
// CHECK:      %[[IN:.*]] = graph.transpose %x {perm = array<i64: 0, 2, 3, 1>} : (tensor<?x4x8x8xf32>) -> tensor<?x8x8x4xf32>
// CHECK-NEXT: %[[C:.*]] = graph.conv %[[IN]], %w, %b strides [1, 1] dilations [1, 1] pads [1, 1, 1, 1] layout NHWC activation <relu> : (tensor<?x8x8x4xf32>, tensor<6x4x3x3xf32>, tensor<6xf32>) -> tensor<?x8x8x6xf32>
// CHECK-NEXT: %[[P:.*]] = graph.max_pool %[[C]] {kernel_shape = {{.*}}, layout = #graph<layout NHWC>} : (tensor<?x8x8x6xf32>) -> tensor<?x4x4x6xf32>
// CHECK-NEXT: %[[R:.*]] = graph.conv %[[P]], %w1 residual %[[P]] : tensor<?x4x4x6xf32> strides [1, 1] dilations [1, 1] pads [0, 0, 0, 0] layout NHWC : (tensor<?x4x4x6xf32>, tensor<6x6x1x1xf32>) -> tensor<?x4x4x6xf32>
// CHECK-NEXT: %[[G:.*]] = graph.global_average_pool %[[R]] {layout = #graph<layout NHWC>} : (tensor<?x4x4x6xf32>) -> tensor<?x1x1x6xf32>
// CHECK-NEXT: %[[OUT:.*]] = graph.transpose %[[G]] {perm = array<i64: 0, 3, 1, 2>} : (tensor<?x1x1x6xf32>) -> tensor<?x6x1x1xf32>
// CHECK-NEXT: func.return %[[OUT]]
// CHECK-NOT:  graph.transpose
func.func @main(%x: tensor<?x4x8x8xf32> {graph.name = "x", graph.dims = ["n", "4", "8", "8"]}) -> (tensor<?x6x1x1xf32> {graph.name = "y", graph.dims = ["n", "6", "1", "1"]}) {
  %w = graph.constant {value = dense<0.5> : tensor<6x4x3x3xf32>} : tensor<6x4x3x3xf32>
  %b = graph.constant {value = dense<1.0> : tensor<6xf32>} : tensor<6xf32>
  %w1 = graph.constant {value = dense<0.5> : tensor<6x6x1x1xf32>} : tensor<6x6x1x1xf32>
  %c = graph.conv %x, %w, %b strides [1, 1] dilations [1, 1] pads [1, 1, 1, 1] activation <relu> : (tensor<?x4x8x8xf32>, tensor<6x4x3x3xf32>, tensor<6xf32>) -> tensor<?x6x8x8xf32>
  %p = graph.max_pool %c {kernel_shape = array<i64: 2, 2>, strides = array<i64: 2, 2>, dilations = array<i64: 1, 1>, pads = array<i64: 0, 0, 0, 0>} : (tensor<?x6x8x8xf32>) -> tensor<?x6x4x4xf32>
  %r = graph.conv %p, %w1 residual %p : tensor<?x6x4x4xf32> strides [1, 1] dilations [1, 1] pads [0, 0, 0, 0] : (tensor<?x6x4x4xf32>, tensor<6x6x1x1xf32>) -> tensor<?x6x4x4xf32>
  %g = graph.global_average_pool %r : (tensor<?x6x4x4xf32>) -> tensor<?x6x1x1xf32>
  func.return %g : tensor<?x6x1x1xf32>
}
