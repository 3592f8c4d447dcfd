// RUN: pyflame-opt %s --to kernel --cpu x86-64-v3 | filecheck %s

// An elementwise chain with a broadcast: Relu(x + s), squared. The Relu becomes the Add
// kernel's epilogue; its result lives in an arena buffer of 64 bytes per batch row, read by
// the next launch and dead after it (plan-memory: live from launch 0 to launch 1).
func.func @main(%x: tensor<?x16xf32> {graph.name = "x", graph.dims = ["batch", "16"]}, %s: tensor<16xf32> {graph.name = "s", graph.dims = ["16"]}) -> (tensor<?x16xf32> {graph.name = "z", graph.dims = ["batch", "16"]}) {
  %a = graph.add %x, %s : (tensor<?x16xf32>, tensor<16xf32>) -> tensor<?x16xf32>
  %r = graph.relu %a : (tensor<?x16xf32>) -> tensor<?x16xf32>
  %z = graph.mul %r, %r : (tensor<?x16xf32>, tensor<?x16xf32>) -> tensor<?x16xf32>
  func.return %z : tensor<?x16xf32>
}

// CHECK:      kernel.schedule @model dims ["batch"] attributes {op_summary = {add = 1 : i64, mul = 1 : i64}} {
// CHECK-NEXT:   %[[X:.*]] = kernel.io input 0 "x" ["batch", "16"] "float32"
// CHECK-NEXT:   %[[S:.*]] = kernel.io input 1 "s" ["16"] "float32"
// CHECK-NEXT:   %[[Z:.*]] = kernel.io output 2 "z" ["batch", "16"] "float32"
// CHECK-NEXT:   %{{.*}} = kernel.io status 3 "status" [] "int64"
// CHECK-NEXT:   %[[C64:.*]] = arith.constant 64 : index
// CHECK-NEXT:   %[[BATCH:.*]] = kernel.dim "batch"
// CHECK-NEXT:   %[[BYTES:.*]] = arith.muli %[[C64]], %[[BATCH]] : index
// CHECK-NEXT:   %[[T:.*]] = kernel.alloc(%[[BYTES]]) {live = array<i64: 0, 1>}
// CHECK:        kernel.launch @ew_add_relu_r1_vv_w8_float32_float32_float32(%[[T]], %[[X]], %[[S]], {{.*}}) items(%{{.*}}) grain(%{{.*}}) for "add#1"
// CHECK:        kernel.launch @ew_mul_r0_vv_w8_float32_float32_float32(%[[Z]], %[[T]], %[[T]], {{.*}}) items(%{{.*}}) grain(%{{.*}}) for "mul#1"
// CHECK-NOT:    kernel.launch
