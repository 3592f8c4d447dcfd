// RUN: pyflame-opt %s -p optimize-layout | filecheck %s

// Adjacent transposes compose into one (perm p then q = p[q]), which then sinks below the Neg;
// an identity composition disappears, and the transpose leaving the NHWC average pool cancels
// against the one entering the NHWC max pool.
// CHECK-LABEL: func.func @main
// CHECK-NEXT: %[[NX:.*]] = graph.neg %x : (tensor<2x3x4x5xf32>) -> tensor<2x3x4x5xf32>
// CHECK-NEXT: %[[N:.*]] = graph.transpose %[[NX]] {perm = array<i64: 0, 3, 2, 1>} : (tensor<2x3x4x5xf32>) -> tensor<2x5x4x3xf32>
// CHECK-NEXT: %[[IN:.*]] = graph.transpose %x {perm = array<i64: 0, 2, 3, 1>}
// CHECK-NEXT: %[[P1:.*]] = graph.average_pool %[[IN]] {{.*}}layout = #graph<layout NHWC>}
// CHECK-NEXT: %[[P2:.*]] = graph.max_pool %[[P1]] {{.*}}layout = #graph<layout NHWC>}
// CHECK-NEXT: %[[OUT:.*]] = graph.transpose %[[P2]] {perm = array<i64: 0, 3, 1, 2>}
// CHECK-NEXT: func.return %x, %[[N]], %[[OUT]]
func.func @main(%x: tensor<2x3x4x5xf32> {graph.name = "x"}) -> (tensor<2x3x4x5xf32> {graph.name = "a"}, tensor<2x5x4x3xf32> {graph.name = "b"}, tensor<2x3x4x5xf32> {graph.name = "c"}) {
  %t1 = graph.transpose %x {perm = array<i64: 0, 2, 3, 1>} : (tensor<2x3x4x5xf32>) -> tensor<2x4x5x3xf32>
  %t2 = graph.transpose %t1 {perm = array<i64: 0, 3, 1, 2>} : (tensor<2x4x5x3xf32>) -> tensor<2x3x4x5xf32>
  %t3 = graph.transpose %t1 {perm = array<i64: 0, 2, 1, 3>} : (tensor<2x4x5x3xf32>) -> tensor<2x5x4x3xf32>
  %n = graph.neg %t3 : (tensor<2x5x4x3xf32>) -> tensor<2x5x4x3xf32>
  %p1 = graph.average_pool %t2 {kernel_shape = array<i64: 3, 3>, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, pads = array<i64: 1, 1, 1, 1>} : (tensor<2x3x4x5xf32>) -> tensor<2x3x4x5xf32>
  %p2 = graph.max_pool %p1 {kernel_shape = array<i64: 3, 3>, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, pads = array<i64: 1, 1, 1, 1>} : (tensor<2x3x4x5xf32>) -> tensor<2x3x4x5xf32>
  func.return %t2, %n, %p2 : tensor<2x3x4x5xf32>, tensor<2x5x4x3xf32>, tensor<2x3x4x5xf32>
}
