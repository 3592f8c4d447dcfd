// RUN: sed -n '/^\/\/ begin ok$/,/^\/\/ end ok$/p' %s | pyflame-opt - | filecheck %s
// RUN: sed -n '/^\/\/ begin carried$/,/^\/\/ end carried$/p' %s | not pyflame-opt - 2>&1 | filecheck %s --check-prefix=CARRIED
// RUN: sed -n '/^\/\/ begin scan$/,/^\/\/ end scan$/p' %s | not pyflame-opt - 2>&1 | filecheck %s --check-prefix=SCAN

// graph.loop: the body reads %w from the enclosing function and yields the next condition, the
// carried value and a scan slice; it prints as it parses.
// begin ok
func.func @main(%x: tensor<3xf32>, %w: tensor<3xf32>, %go: tensor<i1>) -> (tensor<3xf32>, tensor<?x3xf32>) {
  %y, %ys = "graph.loop"(%go, %x) <{trips = "t", count = "n", operandSegmentSizes = array<i32: 1, 1>}> ({
  ^bb0(%i: tensor<i64>, %c: tensor<i1>, %acc: tensor<3xf32>):
    %next = graph.add %acc, %w : (tensor<3xf32>, tensor<3xf32>) -> tensor<3xf32>
    graph.yield %c, %next, %next : tensor<i1>, tensor<3xf32>, tensor<3xf32>
  }) : (tensor<i1>, tensor<3xf32>) -> (tensor<3xf32>, tensor<?x3xf32>)
  func.return %y, %ys : tensor<3xf32>, tensor<?x3xf32>
}
// end ok
// CHECK: %y, %ys = "graph.loop"(%go, %x) <{trips = "t", count = "n", operandSegmentSizes = array<i32: 1, 1>}> ({
// CHECK-NEXT: ^bb0(%i: tensor<i64>, %c: tensor<i1>, %acc: tensor<3xf32>):
// CHECK-NEXT:   %next = graph.add %acc, %w
// CHECK-NEXT:   graph.yield %c, %next, %next : tensor<i1>, tensor<3xf32>, tensor<3xf32>
// CHECK-NEXT: }) : (tensor<i1>, tensor<3xf32>) -> (tensor<3xf32>, tensor<?x3xf32>)

// begin carried
func.func @main(%x: tensor<3xf32>) -> tensor<6xf32> {
  %y = "graph.loop"(%x) <{trips = "t", count = "n", operandSegmentSizes = array<i32: 0, 1>}> ({
  ^bb0(%i: tensor<i64>, %c: tensor<i1>, %acc: tensor<3xf32>):
    %next = graph.concat %acc, %acc {axis = 0 : i64} : (tensor<3xf32>, tensor<3xf32>) -> tensor<6xf32>
    graph.yield %c, %next : tensor<i1>, tensor<6xf32>
  }) : (tensor<3xf32>) -> tensor<6xf32>
  func.return %y : tensor<6xf32>
}
// end carried
// CARRIED: graph.loop: carried value 0 is tensor<3xf32> in, tensor<3xf32> in the body, tensor<6xf32> out and tensor<6xf32> as a result

// begin scan
func.func @main(%x: tensor<3xf32>) -> tensor<3xf32> {
  %y = "graph.loop"() <{trips = "t", count = "n", operandSegmentSizes = array<i32: 0, 0>}> ({
  ^bb0(%i: tensor<i64>, %c: tensor<i1>):
    graph.yield %c, %x : tensor<i1>, tensor<3xf32>
  }) : () -> tensor<3xf32>
  func.return %y : tensor<3xf32>
}
// end scan
// SCAN: graph.loop: scan output 0 is tensor<3xf32>, its slices tensor<3xf32>
