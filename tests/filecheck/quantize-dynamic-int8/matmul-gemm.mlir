// RUN: pyflame-opt %s -p quantize-dynamic-int8 --print-weights | filecheck %s
// RUN: pyflame-opt %s -p 'quantize-dynamic-int8{per_channel=true exclude=Gemm}' --print-weights | filecheck %s --check-prefix=CHANNEL

// MatMul by a constant weight: uint8 activation quantized per run, int8 weight (4.1 -> 127,
// scale 4.1 / 127), int32 product rescaled by the activation's scale times the weight's.
// CHECK-NOT:  graph.weight @w :
// CHECK:      graph.weight @mm_int8 : tensor<2x4xi8>
// CHECK:      %[[Q:.*]], %[[S:.*]], %[[Z:.*]] = quant.dynamic_quantize %x {graph.node = "mm"} : (tensor<?x2xf32>) -> (tensor<?x2xui8>, tensor<f32>, tensor<ui8>)
// CHECK-NEXT: %[[W:.*]] = graph.constant @mm_int8 : tensor<2x4xi8>
// CHECK-NEXT: %[[WZ:.*]] = graph.constant {value = dense<0> : tensor<i8>} : tensor<i8>
// CHECK-NEXT: %[[WS:.*]] = graph.constant {value = dense<0.0322834626> : tensor<f32>} : tensor<f32>
// CHECK-NEXT: %[[P:.*]] = quant.matmul_integer %[[Q]], %[[W]] zero_points(%[[Z]], %[[WZ]]) {{.*}} -> tensor<?x4xi32>
// CHECK-NEXT: %[[F:.*]] = graph.cast %[[P]] to float32 {{.*}} -> tensor<?x4xf32>
// CHECK-NEXT: %[[R:.*]] = graph.mul %[[S]], %[[WS]] {{.*}} : (tensor<f32>, tensor<f32>) -> tensor<f32>
// CHECK-NEXT: %[[Y:.*]] = graph.mul %[[F]], %[[R]] {{.*}} -> tensor<?x4xf32>

// Gemm: the weight transposed (trans_b), alpha folded into its scale (2 x 4 / 127), then + C.
// CHECK:      quant.dynamic_quantize %x {graph.node = "fc"}
// CHECK:      graph.constant {value = dense<0.0629921257> : tensor<f32>} : tensor<f32>
// CHECK:      %[[G:.*]] = graph.mul {{.*}} -> tensor<?x2xf32>
// CHECK-NEXT: %[[Z:.*]] = graph.add %[[G]], %c {graph.node = "fc"}
// CHECK-NEXT: func.return %[[Y]], %[[Z]]
// CHECK:      mm_int8: "0x010000001fc25d7f0f3ee100"
// CHECK-NEXT: fc_int8: "0x0100000020104081"

// Per channel: one scale per output column; an excluded op type stays float32.
// CHANNEL:      graph.weight @mm_scale : tensor<4xf32>
// CHANNEL:      graph.mul {{.*}} : (tensor<f32>, tensor<4xf32>) -> tensor<4xf32>
// CHANNEL:      graph.gemm %x, %g, %c
// CHANNEL:      mm_int8: "0x010000007f817f7f407fd600"

graph.weight @w : tensor<2x4xf32>
graph.weight @g : tensor<2x2xf32>
graph.weight @c : tensor<2xf32>
func.func @main(%x: tensor<?x2xf32> {graph.name = "x", graph.dims = ["batch", "2"]}) -> (tensor<?x4xf32> {graph.name = "y", graph.dims = ["batch", "4"]}, tensor<?x2xf32> {graph.name = "z", graph.dims = ["batch", "2"]}) {
  %w = graph.constant @w : tensor<2x4xf32>
  %g = graph.constant @g : tensor<2x2xf32>
  %c = graph.constant @c : tensor<2xf32>
  %y = graph.matmul %x, %w {graph.node = "mm"} : (tensor<?x2xf32>, tensor<2x4xf32>) -> tensor<?x4xf32>
  %z = graph.gemm %x, %g, %c {alpha = 2.0 : f32, trans_b = true, graph.node = "fc"} : (tensor<?x2xf32>, tensor<2x2xf32>, tensor<2xf32>) -> tensor<?x2xf32>
  func.return %y, %z : tensor<?x4xf32>, tensor<?x2xf32>
}

{-#
  dialect_resources: {
    graph: {
      w: "0x040000000000803f000000c000004040333383400000003f00000040000080bf00000000",
      g: "0x040000000000803f000000400000003f000080c0",
      c: "0x040000000000003f0000803e"
    }
  }
#-}
