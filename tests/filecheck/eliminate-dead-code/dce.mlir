// RUN: pyflame-opt %s -p eliminate-dead-code | filecheck %s
// RUN: pyflame-opt %s -p eliminate-dead-code --print-stats 2>&1 >/dev/null | filecheck %s --check-prefix=STATS

// Identity (what Identity and inference Dropout import as) forwards its input;
// nodes and constants whose results nobody uses disappear.
// CHECK-LABEL: func.func @main
// CHECK-NEXT:    %[[W:.*]] = graph.constant @w : tensor<4x4xf32>
// CHECK-NEXT:    %[[H:.*]] = graph.matmul %x, %[[W]]
// CHECK-NEXT:    %[[R:.*]] = graph.relu %[[H]]
// CHECK-NEXT:    func.return %[[R]], %x
// STATS: pipeline: nodes 5 -> 2, nodes removed 3
// STATS-NEXT: eliminate-dead-code {{ *}}nodes removed 3
func.func @main(%x: tensor<?x4xf32> {graph.name = "x", graph.dims = ["batch", "4"]}) -> (tensor<?x4xf32> {graph.name = "y", graph.dims = ["batch", "4"]}, tensor<?x4xf32> {graph.name = "x_copy", graph.dims = ["batch", "4"]}) {
  %w = graph.constant @w : tensor<4x4xf32>
  %unused_w = graph.constant @unused : tensor<4x4xf32>
  %i = graph.identity %x : (tensor<?x4xf32>) -> tensor<?x4xf32>
  %h = graph.matmul %i, %w : (tensor<?x4xf32>, tensor<4x4xf32>) -> tensor<?x4xf32>
  %dead = graph.matmul %x, %unused_w : (tensor<?x4xf32>, tensor<4x4xf32>) -> tensor<?x4xf32>
  %r = graph.relu %h : (tensor<?x4xf32>) -> tensor<?x4xf32>
  %o = graph.identity %x : (tensor<?x4xf32>) -> tensor<?x4xf32>
  func.return %r, %o : tensor<?x4xf32>, tensor<?x4xf32>
}
