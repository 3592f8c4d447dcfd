// RUN: pyflame-opt %s -p fold-constants | filecheck %s
// RUN: pyflame-opt %s -p fold-constants --print-stats 2>&1 >/dev/null | filecheck %s --check-prefix=STATS
// RUN: pyflame-opt %s -p 'fold-constants{inline-elements=0}' | filecheck %s --check-prefix=WEIGHT

// A chain of nodes on constants becomes one constant; nodes that read %x stay.
// CHECK-LABEL: func.func @main
// CHECK-NEXT:    %[[C:.*]] = graph.constant {value = dense<[2.000000e+00, 0.000000e+00, 6.000000e+00, 0.000000e+00]> : tensor<4xf32>} : tensor<4xf32>
// CHECK-NEXT:    %[[Y:.*]] = graph.add %x, %[[C]]
// CHECK-NEXT:    func.return %[[Y]]
// STATS: pipeline: nodes 3 -> 1, nodes removed 2, constants folded 2
// STATS-NEXT: fold-constants {{ *}}nodes removed 2, constants folded 2

// Results above inline-elements go to the weight table under a new name.
// WEIGHT: %[[C:.*]] = graph.constant @r_folded : tensor<4xf32>
// WEIGHT-NEXT: graph.add %x, %[[C]]
func.func @main(%x: tensor<?x4xf32> {graph.name = "x", graph.dims = ["batch", "4"]}) -> (tensor<?x4xf32> {graph.name = "y", graph.dims = ["batch", "4"]}) {
  %a = graph.constant {value = dense<[1.0, -2.0, 3.0, -4.0]> : tensor<4xf32>} : tensor<4xf32>
  %b = graph.constant {value = dense<2.0> : tensor<4xf32>} : tensor<4xf32>
  %m = graph.mul %a, %b : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
  %r = graph.relu %m : (tensor<4xf32>) -> tensor<4xf32>
  %y = graph.add %x, %r : (tensor<?x4xf32>, tensor<4xf32>) -> tensor<?x4xf32>
  func.return %y : tensor<?x4xf32>
}
