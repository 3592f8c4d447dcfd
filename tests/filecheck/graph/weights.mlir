// RUN: pyflame-opt %s | filecheck %s --check-prefix=ELIDED
// RUN: pyflame-opt %s --print-weights | pyflame-opt - --print-weights | filecheck %s --check-prefix=ROUNDTRIP
// RUN: pyflame-opt %s -p fold-constants | filecheck %s --check-prefix=READ
// RUN: pyflame-opt %s -p 'fold-constants{inline-elements=0},eliminate-dead-code' --print-weights | filecheck %s --check-prefix=FOLDED
// RUN: pyflame-opt %s --print-weights --elide-weights-larger-than=8 | filecheck %s --check-prefix=LARGER

// Weights are module-level symbols; their values are printed only when asked for.
// ELIDED:      graph.weight @a : tensor<4xf32>
// ELIDED-NEXT: graph.weight @"onnx::b/1" : tensor<2xf32>
// ELIDED-NOT:  dialect_resources

// Printed and parsed back, every value is kept (MLIR's blob encoding: u32 alignment, then the bytes).
// ROUNDTRIP:      graph.weight @a : tensor<4xf32>
// ROUNDTRIP:      {-#
// ROUNDTRIP-NEXT:   dialect_resources: {
// ROUNDTRIP-NEXT:     graph: {
// ROUNDTRIP-NEXT:       a: "0x040000000000803f000000c00000404000008040",
// ROUNDTRIP-NEXT:       "onnx::b/1": "0x040000000000803f00000040"
// ROUNDTRIP-NEXT:     }
// ROUNDTRIP-NEXT:   }
// ROUNDTRIP-NEXT: #-}

// Passes read the values from the IR: 2 * [1, -2, 3, 4] folds to an inline constant.
// READ:      %[[C:.*]] = graph.constant {value = dense<[2.000000e+00, -4.000000e+00, 6.000000e+00, 8.000000e+00]> : tensor<4xf32>} : tensor<4xf32>
// READ-NEXT: graph.add %x, %[[C]]

// A folded constant becomes a new weight with its value; the ones nothing reads any more are erased.
// FOLDED-NOT:  graph.weight @a
// FOLDED:      graph.weight @m_folded : tensor<4xf32>
// FOLDED-NOT:  graph.weight @a
// FOLDED:      graph.constant @m_folded : tensor<4xf32>
// FOLDED:      dialect_resources
// FOLDED:      m_folded: "0x0400000000000040000080c00000c04000000041"

// Values above a size are elided, smaller ones printed.
// LARGER:     "onnx::b/1": "0x040000000000803f00000040"
// LARGER-NOT: a: "0x

graph.weight @a : tensor<4xf32>
graph.weight @"onnx::b/1" : tensor<2xf32>
func.func @main(%x: tensor<?x4xf32> {graph.name = "x", graph.dims = ["batch", "4"]}) -> (tensor<?x4xf32> {graph.name = "y", graph.dims = ["batch", "4"]}) {
  %a = graph.constant @a : tensor<4xf32>
  %two = graph.constant {value = dense<2.0> : tensor<4xf32>} : tensor<4xf32>
  %m = graph.mul %a, %two : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
  %y = graph.add %x, %m : (tensor<?x4xf32>, tensor<4xf32>) -> tensor<?x4xf32>
  func.return %y : tensor<?x4xf32>
}

{-#
  dialect_resources: {
    graph: {
      a: "0x040000000000803f000000c00000404000008040",
      "onnx::b/1": "0x040000000000803f00000040"
    }
  }
#-}
