// RUN: pyflame-opt %s -p 'lower-graph-to-kernel{cpu=x86-64-v3},plan-memory' | filecheck %s

// A graph.if: each region's launches are a loop of at most one iteration, the then region's
// entered when the condition holds, the else region's when its negation (a `not` launch between
// them) does; each copies what it yields into the result's buffer.
func.func @main(%c: tensor<i1> {graph.name = "c", graph.dims = []}, %x: tensor<3xf32> {graph.name = "x", graph.dims = ["3"]}) -> (tensor<3xf32> {graph.name = "y", graph.dims = ["3"]}) {
  %y = "graph.if"(%c) ({
    %t = graph.relu %x : (tensor<3xf32>) -> tensor<3xf32>
    graph.yield %t : tensor<3xf32>
  }, {
    %e = graph.neg %x : (tensor<3xf32>) -> tensor<3xf32>
    graph.yield %e : tensor<3xf32>
  }) : (tensor<i1>) -> tensor<3xf32>
  func.return %y : tensor<3xf32>
}

// CHECK: kernel.schedule @model dims [] attributes {arena_bytes = {{[0-9]+}} : i64, op_summary = {relu = 1 : i64, neg = 1 : i64, if = 1 : i64}}
// CHECK: %[[C:.*]] = kernel.io input 0 "c"
// CHECK: %[[Y:.*]] = kernel.alloc
// CHECK: kernel.loop_begin counter(%{{.*}}) flag(%{{.*}}) init(%[[C]]) trips(%[[ONE:.*]])
// CHECK: kernel.launch @ew_relu_{{.*}}(%[[T:[0-9]+]],
// CHECK: kernel.loop_copy next %[[T]] to %[[Y]]
// CHECK: kernel.loop_end cond(%[[C]])
// CHECK: %[[NOT:.*]] = kernel.alloc
// CHECK: kernel.launch @ew_not_{{.*}}(%[[NOT]], %[[C]],
// CHECK: kernel.loop_begin counter(%{{.*}}) flag(%{{.*}}) init(%[[NOT]]) trips(%[[ONE]])
// CHECK: kernel.launch @ew_neg_{{.*}}(%[[E:[0-9]+]],
// CHECK: kernel.loop_copy next %[[E]] to %[[Y]]
// CHECK: kernel.loop_end cond(%[[NOT]])
// CHECK: kernel.launch @ew_copy_{{.*}}(%{{.*}}, %[[Y]],
