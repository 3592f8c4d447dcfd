// RUN: pyflame-opt %s -p 'quantize-static-int8{activations="x=0.05:128","conv:0=0.1:100","add:0=0.2:120","relu:0=0.15:0"}' | filecheck %s
// RUN: pyflame-opt %s -p 'quantize-static-int8{activations="x=0.05:128","conv:0=0.1:100"}' | filecheck %s --check-prefix=UNCALIBRATED

// A residual Add of a layer's result and the block's input adds their codes: the conv's result
// is not dequantized for it, the input is quantized (as for the conv: CSE merges the two), and
// the Relu after the Add is its output clamp (the Relu's type starts at its zero point).
// CHECK:      %[[C:.*]] = quant.conv {{.*}}type = !quant.uniform<u8, 0.1:100>
// CHECK-NEXT: %[[X:.*]] = quant.quantize %x {{.*}}type = !quant.uniform<u8, 0.05:128>}
// CHECK-NEXT: %[[A:.*]] = quant.add %[[C]], %[[X]] {{{.*}}input_types = [!quant.uniform<u8, 0.1:100>, !quant.uniform<u8, 0.05:128>], type = !quant.uniform<u8, 0.15:0>}
// CHECK-NEXT: %[[Y:.*]] = quant.dequantize %[[A]]
// CHECK-NEXT: func.return %[[Y]]

// An Add whose result has no calibrated type stays float32.
// UNCALIBRATED: graph.add
// UNCALIBRATED-NOT: quant.add

func.func @main(%x: tensor<1x4x8x8xf32> {graph.name = "x", graph.dims = ["1", "4", "8", "8"]}) -> (tensor<1x4x8x8xf32> {graph.name = "y", graph.dims = ["1", "4", "8", "8"]}) {
  %w = graph.constant {value = dense<0.5> : tensor<4x4x1x1xf32>} : tensor<4x4x1x1xf32>
  %c = graph.conv %x, %w strides [1, 1] dilations [1, 1] pads [0, 0, 0, 0] {graph.node = "conv"} : (tensor<1x4x8x8xf32>, tensor<4x4x1x1xf32>) -> tensor<1x4x8x8xf32>
  %s = graph.add %c, %x {graph.node = "add"} : (tensor<1x4x8x8xf32>, tensor<1x4x8x8xf32>) -> tensor<1x4x8x8xf32>
  %y = graph.relu %s {graph.node = "relu"} : (tensor<1x4x8x8xf32>) -> tensor<1x4x8x8xf32>
  func.return %y : tensor<1x4x8x8xf32>
}
