// RUN: pyflame-opt %s -p 'lower-graph-to-kernel{cpu=x86-64-v3}' | filecheck %s

// Size arithmetic with constant operands is computed at lowering time. The Add's work items,
// batch * ceildiv(16, 8192), are the batch dim itself (no multiplication by 1, no ceildiv of
// constants); its grain, ceildiv(65536, 16 * 4), is the constant 1024; a dim of coefficient 1 is
// its kernel.dim (no arith.muli %c1, %batch). The only index values left are the launch's fields.
func.func @main(%x: tensor<?x16xf32> {graph.name = "x", graph.dims = ["batch", "16"]}, %s: tensor<16xf32> {graph.name = "s", graph.dims = ["16"]}) -> (tensor<?x16xf32> {graph.name = "z", graph.dims = ["batch", "16"]}) {
  %z = graph.add %x, %s : (tensor<?x16xf32>, tensor<16xf32>) -> tensor<?x16xf32>
  func.return %z : tensor<?x16xf32>
}

// CHECK:      kernel.schedule @model dims ["batch"] attributes {op_summary = {add = 1 : i64}} {
// CHECK-NEXT:   %[[X:.*]] = kernel.io input 0 "x" ["batch", "16"] "float32"
// CHECK-NEXT:   %[[S:.*]] = kernel.io input 1 "s" ["16"] "float32"
// CHECK-NEXT:   %[[Z:.*]] = kernel.io output 2 "z" ["batch", "16"] "float32"
// CHECK-NEXT:   %{{.*}} = kernel.io status 3 "status" [] "int64"
// CHECK-NEXT:   %[[C16:.*]] = arith.constant 16 : index
// CHECK-NEXT:   %[[C1:.*]] = arith.constant 1 : index
// CHECK-NEXT:   %[[BATCH:.*]] = kernel.dim "batch"
// CHECK-NEXT:   %[[C0:.*]] = arith.constant 0 : index
// CHECK-NEXT:   %[[GRAIN:.*]] = arith.constant 1024 : index
// CHECK-NEXT:   kernel.launch @ew_add_r1_vv_w8_float32_float32_float32(%[[Z]], %[[X]], %[[S]], %[[C16]], %[[C1]], %[[C1]], %[[C1]], %[[BATCH]], %[[C16]], %[[C0]]) items(%[[BATCH]]) grain(%[[GRAIN]]) for "add#1"
// CHECK-NEXT: }
