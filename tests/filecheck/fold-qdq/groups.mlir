// RUN: pyflame-opt %s -p fold-qdq,eliminate-dead-code | filecheck %s

// A float op whose operands are all dequantized and whose only reader is a quantize becomes the
// quant op on the storage tensors; the dequantized x also feeds the add, so its dequantize stays
// for the relu (not a quantize's operand: no quantized form).
// CHECK:      %x = quant.dequantize %xq
// CHECK-NEXT: %q = quant.matmul %xq, %w {input_types = [!quant.uniform<u8, 0.05:128>, !quant.uniform<i8:1, {0.01:0, 0.02:0, 0.03:0}>], type = !quant.uniform<u8, 0.1:120>} : (tensor<2x4xui8>, tensor<4x3xi8>) -> tensor<2x3xui8>
// CHECK-NEXT: %sq = quant.add %q, %q {input_types = [!quant.uniform<u8, 0.1:120>, !quant.uniform<u8, 0.1:120>], type = !quant.uniform<u8, 0.2:128>} : (tensor<2x3xui8>, tensor<2x3xui8>) -> tensor<2x3xui8>
// CHECK-NEXT: %y = quant.dequantize %sq
// CHECK-NEXT: %r = graph.relu %x
// CHECK-NOT:  graph.matmul
func.func @main(%xq: tensor<2x4xui8>, %w: tensor<4x3xi8>) -> (tensor<2x3xf32>, tensor<2x4xf32>) {
  %x = quant.dequantize %xq {type = !quant.uniform<u8, 0.05:128>} : (tensor<2x4xui8>) -> tensor<2x4xf32>
  %wf = quant.dequantize %w {type = !quant.uniform<i8:1, {0.01:0, 0.02:0, 0.03:0}>} : (tensor<4x3xi8>) -> tensor<4x3xf32>
  %f = graph.matmul %x, %wf : (tensor<2x4xf32>, tensor<4x3xf32>) -> tensor<2x3xf32>
  %q = quant.quantize %f {type = !quant.uniform<u8, 0.1:120>} : (tensor<2x3xf32>) -> tensor<2x3xui8>
  %d = quant.dequantize %q {type = !quant.uniform<u8, 0.1:120>} : (tensor<2x3xui8>) -> tensor<2x3xf32>
  %s = graph.add %d, %d : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>
  %sq = quant.quantize %s {type = !quant.uniform<u8, 0.2:128>} : (tensor<2x3xf32>) -> tensor<2x3xui8>
  %y = quant.dequantize %sq {type = !quant.uniform<u8, 0.2:128>} : (tensor<2x3xui8>) -> tensor<2x3xf32>
  %r = graph.relu %x : (tensor<2x4xf32>) -> tensor<2x4xf32>
  func.return %y, %r : tensor<2x3xf32>, tensor<2x4xf32>
}
