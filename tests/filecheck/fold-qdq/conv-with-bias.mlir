// RUN: pyflame-opt %s -p fold-qdq | filecheck %s

// A conv with a run-time float bias keeps its float form.
// CHECK:     graph.conv
// CHECK-NOT: quant.conv
func.func @main(%xq: tensor<1x2x4x4xui8>, %w: tensor<3x2x1x1xi8>, %b: tensor<3xf32>) -> tensor<1x3x4x4xui8> {
  %x = quant.dequantize %xq {type = !quant.uniform<u8, 0.05:128>} : (tensor<1x2x4x4xui8>) -> tensor<1x2x4x4xf32>
  %wf = quant.dequantize %w {type = !quant.uniform<i8, 0.01:0>} : (tensor<3x2x1x1xi8>) -> tensor<3x2x1x1xf32>
  %c = graph.conv %x, %wf, %b strides [1, 1] dilations [1, 1] pads [0, 0, 0, 0] : (tensor<1x2x4x4xf32>, tensor<3x2x1x1xf32>, tensor<3xf32>) -> tensor<1x3x4x4xf32>
  %q = quant.quantize %c {type = !quant.uniform<u8, 0.1:120>} : (tensor<1x3x4x4xf32>) -> tensor<1x3x4x4xui8>
  func.return %q : tensor<1x3x4x4xui8>
}
