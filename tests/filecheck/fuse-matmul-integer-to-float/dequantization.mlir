// RUN: pyflame-opt %s -p fuse-matmul-integer-to-float | filecheck %s

// quantize_dynamic's chain (Cast, Mul by the activation scale x the weight scale, Add of a
// constant bias, in either operand order) -> one quant.matmul_integer_to_float.
// CHECK:      %[[Q:.*]], %[[S:.*]], %[[Z:.*]] = quant.dynamic_quantize %x
// CHECK-NEXT: %y = quant.matmul_integer_to_float %[[Q]], %w, %[[S]], %ws, %[[Z]], %wz, %b : {{.*}} -> tensor<?x4xf32>

// One scale per column, no constant bias: the Mul is fused, the Add of a run-time value stays.
// CHECK-NEXT: %[[P:.*]] = quant.matmul_integer_to_float %[[Q]], %w, %[[S]], %wc, %[[Z]], %wz : {{.*}} -> tensor<?x4xf32>
// CHECK-NEXT: %u = graph.add %[[P]], %x4

// A Cast read twice (its int32-to-float32 values are needed): nothing fused.
// CHECK-NEXT: %p2 = quant.matmul_integer %[[Q]], %w zero_points(%[[Z]], %wz)
// CHECK-NEXT: %f2 = graph.cast %p2 to float32
// CHECK-NEXT: %r2 = graph.mul %[[S]], %ws
// CHECK-NEXT: %v = graph.mul %f2, %r2
// CHECK-NEXT: func.return %y, %u, %v, %f2
graph.weight @w : tensor<8x4xi8>
func.func @main(%x: tensor<?x8xf32> {graph.name = "x", graph.dims = ["batch", "8"]}, %x4: tensor<?x4xf32> {graph.name = "x4", graph.dims = ["batch", "4"]}) -> (tensor<?x4xf32>, tensor<?x4xf32>, tensor<?x4xf32>, tensor<?x4xf32>) {
  %w = graph.constant @w : tensor<8x4xi8>
  %wz = graph.constant {value = dense<0> : tensor<i8>} : tensor<i8>
  %ws = graph.constant {value = dense<0.5> : tensor<f32>} : tensor<f32>
  %wc = graph.constant {value = dense<[0.5, 0.25, 0.125, 1.0]> : tensor<4xf32>} : tensor<4xf32>
  %b = graph.constant {value = dense<[1.0, 2.0, 3.0, 4.0]> : tensor<4xf32>} : tensor<4xf32>
  %q, %s, %z = quant.dynamic_quantize %x : (tensor<?x8xf32>) -> (tensor<?x8xui8>, tensor<f32>, tensor<ui8>)
  %p = quant.matmul_integer %q, %w zero_points(%z, %wz) : (tensor<?x8xui8>, tensor<8x4xi8>, tensor<ui8>, tensor<i8>) -> tensor<?x4xi32>
  %f = graph.cast %p to float32 : (tensor<?x4xi32>) -> tensor<?x4xf32>
  %r = graph.mul %s, %ws : (tensor<f32>, tensor<f32>) -> tensor<f32>
  %m = graph.mul %f, %r : (tensor<?x4xf32>, tensor<f32>) -> tensor<?x4xf32>
  %y = graph.add %b, %m : (tensor<4xf32>, tensor<?x4xf32>) -> tensor<?x4xf32>
  %p1 = quant.matmul_integer %q, %w zero_points(%z, %wz) : (tensor<?x8xui8>, tensor<8x4xi8>, tensor<ui8>, tensor<i8>) -> tensor<?x4xi32>
  %f1 = graph.cast %p1 to float32 : (tensor<?x4xi32>) -> tensor<?x4xf32>
  %r1 = graph.mul %wc, %s : (tensor<4xf32>, tensor<f32>) -> tensor<4xf32>
  %t = graph.mul %r1, %f1 : (tensor<4xf32>, tensor<?x4xf32>) -> tensor<?x4xf32>
  %u = graph.add %t, %x4 : (tensor<?x4xf32>, tensor<?x4xf32>) -> tensor<?x4xf32>
  %p2 = quant.matmul_integer %q, %w zero_points(%z, %wz) : (tensor<?x8xui8>, tensor<8x4xi8>, tensor<ui8>, tensor<i8>) -> tensor<?x4xi32>
  %f2 = graph.cast %p2 to float32 : (tensor<?x4xi32>) -> tensor<?x4xf32>
  %r2 = graph.mul %s, %ws : (tensor<f32>, tensor<f32>) -> tensor<f32>
  %v = graph.mul %f2, %r2 : (tensor<?x4xf32>, tensor<f32>) -> tensor<?x4xf32>
  func.return %y, %u, %v, %f2 : tensor<?x4xf32>, tensor<?x4xf32>, tensor<?x4xf32>, tensor<?x4xf32>
}

{-#
  dialect_resources: {
    graph: {
      w: "0x010000000102030405060708010203040506070801020304050607080102030405060708"
    }
  }
#-}
