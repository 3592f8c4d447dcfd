// RUN: pyflame-opt %s -p 'lower-graph-to-kernel{cpu=x86-64-v3}' | filecheck %s

// The elementwise pattern, alone (no fusion ran): Add broadcasts s along the batch rows into an
// arena buffer of 64 bytes per row; Relu reads that buffer and writes the output slot.
func.func @main(%x: tensor<?x16xf32> {graph.name = "x", graph.dims = ["batch", "16"]}, %s: tensor<16xf32> {graph.name = "s", graph.dims = ["16"]}) -> (tensor<?x16xf32> {graph.name = "z", graph.dims = ["batch", "16"]}) {
  %a = graph.add %x, %s : (tensor<?x16xf32>, tensor<16xf32>) -> tensor<?x16xf32>
  %z = graph.relu %a : (tensor<?x16xf32>) -> tensor<?x16xf32>
  func.return %z : tensor<?x16xf32>
}

// CHECK:      kernel.schedule @model dims ["batch"] attributes {op_summary = {add = 1 : i64, relu = 1 : i64}} {
// CHECK-NEXT:   %[[X:.*]] = kernel.io input 0 "x" ["batch", "16"] "float32"
// CHECK-NEXT:   %[[S:.*]] = kernel.io input 1 "s" ["16"] "float32"
// CHECK-NEXT:   %[[Z:.*]] = kernel.io output 2 "z" ["batch", "16"] "float32"
// CHECK-NEXT:   %{{.*}} = kernel.io status 3 "status" [] "int64"
// CHECK-NEXT:   %[[C64:.*]] = arith.constant 64 : index
// CHECK-NEXT:   %[[BATCH:.*]] = kernel.dim "batch"
// CHECK-NEXT:   %[[BYTES:.*]] = arith.muli %[[C64]], %[[BATCH]] : index
// CHECK-NEXT:   %[[T:.*]] = kernel.alloc(%[[BYTES]])
// CHECK-NEXT:   %[[C16:.*]] = arith.constant 16 : index
// CHECK-NEXT:   %[[C1:.*]] = arith.constant 1 : index
// CHECK-NEXT:   %[[C0:.*]] = arith.constant 0 : index
// CHECK-NEXT:   %[[GRAIN:.*]] = arith.constant 1024 : index
// CHECK-NEXT:   kernel.launch @ew_add_r1_vv_w8_float32_float32_float32(%[[T]], %[[X]], %[[S]], %[[C16]], %[[C1]], %[[C1]], %[[C1]], %[[BATCH]], %[[C16]], %[[C0]]) items(%[[BATCH]]) grain(%[[GRAIN]]) for "add#1"
// CHECK-NEXT:   %[[N:.*]] = arith.muli %[[C16]], %[[BATCH]] : index
// CHECK:        kernel.launch @ew_relu_r0_v_w8_float32_float32(%[[Z]], %[[T]], %[[N]], {{.*}}) items(%{{.*}}) grain(%{{.*}}) for "relu#1"
// CHECK-NEXT: }
