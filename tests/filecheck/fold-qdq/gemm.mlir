// RUN: pyflame-opt %s -p fold-qdq,eliminate-dead-code | filecheck %s

// quantize_static's Gemm (transB, a bias of int32 codes x input scale x weight scale, folded to
// float32): quant.gemm with the codes ([100, -7] by scales [0.125, 0.25]).
// CHECK:      graph.weight @gemm_bias_int32 : tensor<2xi32>
// CHECK:      %[[B:.*]] = graph.constant @gemm_bias_int32 : tensor<2xi32>
// CHECK-NEXT: %q = quant.gemm %xq, %w, %[[B]] {input_types = [!quant.uniform<u8, 0.5:128>, !quant.uniform<i8:0, {0.25:0, 0.5:0}>], type = !quant.uniform<u8, 0.1:120>, trans_b = true}
// CHECK-NEXT: func.return %q
func.func @main(%xq: tensor<3x4xui8>, %w: tensor<2x4xi8>) -> tensor<3x2xui8> {
  %x = quant.dequantize %xq {type = !quant.uniform<u8, 0.5:128>} : (tensor<3x4xui8>) -> tensor<3x4xf32>
  %wf = quant.dequantize %w {type = !quant.uniform<i8:0, {0.25:0, 0.5:0}>} : (tensor<2x4xi8>) -> tensor<2x4xf32>
  %b = graph.constant {value = dense<[12.5, -1.75]> : tensor<2xf32>} : tensor<2xf32>
  %g = graph.gemm %x, %wf, %b {trans_b = true} : (tensor<3x4xf32>, tensor<2x4xf32>, tensor<2xf32>) -> tensor<3x2xf32>
  %q = quant.quantize %g {type = !quant.uniform<u8, 0.1:120>} : (tensor<3x2xf32>) -> tensor<3x2xui8>
  func.return %q : tensor<3x2xui8>
}

// alpha != 1 (and a C that is not a bias [N]) keep the float form.
// CHECK-LABEL: func.func @scaled
// CHECK:       graph.gemm
// CHECK-NOT:   quant.gemm
func.func @scaled(%xq: tensor<3x4xui8>, %w: tensor<4x2xi8>) -> tensor<3x2xui8> {
  %x = quant.dequantize %xq {type = !quant.uniform<u8, 0.5:128>} : (tensor<3x4xui8>) -> tensor<3x4xf32>
  %wf = quant.dequantize %w {type = !quant.uniform<i8, 0.25:0>} : (tensor<4x2xi8>) -> tensor<4x2xf32>
  %g = graph.gemm %x, %wf {alpha = 2.0 : f32} : (tensor<3x4xf32>, tensor<4x2xf32>) -> tensor<3x2xf32>
  %q = quant.quantize %g {type = !quant.uniform<u8, 0.1:120>} : (tensor<3x2xf32>) -> tensor<3x2xui8>
  func.return %q : tensor<3x2xui8>
}
