// RUN: pyflame-opt %s | filecheck %s
// RUN: pyflame-opt %s | pyflame-opt | filecheck %s
// Unique round trips, flattened (no axis) and along an axis.

// CHECK-LABEL: func.func @main
func.func @main(%x: tensor<4x3xi64>) -> (tensor<?xi64>, tensor<4x?xi64>) {
  // CHECK: graph.unique %{{.*}} {sorted = true, count = "a"} : (tensor<4x3xi64>) -> (tensor<?xi64>, tensor<?xi64>, tensor<12xi64>, tensor<?xi64>)
  %a, %ai, %av, %ac = graph.unique %x {sorted = true, count = "a"} : (tensor<4x3xi64>) -> (tensor<?xi64>, tensor<?xi64>, tensor<12xi64>, tensor<?xi64>)
  // CHECK: graph.unique %{{.*}} {axis = 1 : i64, sorted = false, count = "b"} : (tensor<4x3xi64>) -> (tensor<4x?xi64>, tensor<?xi64>, tensor<3xi64>, tensor<?xi64>)
  %b, %bi, %bv, %bc = graph.unique %x {axis = 1 : i64, sorted = false, count = "b"} : (tensor<4x3xi64>) -> (tensor<4x?xi64>, tensor<?xi64>, tensor<3xi64>, tensor<?xi64>)
  func.return %a, %b : tensor<?xi64>, tensor<4x?xi64>
}
