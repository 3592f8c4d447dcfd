// RUN: pyflame-opt %s -p fuse-matmul-integer-to-float | filecheck %s

// quantize-static-int8's chain (DequantizeInEpilogue: the activation scale folded into one
// constant, per column or one) -> quant.matmul_integer_to_float with activation scale 1.0.
// CHECK:      %[[ONE:.*]] = graph.constant {value = dense<1.000000e+00> : tensor<f32>} : tensor<f32>
// CHECK-NEXT: %[[Y:.*]] = quant.matmul_integer_to_float %xq, %w, %[[ONE]], %wc, %xz, %wz, %b : {{.*}} -> tensor<?x4xf32>
// CHECK-NEXT: %[[ONE1:.*]] = graph.constant {value = dense<1.000000e+00> : tensor<f32>} : tensor<f32>
// CHECK-NEXT: %[[U:.*]] = quant.matmul_integer_to_float %xq, %w, %[[ONE1]], %ws, %xz, %wz : {{.*}} -> tensor<?x4xf32>
// CHECK-NEXT: func.return %[[Y]], %[[U]]
graph.weight @w : tensor<8x4xi8>
func.func @main(%xq: tensor<?x8xui8> {graph.name = "xq", graph.dims = ["batch", "8"]}) -> (tensor<?x4xf32>, tensor<?x4xf32>) {
  %w = graph.constant @w : tensor<8x4xi8>
  %xz = graph.constant {value = dense<3> : tensor<ui8>} : tensor<ui8>
  %wz = graph.constant {value = dense<0> : tensor<i8>} : tensor<i8>
  %ws = graph.constant {value = dense<0.5> : tensor<f32>} : tensor<f32>
  %wc = graph.constant {value = dense<[0.5, 0.25, 0.125, 1.0]> : tensor<4xf32>} : tensor<4xf32>
  %b = graph.constant {value = dense<[1.0, 2.0, 3.0, 4.0]> : tensor<4xf32>} : tensor<4xf32>
  %p = quant.matmul_integer %xq, %w zero_points(%xz, %wz) : (tensor<?x8xui8>, tensor<8x4xi8>, tensor<ui8>, tensor<i8>) -> tensor<?x4xi32>
  %f = graph.cast %p to float32 : (tensor<?x4xi32>) -> tensor<?x4xf32>
  %m = graph.mul %f, %wc : (tensor<?x4xf32>, tensor<4xf32>) -> tensor<?x4xf32>
  %y = graph.add %m, %b : (tensor<?x4xf32>, tensor<4xf32>) -> tensor<?x4xf32>
  %p1 = quant.matmul_integer %xq, %w zero_points(%xz, %wz) : (tensor<?x8xui8>, tensor<8x4xi8>, tensor<ui8>, tensor<i8>) -> tensor<?x4xi32>
  %f1 = graph.cast %p1 to float32 : (tensor<?x4xi32>) -> tensor<?x4xf32>
  %u = graph.mul %f1, %ws : (tensor<?x4xf32>, tensor<f32>) -> tensor<?x4xf32>
  func.return %y, %u : tensor<?x4xf32>, tensor<?x4xf32>
}

{-#
  dialect_resources: {
    graph: {
      w: "0x010000000102030405060708010203040506070801020304050607080102030405060708"
    }
  }
#-}
