// RUN: pyflame-opt %s -p optimize-layout | filecheck %s

// Quantized convolutions run channels-last; the transposes leaving them sink through per-tensor
// dequantize, the residual Add and quantize to meet the next one: only the ends keep one.
// CHECK-LABEL: func.func @main
// CHECK:      %[[Q0:.*]] = quant.quantize %x
// CHECK-NEXT: %[[IN:.*]] = graph.transpose %[[Q0]] {perm = array<i64: 0, 2, 3, 1>}
// CHECK-NEXT: %[[C1:.*]] = quant.conv %[[IN]], %w {{.*}}layout = #graph<layout NHWC>{{.*}} -> tensor<?x6x6x4xui8>
// CHECK-NEXT: %[[C2:.*]] = quant.conv %[[C1]], %w {{.*}}layout = #graph<layout NHWC>{{.*}} -> tensor<?x6x6x4xui8>
// CHECK-NEXT: %[[D2:.*]] = quant.dequantize %[[C2]] {{.*}} : (tensor<?x6x6x4xui8>) -> tensor<?x6x6x4xf32>
// CHECK-NEXT: %[[D1:.*]] = quant.dequantize %[[C1]] {{.*}} : (tensor<?x6x6x4xui8>) -> tensor<?x6x6x4xf32>
// CHECK-NEXT: %[[ADD:.*]] = graph.add %[[D2]], %[[D1]] : (tensor<?x6x6x4xf32>, tensor<?x6x6x4xf32>) -> tensor<?x6x6x4xf32>
// CHECK-NEXT: %[[Q:.*]] = quant.quantize %[[ADD]] {{.*}} : (tensor<?x6x6x4xf32>) -> tensor<?x6x6x4xui8>
// CHECK-NEXT: %[[C3:.*]] = quant.conv %[[Q]], %w {{.*}}layout = #graph<layout NHWC>{{.*}} -> tensor<?x6x6x4xui8>
// CHECK-NEXT: %[[D3:.*]] = quant.dequantize %[[C3]] {{.*}} : (tensor<?x6x6x4xui8>) -> tensor<?x6x6x4xf32>
// CHECK-NEXT: %[[OUT:.*]] = graph.transpose %[[D3]] {perm = array<i64: 0, 3, 1, 2>}
// CHECK-NEXT: func.return %[[OUT]]
func.func @main(%x: tensor<?x4x6x6xf32> {graph.name = "x", graph.dims = ["n", "4", "6", "6"]}) -> (tensor<?x4x6x6xf32> {graph.name = "y", graph.dims = ["n", "4", "6", "6"]}) {
  %w = graph.constant {value = dense<3> : tensor<4x4x3x3xi8>} : tensor<4x4x3x3xi8>
  %q0 = quant.quantize %x {type = !quant.uniform<u8, 0.1:128>} : (tensor<?x4x6x6xf32>) -> tensor<?x4x6x6xui8>
  %c1 = quant.conv %q0, %w {input_types = [!quant.uniform<u8, 0.1:128>, !quant.uniform<i8, 0.01:0>], type = !quant.uniform<u8, 0.2:10>, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, pads = array<i64: 1, 1, 1, 1>} : (tensor<?x4x6x6xui8>, tensor<4x4x3x3xi8>) -> tensor<?x4x6x6xui8>
  %c2 = quant.conv %c1, %w {input_types = [!quant.uniform<u8, 0.2:10>, !quant.uniform<i8, 0.01:0>], type = !quant.uniform<u8, 0.2:10>, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, pads = array<i64: 1, 1, 1, 1>} : (tensor<?x4x6x6xui8>, tensor<4x4x3x3xi8>) -> tensor<?x4x6x6xui8>
  %d2 = quant.dequantize %c2 {type = !quant.uniform<u8, 0.2:10>} : (tensor<?x4x6x6xui8>) -> tensor<?x4x6x6xf32>
  %d1 = quant.dequantize %c1 {type = !quant.uniform<u8, 0.2:10>} : (tensor<?x4x6x6xui8>) -> tensor<?x4x6x6xf32>
  %add = graph.add %d2, %d1 : (tensor<?x4x6x6xf32>, tensor<?x4x6x6xf32>) -> tensor<?x4x6x6xf32>
  %q = quant.quantize %add {type = !quant.uniform<u8, 0.3:0>} : (tensor<?x4x6x6xf32>) -> tensor<?x4x6x6xui8>
  %c3 = quant.conv %q, %w {input_types = [!quant.uniform<u8, 0.3:0>, !quant.uniform<i8, 0.01:0>], type = !quant.uniform<u8, 0.2:10>, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, pads = array<i64: 1, 1, 1, 1>} : (tensor<?x4x6x6xui8>, tensor<4x4x3x3xi8>) -> tensor<?x4x6x6xui8>
  %y = quant.dequantize %c3 {type = !quant.uniform<u8, 0.2:10>} : (tensor<?x4x6x6xui8>) -> tensor<?x4x6x6xf32>
  func.return %y : tensor<?x4x6x6xf32>
}
