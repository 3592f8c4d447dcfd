// RUN: pyflame-opt %s -p convert-to-fp16 --print-weights | filecheck %s --check-prefix=FP16
// RUN: pyflame-opt %s -p convert-to-bf16 --print-weights | filecheck %s --check-prefix=BF16
// RUN: pyflame-opt %s -p 'convert-to-fp16{exclude=Add}' | filecheck %s --check-prefix=EXCLUDED
// RUN: pyflame-opt %s -p convert-to-fp16,legalize-half-precision | filecheck %s --check-prefix=LEGAL

// MatMul and Add compute in half precision, their weights stored rounded to it (4.1 -> 0x441a in
// float16, 0x4083 in bfloat16); the float32 input is cast at the boundary, the MatMul's half result
// feeds the Add without a round trip, and Softmax (a sum) gets float32 operands again. The float32
// weights nothing reads any more are dropped.
// FP16-NOT:   graph.weight @w :
// FP16:       graph.weight @w_float16 : tensor<2x2xf16>
// FP16-NEXT:  graph.weight @b_float16 : tensor<2xf16>
// FP16:       %[[X:.*]] = graph.cast %x to float16 {graph.node = "mm"} : (tensor<?x2xf32>) -> tensor<?x2xf16>
// FP16-NEXT:  %[[W:.*]] = graph.constant @w_float16 : tensor<2x2xf16>
// FP16-NEXT:  %[[MM:.*]] = graph.matmul %[[X]], %[[W]] {graph.node = "mm"} : (tensor<?x2xf16>, tensor<2x2xf16>) -> tensor<?x2xf16>
// FP16-NEXT:  %[[B:.*]] = graph.constant @b_float16 : tensor<2xf16>
// FP16-NEXT:  %[[S:.*]] = graph.add %[[MM]], %[[B]] {graph.node = "add"} : (tensor<?x2xf16>, tensor<2xf16>) -> tensor<?x2xf16>
// FP16-NEXT:  %[[F:.*]] = graph.cast %[[S]] to float32 {graph.node = "add"} : (tensor<?x2xf16>) -> tensor<?x2xf32>
// FP16-NEXT:  %[[Y:.*]] = graph.softmax %[[F]] {graph.node = "sm"} : (tensor<?x2xf32>) -> tensor<?x2xf32>
// FP16-NEXT:  func.return %[[Y]] : tensor<?x2xf32>
// FP16:       w_float16: "0x02000000003c00c000421a44"
// FP16-NEXT:  b_float16: "0x0200000000380034"

// BF16:       graph.weight @w_bfloat16 : tensor<2x2xbf16>
// BF16:       graph.matmul {{.*}} : (tensor<?x2xbf16>, tensor<2x2xbf16>) -> tensor<?x2xbf16>
// BF16:       graph.add {{.*}} -> tensor<?x2xbf16>
// BF16:       w_bfloat16: "0x02000000803f00c040408340"

// An excluded op type stays float32: the MatMul's half result is widened for it.
// EXCLUDED:      %[[B:.*]] = graph.constant @b : tensor<2xf32>
// EXCLUDED:      %[[MM:.*]] = graph.matmul {{.*}} -> tensor<?x2xf16>
// EXCLUDED-NEXT: %[[F:.*]] = graph.cast %[[MM]] to float32
// EXCLUDED-NEXT: graph.add %[[F]], %[[B]] {graph.node = "add"} : (tensor<?x2xf32>, tensor<2xf32>) -> tensor<?x2xf32>

// On the CPU the MatMul then computes in float32 between Casts, reading the half-rounded values.
// LEGAL:      %[[X:.*]] = graph.cast %{{.*}} to float32 {{.*}} : (tensor<?x2xf16>) -> tensor<?x2xf32>
// LEGAL-NEXT: %[[W:.*]] = graph.cast %{{.*}} to float32 {{.*}} : (tensor<2x2xf16>) -> tensor<2x2xf32>
// LEGAL-NEXT: %[[MM:.*]] = graph.matmul %[[X]], %[[W]] {{.*}} : (tensor<?x2xf32>, tensor<2x2xf32>) -> tensor<?x2xf32>
// LEGAL-NEXT: graph.cast %[[MM]] to float16

graph.weight @w : tensor<2x2xf32>
graph.weight @b : tensor<2xf32>
func.func @main(%x: tensor<?x2xf32> {graph.name = "x", graph.dims = ["batch", "2"]}) -> (tensor<?x2xf32> {graph.name = "y", graph.dims = ["batch", "2"]}) {
  %w = graph.constant @w : tensor<2x2xf32>
  %b = graph.constant @b : tensor<2xf32>
  %mm = graph.matmul %x, %w {graph.node = "mm"} : (tensor<?x2xf32>, tensor<2x2xf32>) -> tensor<?x2xf32>
  %s = graph.add %mm, %b {graph.node = "add"} : (tensor<?x2xf32>, tensor<2xf32>) -> tensor<?x2xf32>
  %y = graph.softmax %s {graph.node = "sm"} : (tensor<?x2xf32>) -> tensor<?x2xf32>
  func.return %y : tensor<?x2xf32>
}

{-#
  dialect_resources: {
    graph: {
      w: "0x040000000000803f000000c00000404033338340",
      b: "0x040000000000003f0000803e"
    }
  }
#-}
