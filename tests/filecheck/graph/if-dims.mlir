// RUN: sed -n '/^\/\/ begin ok$/,/^\/\/ end ok$/p' %s | pyflame-opt - | filecheck %s
// RUN: sed -n '/^\/\/ begin rank$/,/^\/\/ end rank$/p' %s | not pyflame-opt - 2>&1 | filecheck %s --check-prefix=RANK
// RUN: sed -n '/^\/\/ begin nodims$/,/^\/\/ end nodims$/p' %s | not pyflame-opt - 2>&1 | filecheck %s --check-prefix=NODIMS

// graph.if whose branches yield different shapes: the results' dims are `dims` (bound before it
// from the branch the condition selects); it prints as it parses.
// begin ok
func.func @main(%c: tensor<i1>, %x: tensor<2x3xf32>) -> tensor<?x?xf32> {
  %y = "graph.if"(%c) <{dims = [["d0", "d1"]]}> ({
    graph.yield %x : tensor<2x3xf32>
  }, {
    %e = graph.concat %x, %x {axis = 1 : i64} : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x6xf32>
    graph.yield %e : tensor<2x6xf32>
  }) : (tensor<i1>) -> tensor<?x?xf32>
  func.return %y : tensor<?x?xf32>
}
// end ok
// CHECK: %y = "graph.if"(%c) <{dims = [["d0", "d1"]]}> ({
// CHECK-NEXT: graph.yield %x : tensor<2x3xf32>
// CHECK: graph.yield %e : tensor<2x6xf32>
// CHECK-NEXT: }) : (tensor<i1>) -> tensor<?x?xf32>

// the branches' ranks must be the results'
// begin rank
func.func @main(%c: tensor<i1>, %x: tensor<2x3xf32>) -> tensor<?xf32> {
  %y = "graph.if"(%c) <{dims = [["d0"]]}> ({
    graph.yield %x : tensor<2x3xf32>
  }, {
    graph.yield %x : tensor<2x3xf32>
  }) : (tensor<i1>) -> tensor<?xf32>
  func.return %y : tensor<?xf32>
}
// end rank
// RANK: graph.if: the then region yields

// without dims, the branches yield the result types exactly
// begin nodims
func.func @main(%c: tensor<i1>, %x: tensor<2x3xf32>) -> tensor<?x?xf32> {
  %y = "graph.if"(%c) ({
    graph.yield %x : tensor<2x3xf32>
  }, {
    graph.yield %x : tensor<2x3xf32>
  }) : (tensor<i1>) -> tensor<?x?xf32>
  func.return %y : tensor<?x?xf32>
}
// end nodims
// NODIMS: graph.if: the then region yields
