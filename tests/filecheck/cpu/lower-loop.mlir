// RUN: pyflame-opt %s -p 'lower-graph-to-kernel{cpu=x86-64-v3},plan-memory' | filecheck %s

// A graph.loop with a trip count fed as an input: the body's launches stand between
// kernel.loop_begin and kernel.loop_end, the initial carried value is copied into its body
// argument before the first iteration, and after each the scan slice is copied into the scan
// output and the next carried value into the argument; the iterations run bind `count`. Every
// buffer the loop touches lives through the whole body (launches 0 and 1).
func.func @main(%t: tensor<i64> {graph.name = "t", graph.dims = [], graph.values = ["trips"]}, %x: tensor<3xf32> {graph.name = "x", graph.dims = ["3"]}, %w: tensor<3xf32> {graph.name = "w", graph.dims = ["3"]}) -> (tensor<3xf32> {graph.name = "y", graph.dims = ["3"]}, tensor<?x3xf32> {graph.name = "ys", graph.dims = ["count", "3"]}) {
  %y, %ys = "graph.loop"(%x) <{trips = "trips", count = "count", operandSegmentSizes = array<i32: 0, 1>}> ({
  ^bb0(%i: tensor<i64>, %c: tensor<i1>, %acc: tensor<3xf32>):
    %next = graph.add %acc, %w : (tensor<3xf32>, tensor<3xf32>) -> tensor<3xf32>
    %slice = graph.mul %next, %w : (tensor<3xf32>, tensor<3xf32>) -> tensor<3xf32>
    graph.yield %c, %next, %slice : tensor<i1>, tensor<3xf32>, tensor<3xf32>
  }) : (tensor<3xf32>) -> (tensor<3xf32>, tensor<?x3xf32>)
  func.return %y, %ys : tensor<3xf32>, tensor<?x3xf32>
}

// CHECK: kernel.schedule @model dims ["count", "trips"] attributes {op_summary = {add = 1 : i64, mul = 1 : i64, loop = 1 : i64}}
// CHECK: %[[X:.*]] = kernel.io input 1 "x"
// CHECK: kernel.bind_dim "trips" = %{{.*}}[0] "int64"
// CHECK: %[[COUNTER:.*]] = kernel.alloc(%{{.*}}) {live = array<i64: 0, 1>}
// CHECK: %[[FLAG:.*]] = kernel.alloc(%{{.*}}) {live = array<i64: 0, 1>}
// CHECK: %[[ACC:.*]] = kernel.alloc(%{{.*}}) {live = array<i64: 0, 2>}
// CHECK: %[[NULL:.*]] = kernel.null
// CHECK: %[[TRIPS:.*]] = kernel.dim "trips"
// CHECK: kernel.loop_begin counter(%[[COUNTER]]) flag(%[[FLAG]]) init(%[[NULL]]) trips(%[[TRIPS]])
// CHECK: kernel.loop_copy enter %[[X]] to %[[ACC]](%{{.*}})
// CHECK: %[[NEXT:.*]] = kernel.alloc(%{{.*}}) {live = array<i64: 0, 1>}
// CHECK: kernel.launch @ew_add_{{.*}}(%[[NEXT]], %[[ACC]],
// CHECK: %[[SLICE:.*]] = kernel.alloc(%{{.*}}) {live = array<i64: 0, 1>}
// CHECK: kernel.launch @ew_mul_{{.*}}(%[[SLICE]], %[[NEXT]],
// CHECK: kernel.loop_copy next %[[NEXT]] to %[[ACC]](%{{.*}})
// CHECK: %[[YS:.*]] = kernel.alloc(%{{.*}}) {live = array<i64: 0, 3>}
// CHECK: kernel.loop_copy scan %[[SLICE]] to %[[YS]](%{{.*}})
// CHECK: kernel.loop_end cond(%[[FLAG]])
// CHECK: kernel.bind_dim "count" = %[[COUNTER]][0] "int64"
// CHECK: kernel.launch @ew_copy_{{.*}}(%{{.*}}, %[[ACC]],
// CHECK: kernel.launch @ew_copy_{{.*}}(%{{.*}}, %[[YS]],
