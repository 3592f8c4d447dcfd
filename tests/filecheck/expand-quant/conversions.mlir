// RUN: pyflame-opt %s -p expand-quant | filecheck %s

// quantize: clip(round(x / s) + z) cast to the storage; dequantize: (cast(q) - z) * s, per-axis
// scales broadcast along their axis; a quantized op is its float op between the two.
// CHECK:      %[[S:.*]] = graph.constant {value = dense<5.000000e-02> : tensor<1x1xf32>}
// CHECK-NEXT: %[[D:.*]] = graph.div %x, %[[S]]
// CHECK-NEXT: %[[R:.*]] = graph.round %[[D]]
// CHECK-NEXT: %[[Z:.*]] = graph.constant {value = dense<1.280000e+02> : tensor<1x1xf32>}
// CHECK-NEXT: %[[A:.*]] = graph.add %[[R]], %[[Z]]
// CHECK-NEXT: %[[C:.*]] = graph.clip %[[A]] {min = 0.000000e+00 : f32, max = 2.550000e+02 : f32}
// CHECK-NEXT: %q = graph.cast %[[C]] to uint8
// CHECK:      %[[WF:.*]] = graph.cast %w to float32 : (tensor<4x3xi8>) -> tensor<4x3xf32>
// CHECK-NEXT: %[[WS:.*]] = graph.constant {value = dense<{{\[\[}}1.000000e-02, 2.000000e-02, 3.000000e-02]]> : tensor<1x3xf32>}
// CHECK-NEXT: %[[W:.*]] = graph.mul %[[WF]], %[[WS]]
// CHECK-NEXT: %[[MM:.*]] = graph.matmul %{{.*}}, %[[W]] : (tensor<2x4xf32>, tensor<4x3xf32>) -> tensor<2x3xf32>
// CHECK:      %mm = graph.cast %{{.*}} to uint8 : (tensor<2x3xf32>) -> tensor<2x3xui8>
// CHECK-NOT:  quant.
func.func @main(%x: tensor<2x4xf32>, %w: tensor<4x3xi8>) -> tensor<2x3xf32> {
  %q = quant.quantize %x {type = !quant.uniform<u8, 0.05:128>} : (tensor<2x4xf32>) -> tensor<2x4xui8>
  %mm = quant.matmul %q, %w {input_types = [!quant.uniform<u8, 0.05:128>, !quant.uniform<i8:1, {0.01:0, 0.02:0, 0.03:0}>], type = !quant.uniform<u8, 0.1:120>} : (tensor<2x4xui8>, tensor<4x3xi8>) -> tensor<2x3xui8>
  %y = quant.dequantize %mm {type = !quant.uniform<u8, 0.1:120>} : (tensor<2x3xui8>) -> tensor<2x3xf32>
  func.return %y : tensor<2x3xf32>
}
