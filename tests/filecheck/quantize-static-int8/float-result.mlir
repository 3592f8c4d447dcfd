// RUN: pyflame-opt %s -p 'quantize-static-int8{activations="x=0.05:128","up:0=0.1:0","down:0=0.2:128" per_channel=true}' | filecheck %s
// RUN: pyflame-opt %s -p 'quantize-static-int8{activations="x=0.05:0","up:0=0.1:0","down:0=0.2:0" activation_storage=i8}' | filecheck %s --check-prefix=SIGNED

// An FFN: `up`'s result is read by `down`, an int8 layer, so it is requantized to its codes;
// `down`'s result is read only by a float LayerNorm, so its int32 product is rescaled to float32
// (per output channel: input scale x weight scale) and its bias added in float32, never rounded
// to its calibrated 8-bit grid.
// CHECK:      %[[U:.*]] = quant.matmul %{{.*}}, %{{.*}} {{{.*}}type = !quant.uniform<u8, 0.1:0>} : (tensor<?x4xui8>, tensor<4x8xi8>) -> tensor<?x8xui8>
// CHECK-NOT:  quant.dequantize
// CHECK:      %[[XZ:.*]] = graph.constant {value = dense<0> : tensor<ui8>}
// CHECK-NEXT: %[[WZ:.*]] = graph.constant {value = dense<0> : tensor<i8>}
// CHECK-NEXT: %[[P:.*]] = quant.matmul_integer %[[U]], %{{.*}} zero_points(%[[XZ]], %[[WZ]]) {graph.node = "down"} : (tensor<?x8xui8>, tensor<8x4xi8>, tensor<ui8>, tensor<i8>) -> tensor<?x4xi32>
// CHECK-NEXT: %[[F:.*]] = graph.cast %[[P]] to float32
// CHECK-NEXT: %[[S:.*]] = graph.constant @down_scale : tensor<4xf32>
// CHECK-NEXT: %[[M:.*]] = graph.mul %[[F]], %[[S]]
// CHECK-NEXT: %[[B:.*]] = graph.constant @down_bias : tensor<4xf32>
// CHECK-NEXT: %[[D:.*]] = graph.add %[[M]], %[[B]]
// CHECK-NEXT: graph.layer_norm %[[D]]
// CHECK-NOT:  quant.

// The integer GEMM reads uint8 activations only: with int8 ones the result is requantized.
// SIGNED:     quant.gemm {{.*}}type = !quant.uniform<i8, 0.2:0>}
// SIGNED-NEXT: quant.dequantize
// SIGNED-NOT: quant.matmul_integer

func.func @main(%x: tensor<?x4xf32> {graph.name = "x", graph.dims = ["batch", "4"]}) -> (tensor<?x4xf32> {graph.name = "y", graph.dims = ["batch", "4"]}) {
  %w1 = graph.constant {value = dense<[[1.0, 2.0, -1.0, 0.5, 0.5, 1.0, 2.0, -4.0], [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0, 2.0, 2.0, 2.0, 2.0], [1.0, -1.0, 1.0, -1.0, 1.0, -1.0, 1.0, -1.0]]> : tensor<4x8xf32>} : tensor<4x8xf32>
  %w2 = graph.constant {value = dense<[[1.0, 2.0, -1.0, 0.5], [0.5, 1.0, 2.0, -4.0], [1.0, 1.0, 1.0, 1.0], [0.25, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0], [2.0, 2.0, 2.0, 2.0], [1.0, -1.0, 1.0, -1.0], [1.0, -1.0, 3.0, -1.0]]> : tensor<8x4xf32>} : tensor<8x4xf32>
  %b2 = graph.constant {value = dense<[0.5, -0.25, 1.0, 2.0]> : tensor<4xf32>} : tensor<4xf32>
  %gamma = graph.constant {value = dense<1.0> : tensor<4xf32>} : tensor<4xf32>
  %u = graph.matmul %x, %w1 {graph.node = "up"} : (tensor<?x4xf32>, tensor<4x8xf32>) -> tensor<?x8xf32>
  %d = graph.gemm %u, %w2, %b2 {graph.node = "down"} : (tensor<?x8xf32>, tensor<8x4xf32>, tensor<4xf32>) -> tensor<?x4xf32>
  %y = graph.layer_norm %d, %gamma {axis = -1 : i64, epsilon = 1.0e-5 : f32} : (tensor<?x4xf32>, tensor<4xf32>) -> tensor<?x4xf32>
  func.return %y : tensor<?x4xf32>
}
