// RUN: pyflame-opt %s -p 'quantize-static-int8{activations="x=0.05:128","conv:0=0.1:100","relu:0=0.08:0","fc:0=0.2:128"}' --print-weights | filecheck %s
// RUN: pyflame-opt %s -p 'quantize-static-int8{activations="x=0.05:128","conv:0=0.1:100","relu:0=0.08:3","fc:0=0.2:128" per_channel=true exclude=fc}' | filecheck %s --check-prefix=CHANNEL
// RUN: pyflame-opt %s -p 'quantize-static-int8{activations="x=0.05:128"}' | filecheck %s --check-prefix=UNCALIBRATED

// The input is quantized with its calibrated type; the Conv computes on codes, its bias int32 at
// input scale x weight scale (0.5 / (0.05 x 4 / 127) -> 318), its output clamp is the Relu (the
// Relu's type has zero point 0); MaxPool and Flatten run on the codes; the Gemm (its weight
// transposed) reads them, and as no int8 op reads its result, its int32 product is rescaled to
// float32 at input scale x weight scale (0.08 x 4 / 127).
// CHECK:      %[[X:.*]] = quant.quantize %x {{.*}}type = !quant.uniform<u8, 0.05:128>}
// CHECK-NEXT: %[[W:.*]] = graph.constant @conv_int8 : tensor<2x4x1x1xi8>
// CHECK-NEXT: %[[B:.*]] = graph.constant @conv_bias_int32 : tensor<2xi32>
// CHECK-NEXT: %[[C:.*]] = quant.conv %[[X]], %[[W]], %[[B]] {{{.*}}input_types = [!quant.uniform<u8, 0.05:128>, !quant.uniform<i8, 0.031496062874794006:0>], type = !quant.uniform<u8, 0.08:0>{{.*}} -> tensor<?x2x8x8xui8>
// CHECK-NEXT: %[[P:.*]] = graph.max_pool %[[C]] {{.*}} : (tensor<?x2x8x8xui8>) -> tensor<?x2x2x2xui8>
// CHECK-NEXT: %[[F:.*]] = graph.flatten %[[P]] {{.*}} : (tensor<?x2x2x2xui8>) -> tensor<?x8xui8>
// CHECK-NEXT: %[[G:.*]] = graph.constant @fc_int8 : tensor<8x3xi8>
// CHECK-NEXT: %[[XZ:.*]] = graph.constant {value = dense<0> : tensor<ui8>}
// CHECK-NEXT: %[[WZ:.*]] = graph.constant {value = dense<0> : tensor<i8>}
// CHECK-NEXT: %[[Q:.*]] = quant.matmul_integer %[[F]], %[[G]] zero_points(%[[XZ]], %[[WZ]]) {{.*}} -> tensor<?x3xi32>
// CHECK-NEXT: %[[I:.*]] = graph.cast %[[Q]] to float32
// CHECK-NEXT: %[[S:.*]] = graph.constant {value = dense<0.00251968508> : tensor<f32>}
// CHECK-NEXT: %[[Y:.*]] = graph.mul %[[I]], %[[S]]
// CHECK-NEXT: func.return %[[Y]]
// CHECK:      conv_int8: "0x0100000020c0107f0820e040"
// CHECK-NEXT: conv_bias_int32: "0x040000003e01000061ffffff"
// CHECK-NEXT: fc_int8: "0x01000000202000402000e02000102000102040202040402040812040"

// Per channel: one weight scale per output channel (axis 0 of a Conv weight). A Relu whose type
// does not start at its zero point is not a clamp: the Conv's own type, then dequantize and Relu.
// An excluded layer stays float32 and reads the dequantized codes.
// CHANNEL:      quant.conv {{.*}}!quant.uniform<i8:0, {0.031496062874794006:0, 0.015748031437397003:0}>], type = !quant.uniform<u8, 0.1:100>
// CHANNEL-NEXT: %[[D:.*]] = quant.dequantize
// CHANNEL-NEXT: %[[R:.*]] = graph.relu %[[D]]
// CHANNEL-NEXT: %[[P:.*]] = graph.max_pool %[[R]] {{.*}}tensor<?x2x2x2xf32>
// CHANNEL:      graph.gemm

// A layer whose result has no calibrated type stays float32.
// UNCALIBRATED-NOT: quant.
// UNCALIBRATED:     graph.conv %x, %w, %b

func.func @main(%x: tensor<?x4x8x8xf32> {graph.name = "x", graph.dims = ["batch", "4", "8", "8"]}) -> (tensor<?x3xf32> {graph.name = "y", graph.dims = ["batch", "3"]}) {
  %w = graph.constant {value = dense<[[[[1.0]], [[-2.0]], [[0.5]], [[4.0]]], [[[0.25]], [[1.0]], [[-1.0]], [[2.0]]]]> : tensor<2x4x1x1xf32>} : tensor<2x4x1x1xf32>
  %b = graph.constant {value = dense<[0.5, -0.25]> : tensor<2xf32>} : tensor<2xf32>
  %g = graph.constant {value = dense<[[1.0, 2.0, -1.0, 0.5, 0.5, 1.0, 2.0, -4.0], [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0, 2.0, 2.0, 2.0, 2.0]]> : tensor<3x8xf32>} : tensor<3x8xf32>
  %c = graph.conv %x, %w, %b strides [1, 1] dilations [1, 1] pads [0, 0, 0, 0] {graph.node = "conv"} : (tensor<?x4x8x8xf32>, tensor<2x4x1x1xf32>, tensor<2xf32>) -> tensor<?x2x8x8xf32>
  %r = graph.relu %c {graph.node = "relu"} : (tensor<?x2x8x8xf32>) -> tensor<?x2x8x8xf32>
  %p = graph.max_pool %r {graph.node = "pool", kernel_shape = array<i64: 4, 4>, strides = array<i64: 4, 4>, dilations = array<i64: 1, 1>, pads = array<i64: 0, 0, 0, 0>} : (tensor<?x2x8x8xf32>) -> tensor<?x2x2x2xf32>
  %f = graph.flatten %p {graph.node = "flatten"} : (tensor<?x2x2x2xf32>) -> tensor<?x8xf32>
  %y = graph.gemm %f, %g {graph.node = "fc", trans_b = true} : (tensor<?x8xf32>, tensor<3x8xf32>) -> tensor<?x3xf32>
  func.return %y : tensor<?x3xf32>
}
