// RUN: pyflame-opt %s -p optimize-layout | filecheck %s

// Ops without a channels-last CPU kernel keep NCHW and get no transposes: a grouped conv with
// several channels per group, a 1-D conv, a conv whose weight is not a constant, a float16 pool
// and a conv_transpose. A transpose whose consumer is layout-sensitive (Flatten) stays.
// CHECK-LABEL: func.func @main
// CHECK-NOT:  NHWC
// CHECK:      graph.conv %x, %wg, %bg strides [1, 1] dilations [1, 1] pads [1, 1, 1, 1] group 2 :
// CHECK-NEXT: graph.conv %x1, %w1
// CHECK-NEXT: graph.conv %x, %wx
// CHECK-NEXT: graph.max_pool %h
// CHECK-NEXT: graph.conv_transpose %x, %wt
// CHECK-NEXT: %[[T:.*]] = graph.transpose %x {perm = array<i64: 0, 2, 3, 1>}
// CHECK-NEXT: graph.flatten %[[T]]
// CHECK-NOT:  NHWC
func.func @main(%x: tensor<1x4x5x5xf32> {graph.name = "x"}, %x1: tensor<1x4x9xf32> {graph.name = "x1"}, %wx: tensor<4x4x1x1xf32> {graph.name = "wx"}, %h: tensor<1x4x5x5xf16> {graph.name = "h"}) -> (tensor<1x6x5x5xf32> {graph.name = "a"}, tensor<1x4x9xf32> {graph.name = "b"}, tensor<1x4x5x5xf32> {graph.name = "c"}, tensor<1x4x2x2xf16> {graph.name = "d"}, tensor<1x4x5x5xf32> {graph.name = "e"}, tensor<1x100xf32> {graph.name = "f"}) {
  %wg = graph.constant {value = dense<0.5> : tensor<6x2x3x3xf32>} : tensor<6x2x3x3xf32>
  %bg = graph.constant {value = dense<0.5> : tensor<6xf32>} : tensor<6xf32>
  %w1 = graph.constant {value = dense<0.5> : tensor<4x4x3xf32>} : tensor<4x4x3xf32>
  %wt = graph.constant {value = dense<0.5> : tensor<4x4x1x1xf32>} : tensor<4x4x1x1xf32>
  %a = graph.conv %x, %wg, %bg strides [1, 1] dilations [1, 1] pads [1, 1, 1, 1] group 2 : (tensor<1x4x5x5xf32>, tensor<6x2x3x3xf32>, tensor<6xf32>) -> tensor<1x6x5x5xf32>
  %b = graph.conv %x1, %w1 strides [1] dilations [1] pads [1, 1] : (tensor<1x4x9xf32>, tensor<4x4x3xf32>) -> tensor<1x4x9xf32>
  %c = graph.conv %x, %wx strides [1, 1] dilations [1, 1] pads [0, 0, 0, 0] : (tensor<1x4x5x5xf32>, tensor<4x4x1x1xf32>) -> tensor<1x4x5x5xf32>
  %d = graph.max_pool %h {kernel_shape = array<i64: 2, 2>, strides = array<i64: 2, 2>, dilations = array<i64: 1, 1>, pads = array<i64: 0, 0, 0, 0>} : (tensor<1x4x5x5xf16>) -> tensor<1x4x2x2xf16>
  %e = graph.conv_transpose %x, %wt strides [1, 1] dilations [1, 1] pads [0, 0, 0, 0] output_padding [0, 0] : (tensor<1x4x5x5xf32>, tensor<4x4x1x1xf32>) -> tensor<1x4x5x5xf32>
  %t = graph.transpose %x {perm = array<i64: 0, 2, 3, 1>} : (tensor<1x4x5x5xf32>) -> tensor<1x5x5x4xf32>
  %f = graph.flatten %t {axis = 1 : i64} : (tensor<1x5x5x4xf32>) -> tensor<1x100xf32>
  func.return %a, %b, %c, %d, %e, %f : tensor<1x6x5x5xf32>, tensor<1x4x9xf32>, tensor<1x4x5x5xf32>, tensor<1x4x2x2xf16>, tensor<1x4x5x5xf32>, tensor<1x100xf32>
}
