// RUN: pyflame-opt %s -p fold-constants | filecheck %s --check-prefix=ALL
// RUN: pyflame-opt %s -p 'fold-constants{fold-expensive=false}' | filecheck %s --check-prefix=CHEAP
// RUN: pyflame-opt %s -p 'fold-constants{max-bytes=16}' | filecheck %s --check-prefix=SMALL
// RUN: pyflame-opt %s -p 'fold-constants{exclude="graph.reshape"}' | filecheck %s --check-prefix=EXCL

// Everything folds by default (the 2x4 matmul result is inlined: 8 elements <= 16).
// ALL-NOT: graph.matmul
// ALL-NOT: graph.reshape
// ALL: graph.constant {value = dense<5.000000e+00> : tensor<1x8xf32>} : tensor<1x8xf32>
// ALL: graph.add

// fold-expensive=false keeps MatMul (and so the Reshape of its result).
// CHEAP: graph.matmul
// CHEAP: graph.reshape

// max-bytes=16 allows 4 floats: the 8-float MatMul result is not folded.
// SMALL: graph.matmul

// An excluded op stays, its producer is still folded.
// EXCL-NOT: graph.matmul
// EXCL: graph.reshape
func.func @main(%x: tensor<?x8xf32> {graph.name = "x", graph.dims = ["batch", "8"]}) -> (tensor<?x8xf32> {graph.name = "y", graph.dims = ["batch", "8"]}) {
  %a = graph.constant {value = dense<1.0> : tensor<2x5xf32>} : tensor<2x5xf32>
  %b = graph.constant {value = dense<1.0> : tensor<5x4xf32>} : tensor<5x4xf32>
  %m = graph.matmul %a, %b : (tensor<2x5xf32>, tensor<5x4xf32>) -> tensor<2x4xf32>
  %r = graph.reshape %m {shape = array<i64: 1, 8>} : (tensor<2x4xf32>) -> tensor<1x8xf32>
  %y = graph.add %x, %r : (tensor<?x8xf32>, tensor<1x8xf32>) -> tensor<?x8xf32>
  func.return %y : tensor<?x8xf32>
}
