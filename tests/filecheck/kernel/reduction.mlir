// RUN: pyflame-opt %s --to kernel --cpu x86-64-v3 | filecheck %s
// RUN: pyflame-opt %s --to kernel --cpu x86-64-v3 | pyflame-opt - | filecheck %s

// A reduction (ReduceSum over the last axis, static shapes): one row-reduction launch. The
// memory plan is static here, so plan-memory also places the buffers (`offset`, `arena_bytes`).
// The second RUN parses the printed kernel level back and prints it again.
func.func @main(%x: tensor<4x32xf32> {graph.name = "x", graph.dims = ["4", "32"]}) -> (tensor<4x1xf32> {graph.name = "y", graph.dims = ["4", "1"]}) {
  %e = graph.exp %x : (tensor<4x32xf32>) -> tensor<4x32xf32>
  %y = graph.reduce %e {kind = #graph<reduce_kind sum>, axes = array<i64: 1>, keepdims = true} : (tensor<4x32xf32>) -> tensor<4x1xf32>
  func.return %y : tensor<4x1xf32>
}

// CHECK:      kernel.schedule @model dims [] attributes {
// CHECK-SAME:   arena_bytes = 512 : i64
// CHECK-NEXT:   %[[X:.*]] = kernel.io input 0 "x" ["4", "32"] "float32"
// CHECK-NEXT:   %[[Y:.*]] = kernel.io output 1 "y" ["4", "1"] "float32"
// CHECK:        %[[E:.*]] = kernel.alloc(%{{.*}})
// CHECK-SAME:   {{offset = 0 : i64, live = array<i64: 0, 1>|live = array<i64: 0, 1>, offset = 0 : i64}}
// CHECK:        kernel.launch @ew_exp_{{.*}}(%[[E]], %[[X]], {{.*}}) {{.*}} for "exp#1"
// CHECK:        kernel.launch @{{[a-z_]*}}sum{{.*}}(%[[E]], %[[Y]], {{.*}}) {{.*}} for "reduce#1"
// CHECK-NOT:    kernel.launch
