// RUN: pyflame-opt %s -p 'lower-graph-to-kernel{cpu=x86-64-v3},plan-memory' | filecheck %s

// NonMaxSuppression's result is [count, 3], count a dim bound mid-run: the selection runs one work
// item per (batch, class) into scratch buffers, a single-item kernel sums the counts into the buffer
// kernel.bind_dim reads, and the rows kernel writes the result the bound dim sizes.
func.func @main(%b: tensor<?x?x4xf32> {graph.name = "b", graph.dims = ["B", "N", "4"]}, %s: tensor<?x3x?xf32> {graph.name = "s", graph.dims = ["B", "3", "N"]}, %m: tensor<1xi64> {graph.name = "m"}, %i: tensor<1xf32> {graph.name = "i"}) -> (tensor<?x3xi64> {graph.name = "y", graph.dims = ["y_count", "3"]}) {
  %y = graph.non_max_suppression %b, %s, %m, %i {center_point_box = true, count = "y_count"} : (tensor<?x?x4xf32>, tensor<?x3x?xf32>, tensor<1xi64>, tensor<1xf32>) -> tensor<?x3xi64>
  func.return %y : tensor<?x3xi64>
}

// CHECK:      kernel.schedule @model dims ["B", "N", "y_count"]
// CHECK:        %[[Y:.*]] = kernel.io output 4 "y" ["y_count", "3"] "int64"
// CHECK:        kernel.check "NonMaxSuppression: iou_threshold must be in [0, 1]"
// CHECK:        %[[ORDER:.*]] = kernel.alloc
// CHECK:        %[[SELECTED:.*]] = kernel.alloc
// CHECK:        %[[COUNTS:.*]] = kernel.alloc
// CHECK:        %[[TOTAL:.*]] = kernel.alloc
// CHECK:        %[[NULL:.*]] = kernel.null
// CHECK:        kernel.launch @nms_select_center(%{{[0-9]+}}, %{{[0-9]+}}, %{{[0-9]+}}, %{{[0-9]+}}, %[[NULL]], %[[ORDER]], %[[SELECTED]], %[[COUNTS]], {{.*}}) items(%{{.*}}) grain(%{{.*}}) for "non_max_suppression#1"
// CHECK-NEXT:   kernel.launch @nms_total(%[[COUNTS]], %[[TOTAL]], %{{.*}}) items(%{{.*}}) grain(%{{.*}}) for "non_max_suppression#1"
// CHECK-NEXT:   kernel.bind_dim "y_count" = %[[TOTAL]][0] "int64"
// CHECK-NEXT:   kernel.launch @nms_rows(%[[SELECTED]], %[[COUNTS]], %[[Y]], {{.*}}) items(%{{.*}}) grain(%{{.*}}) for "non_max_suppression#1"
