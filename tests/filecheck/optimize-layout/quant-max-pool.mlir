// RUN: pyflame-opt %s -p optimize-layout | filecheck %s

// A MaxPool on the uint8 codes between quantized convolutions runs channels-last too (the
// channels-last window kernel takes bytes): no transpose between the three ops.
// CHECK-LABEL: func.func @main
// CHECK:      %[[IN:.*]] = graph.transpose %x {perm = array<i64: 0, 2, 3, 1>}
// CHECK-NEXT: %[[C1:.*]] = quant.conv %[[IN]], %w {{.*}}layout = #graph<layout NHWC>{{.*}} -> tensor<?x8x8x4xui8>
// CHECK-NEXT: %[[P:.*]] = graph.max_pool %[[C1]] {{.*}}layout = #graph<layout NHWC>{{.*}} : (tensor<?x8x8x4xui8>) -> tensor<?x4x4x4xui8>
// CHECK-NEXT: %[[C2:.*]] = quant.conv %[[P]], %w {{.*}}layout = #graph<layout NHWC>{{.*}} -> tensor<?x4x4x4xui8>
// CHECK-NEXT: %[[OUT:.*]] = graph.transpose %[[C2]] {perm = array<i64: 0, 3, 1, 2>}
// CHECK-NEXT: func.return %[[OUT]]
func.func @main(%x: tensor<?x4x8x8xui8> {graph.name = "x", graph.dims = ["n", "4", "8", "8"]}) -> (tensor<?x4x4x4xui8> {graph.name = "y", graph.dims = ["n", "4", "4", "4"]}) {
  %w = graph.constant {value = dense<3> : tensor<4x4x3x3xi8>} : tensor<4x4x3x3xi8>
  %c1 = quant.conv %x, %w {input_types = [!quant.uniform<u8, 0.1:128>, !quant.uniform<i8, 0.01:0>], type = !quant.uniform<u8, 0.2:0>, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, pads = array<i64: 1, 1, 1, 1>} : (tensor<?x4x8x8xui8>, tensor<4x4x3x3xi8>) -> tensor<?x4x8x8xui8>
  %p = graph.max_pool %c1 {kernel_shape = array<i64: 3, 3>, strides = array<i64: 2, 2>, dilations = array<i64: 1, 1>, pads = array<i64: 1, 1, 1, 1>} : (tensor<?x4x8x8xui8>) -> tensor<?x4x4x4xui8>
  %c2 = quant.conv %p, %w {input_types = [!quant.uniform<u8, 0.2:0>, !quant.uniform<i8, 0.01:0>], type = !quant.uniform<u8, 0.2:10>, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, pads = array<i64: 1, 1, 1, 1>} : (tensor<?x4x4x4xui8>, tensor<4x4x3x3xi8>) -> tensor<?x4x4x4xui8>
  func.return %c2 : tensor<?x4x4x4xui8>
}
