// RUN: pyflame-opt %s -p expand-quant | filecheck %s

// MatMulInteger: the float32 product of the zero-point-shifted operands, rounded to int32; the
// zero points are run-time values (DynamicQuantizeLinear's).
// CHECK:      %[[AZ:.*]] = graph.cast %az to float32 : (tensor<ui8>) -> tensor<f32>
// CHECK-NEXT: %[[AF:.*]] = graph.cast %a to float32
// CHECK-NEXT: %[[A:.*]] = graph.sub %[[AF]], %[[AZ]]
// CHECK-NEXT: %[[BZ:.*]] = graph.cast %bz to float32
// CHECK-NEXT: %[[BF:.*]] = graph.cast %b to float32
// CHECK-NEXT: %[[B:.*]] = graph.sub %[[BF]], %[[BZ]]
// CHECK-NEXT: %[[P:.*]] = graph.matmul %[[A]], %[[B]]
// CHECK-NEXT: %[[R:.*]] = graph.round %[[P]]
// CHECK-NEXT: %y = graph.cast %[[R]] to int32 : (tensor<2x3xf32>) -> tensor<2x3xi32>
func.func @main(%a: tensor<2x4xui8>, %b: tensor<4x3xi8>, %az: tensor<ui8>, %bz: tensor<i8>) -> tensor<2x3xi32> {
  %y = quant.matmul_integer %a, %b zero_points(%az, %bz) : (tensor<2x4xui8>, tensor<4x3xi8>, tensor<ui8>, tensor<i8>) -> tensor<2x3xi32>
  func.return %y : tensor<2x3xi32>
}
