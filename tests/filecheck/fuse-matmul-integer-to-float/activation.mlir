// RUN: pyflame-opt %s -p fuse-matmul-integer-to-float,fuse-activation | filecheck %s

// A feed-forward layer's Gelu after the dequantized product and its bias: fuse-activation puts it
// into quant.matmul_integer_to_float's epilogue, after the bias.
// CHECK:      %[[G:.*]] = quant.matmul_integer_to_float %q, %w, %s, %ws, %z, %wz, %b {activation = #graph.activation<gelu>}
// CHECK-NEXT: func.return %[[G]]
graph.weight @w : tensor<8x4xi8>
func.func @main(%x: tensor<?x8xf32> {graph.name = "x", graph.dims = ["batch", "8"]}) -> (tensor<?x4xf32> {graph.name = "g", graph.dims = ["batch", "4"]}) {
  %w = graph.constant @w : tensor<8x4xi8>
  %wz = graph.constant {value = dense<0> : tensor<i8>} : tensor<i8>
  %ws = graph.constant {value = dense<0.5> : tensor<f32>} : tensor<f32>
  %b = graph.constant {value = dense<[1.0, 2.0, 3.0, 4.0]> : tensor<4xf32>} : tensor<4xf32>
  %q, %s, %z = quant.dynamic_quantize %x : (tensor<?x8xf32>) -> (tensor<?x8xui8>, tensor<f32>, tensor<ui8>)
  %p = quant.matmul_integer %q, %w zero_points(%z, %wz) : (tensor<?x8xui8>, tensor<8x4xi8>, tensor<ui8>, tensor<i8>) -> tensor<?x4xi32>
  %f = graph.cast %p to float32 : (tensor<?x4xi32>) -> tensor<?x4xf32>
  %r = graph.mul %s, %ws : (tensor<f32>, tensor<f32>) -> tensor<f32>
  %m = graph.mul %f, %r : (tensor<?x4xf32>, tensor<f32>) -> tensor<?x4xf32>
  %y = graph.add %m, %b : (tensor<?x4xf32>, tensor<4xf32>) -> tensor<?x4xf32>
  %g = graph.gelu %y : (tensor<?x4xf32>) -> tensor<?x4xf32>
  func.return %g : tensor<?x4xf32>
}

{-#
  dialect_resources: {
    graph: {
      w: "0x010000000102030405060708010203040506070801020304050607080102030405060708"
    }
  }
#-}
