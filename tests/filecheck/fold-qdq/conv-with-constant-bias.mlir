// RUN: pyflame-opt %s -p fold-qdq,eliminate-dead-code | filecheck %s

// A QDQ model's bias: int32 codes x (input scale x weight scale), folded to a float32 constant by
// fold-constants. It folds back to the codes ([100, -7], by scales [0.125, 0.25]); int8 activations fold as uint8 ones do.
// CHECK:      graph.weight @conv_bias_int32 : tensor<2xi32>
// CHECK:      %[[B:.*]] = graph.constant @conv_bias_int32 : tensor<2xi32>
// CHECK-NEXT: %q = quant.conv %xq, %w, %[[B]] {input_types = [!quant.uniform<i8, 0.5:-3>, !quant.uniform<i8:0, {0.25:0, 0.5:0}>], type = !quant.uniform<i8, 0.1:4>
// CHECK-NEXT: func.return %q
func.func @main(%xq: tensor<1x2x4x4xi8>, %w: tensor<2x2x1x1xi8>) -> tensor<1x2x4x4xi8> {
  %x = quant.dequantize %xq {type = !quant.uniform<i8, 0.5:-3>} : (tensor<1x2x4x4xi8>) -> tensor<1x2x4x4xf32>
  %wf = quant.dequantize %w {type = !quant.uniform<i8:0, {0.25:0, 0.5:0}>} : (tensor<2x2x1x1xi8>) -> tensor<2x2x1x1xf32>
  %b = graph.constant {value = dense<[12.5, -1.75]> : tensor<2xf32>} : tensor<2xf32>
  %c = graph.conv %x, %wf, %b strides [1, 1] dilations [1, 1] pads [0, 0, 0, 0] : (tensor<1x2x4x4xf32>, tensor<2x2x1x1xf32>, tensor<2xf32>) -> tensor<1x2x4x4xf32>
  %q = quant.quantize %c {type = !quant.uniform<i8, 0.1:4>} : (tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xi8>
  func.return %q : tensor<1x2x4x4xi8>
}

// A bias off the accumulator's grid keeps the float form: folding would change it.
// CHECK-LABEL: func.func @off_grid
// CHECK:       graph.conv
// CHECK-NOT:   quant.conv
func.func @off_grid(%xq: tensor<1x2x4x4xi8>, %w: tensor<2x2x1x1xi8>) -> tensor<1x2x4x4xi8> {
  %x = quant.dequantize %xq {type = !quant.uniform<i8, 0.5:-3>} : (tensor<1x2x4x4xi8>) -> tensor<1x2x4x4xf32>
  %wf = quant.dequantize %w {type = !quant.uniform<i8:0, {0.25:0, 0.5:0}>} : (tensor<2x2x1x1xi8>) -> tensor<2x2x1x1xf32>
  %b = graph.constant {value = dense<[12.5, -1.7]> : tensor<2xf32>} : tensor<2xf32>
  %c = graph.conv %x, %wf, %b strides [1, 1] dilations [1, 1] pads [0, 0, 0, 0] : (tensor<1x2x4x4xf32>, tensor<2x2x1x1xf32>, tensor<2xf32>) -> tensor<1x2x4x4xf32>
  %q = quant.quantize %c {type = !quant.uniform<i8, 0.1:4>} : (tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xi8>
  func.return %q : tensor<1x2x4x4xi8>
}
