// RUN: pyflame-opt %s | filecheck %s
// RUN: pyflame-opt %s | pyflame-opt | filecheck %s

// The quant ops and quantized types print and parse back.
// CHECK:      %q = quant.quantize %x {type = !quant.uniform<u8, 0.05:128>} : (tensor<2x4xf32>) -> tensor<2x4xui8>
// CHECK-NEXT: %mm = quant.matmul %q, %w {input_types = [!quant.uniform<u8, 0.05:128>, !quant.uniform<i8:1, {0.01:0, 0.02:0, 0.03:0}>], type = !quant.uniform<u8, 0.1:120>} : (tensor<2x4xui8>, tensor<4x3xi8>) -> tensor<2x3xui8>
// CHECK-NEXT: %r = quant.requantize %mm {input_type = !quant.uniform<u8, 0.1:120>, type = !quant.uniform<i8, 0.2:0>} : (tensor<2x3xui8>) -> tensor<2x3xi8>
// CHECK-NEXT: %y = quant.dequantize %r {type = !quant.uniform<i8, 0.2:0>} : (tensor<2x3xi8>) -> tensor<2x3xf32>
// CHECK-NEXT: %d, %s, %z = quant.dynamic_quantize %x : (tensor<2x4xf32>) -> (tensor<2x4xui8>, tensor<f32>, tensor<ui8>)
// CHECK-NEXT: %i = quant.matmul_integer %d, %w zero_points(%z, %wz) : (tensor<2x4xui8>, tensor<4x3xi8>, tensor<ui8>, tensor<i8>) -> tensor<2x3xi32>
func.func @main(%x: tensor<2x4xf32>, %w: tensor<4x3xi8>, %wz: tensor<i8>) -> (tensor<2x3xf32>, tensor<2x3xi32>) {
  %q = quant.quantize %x {type = !quant.uniform<u8, 0.05:128>} : (tensor<2x4xf32>) -> tensor<2x4xui8>
  %mm = quant.matmul %q, %w {input_types = [!quant.uniform<u8, 0.05:128>, !quant.uniform<i8:1, {0.01:0, 0.02:0, 0.03:0}>], type = !quant.uniform<u8, 0.1:120>} : (tensor<2x4xui8>, tensor<4x3xi8>) -> tensor<2x3xui8>
  %r = quant.requantize %mm {input_type = !quant.uniform<u8, 0.1:120>, type = !quant.uniform<i8, 0.2:0>} : (tensor<2x3xui8>) -> tensor<2x3xi8>
  %y = quant.dequantize %r {type = !quant.uniform<i8, 0.2:0>} : (tensor<2x3xi8>) -> tensor<2x3xf32>
  %d, %s, %z = quant.dynamic_quantize %x : (tensor<2x4xf32>) -> (tensor<2x4xui8>, tensor<f32>, tensor<ui8>)
  %i = quant.matmul_integer %d, %w zero_points(%z, %wz) : (tensor<2x4xui8>, tensor<4x3xi8>, tensor<ui8>, tensor<i8>) -> tensor<2x3xi32>
  func.return %y, %i : tensor<2x3xf32>, tensor<2x3xi32>
}
