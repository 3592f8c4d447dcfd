// RUN: pyflame-opt %s -p 'lower-graph-to-kernel{cpu=x86-64-v3}' | filecheck %s

// The reduction pattern: a sum over the last axis is one row kernel launch over batch * 8 rows of
// 32 elements, reading the input and writing the output slot; the row kernel's scale, bias, mean
// and rstd buffers, which a sum does not touch, are the null buffer.
func.func @main(%x: tensor<?x8x32xf32> {graph.name = "x", graph.dims = ["batch", "8", "32"]}) -> (tensor<?x8x1xf32> {graph.name = "y", graph.dims = ["batch", "8", "1"]}) {
  %y = graph.reduce %x {kind = #graph<reduce_kind sum>, axes = array<i64: -1>, keepdims = true} : (tensor<?x8x32xf32>) -> tensor<?x8x1xf32>
  func.return %y : tensor<?x8x1xf32>
}

// CHECK:      kernel.schedule @model dims ["batch"] attributes {op_summary = {reduce = 1 : i64}} {
// CHECK-NEXT:   %[[X:.*]] = kernel.io input 0 "x" ["batch", "8", "32"] "float32"
// CHECK-NEXT:   %[[Y:.*]] = kernel.io output 1 "y" ["batch", "8", "1"] "float32"
// CHECK-NEXT:   %{{.*}} = kernel.io status 2 "status" [] "int64"
// CHECK-NEXT:   %[[R:.*]] = arith.constant 32 : index
// CHECK-NEXT:   %[[C1:.*]] = arith.constant 1 : index
// CHECK-NEXT:   %[[NULL:.*]] = kernel.null
// CHECK-NEXT:   %[[C8:.*]] = arith.constant 8 : index
// CHECK-NEXT:   %[[BATCH:.*]] = kernel.dim "batch"
// CHECK-NEXT:   %[[ROWS:.*]] = arith.muli %[[C8]], %[[BATCH]] : index
// CHECK-NEXT:   %[[GRAIN:.*]] = arith.constant 2048 : index
// CHECK-NEXT:   kernel.launch @row_sum_float32_w8(%[[X]], %[[Y]], %[[R]], %[[C1]], %[[NULL]], %[[NULL]], %[[NULL]], %[[NULL]]) items(%[[ROWS]]) grain(%[[GRAIN]]) for "reduce#1"
// CHECK-NEXT: }
