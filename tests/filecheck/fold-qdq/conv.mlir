// RUN: pyflame-opt %s -p fold-qdq,eliminate-dead-code | filecheck %s

// CHECK:      %q = quant.conv %xq, %w {input_types = [!quant.uniform<u8, 0.05:128>, !quant.uniform<i8:0, {0.01:0, 0.02:0, 0.03:0}>], type = !quant.uniform<u8, 0.1:120>, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, pads = array<i64: 1, 1, 1, 1>} : (tensor<1x2x4x4xui8>, tensor<3x2x3x3xi8>) -> tensor<1x3x4x4xui8>
// CHECK-NEXT: func.return %q
func.func @main(%xq: tensor<1x2x4x4xui8>, %w: tensor<3x2x3x3xi8>) -> tensor<1x3x4x4xui8> {
  %x = quant.dequantize %xq {type = !quant.uniform<u8, 0.05:128>} : (tensor<1x2x4x4xui8>) -> tensor<1x2x4x4xf32>
  %wf = quant.dequantize %w {type = !quant.uniform<i8:0, {0.01:0, 0.02:0, 0.03:0}>} : (tensor<3x2x3x3xi8>) -> tensor<3x2x3x3xf32>
  %c = graph.conv %x, %wf strides [1, 1] dilations [1, 1] pads [1, 1, 1, 1] : (tensor<1x2x4x4xf32>, tensor<3x2x3x3xf32>) -> tensor<1x3x4x4xf32>
  %q = quant.quantize %c {type = !quant.uniform<u8, 0.1:120>} : (tensor<1x3x4x4xf32>) -> tensor<1x3x4x4xui8>
  func.return %q : tensor<1x3x4x4xui8>
}
