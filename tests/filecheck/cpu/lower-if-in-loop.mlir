// RUN: pyflame-opt %s -p 'lower-graph-to-kernel{cpu=x86-64-v3},plan-memory' | filecheck %s

// A graph.if inside a graph.loop's body: its regions are loops of at most one iteration nested
// in the outer loop's body (each kernel.loop_begin / kernel.loop_end pair inside the outer pair),
// so an iteration runs only the branch its condition takes. Every buffer the inner loops touch
// lives through the whole outer body.
func.func @main(%t: tensor<i64> {graph.name = "t", graph.dims = [], graph.values = ["trips"]}, %c: tensor<i1> {graph.name = "c", graph.dims = []}, %x: tensor<3xf32> {graph.name = "x", graph.dims = ["3"]}) -> (tensor<3xf32> {graph.name = "y", graph.dims = ["3"]}) {
  %y = "graph.loop"(%x) <{trips = "trips", count = "trips", operandSegmentSizes = array<i32: 0, 1>}> ({
  ^bb0(%i: tensor<i64>, %go: tensor<i1>, %acc: tensor<3xf32>):
    %next = "graph.if"(%c) ({
      %r = graph.relu %acc : (tensor<3xf32>) -> tensor<3xf32>
      graph.yield %r : tensor<3xf32>
    }, {
      %n = graph.neg %acc : (tensor<3xf32>) -> tensor<3xf32>
      graph.yield %n : tensor<3xf32>
    }) : (tensor<i1>) -> tensor<3xf32>
    graph.yield %go, %next : tensor<i1>, tensor<3xf32>
  }) : (tensor<3xf32>) -> tensor<3xf32>
  func.return %y : tensor<3xf32>
}

// CHECK: kernel.schedule @model
// CHECK: %[[C:.*]] = kernel.io input 1 "c"
// CHECK: kernel.loop_begin counter(%{{.*}}) flag(%{{.*}}) init(%{{.*}}) trips(%{{.*}})
// CHECK: kernel.loop_copy enter %{{.*}} to %[[ACC:[0-9]+]](
// CHECK: kernel.loop_begin counter(%{{.*}}) flag(%{{.*}}) init(%[[C]]) trips(%{{.*}})
// CHECK: kernel.launch @ew_relu_
// CHECK: kernel.loop_end cond(%[[C]])
// CHECK: %[[NOT:.*]] = kernel.alloc(%{{.*}}) {offset = {{[0-9]+}} : i64, live = array<i64: 0, 2>}
// CHECK: kernel.launch @ew_not_
// CHECK: kernel.loop_begin counter(%{{.*}}) flag(%{{.*}}) init(%[[NOT]]) trips(%{{.*}})
// CHECK: kernel.launch @ew_neg_
// CHECK: kernel.loop_end cond(%[[NOT]])
// CHECK: kernel.loop_copy next %{{.*}} to %[[ACC]](
// CHECK: kernel.loop_end cond(
// CHECK-NOT: kernel.loop_end
