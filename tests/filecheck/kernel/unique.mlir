// RUN: pyflame-opt %s -p 'lower-graph-to-kernel{cpu=x86-64-v3},plan-memory' | filecheck %s

// Unique's results are sized by the distinct count, a dim bound mid-run: the groups kernel sorts
// and groups the slices in a scratch buffer and writes their number into the buffer kernel.bind_dim
// reads; the write kernel then fills the four results the bound dim sizes.
func.func @main(%x: tensor<?x3xf32> {graph.name = "x", graph.dims = ["n", "3"]}) -> (tensor<?x3xf32> {graph.name = "y", graph.dims = ["y_count", "3"]}, tensor<?xi64> {graph.name = "i", graph.dims = ["y_count"]}, tensor<?xi64> {graph.name = "v", graph.dims = ["n"]}, tensor<?xi64> {graph.name = "c", graph.dims = ["y_count"]}) {
  %y, %i, %v, %c = graph.unique %x {axis = 0 : i64, sorted = false, count = "y_count"} : (tensor<?x3xf32>) -> (tensor<?x3xf32>, tensor<?xi64>, tensor<?xi64>, tensor<?xi64>)
  func.return %y, %i, %v, %c : tensor<?x3xf32>, tensor<?xi64>, tensor<?xi64>, tensor<?xi64>
}

// CHECK:      kernel.schedule @model dims ["n", "y_count"]
// CHECK:        %[[X:.*]] = kernel.io input 0 "x" ["n", "3"] "float32"
// CHECK-NEXT:   %[[Y:.*]] = kernel.io output 1 "y" ["y_count", "3"] "float32"
// CHECK-NEXT:   %[[I:.*]] = kernel.io output 2 "i" ["y_count"] "int64"
// CHECK-NEXT:   %[[V:.*]] = kernel.io output 3 "v" ["n"] "int64"
// CHECK-NEXT:   %[[C:.*]] = kernel.io output 4 "c" ["y_count"] "int64"
// CHECK:        %[[WORK:.*]] = kernel.alloc
// CHECK:        %[[COUNT:.*]] = kernel.alloc
// CHECK:        kernel.launch @unique_groups_float32(%[[X]], %[[WORK]], %[[COUNT]], {{.*}}) items(%{{.*}}) grain(%{{.*}}) for "unique#1"
// CHECK-NEXT:   kernel.bind_dim "y_count" = %[[COUNT]][0] "int64"
// CHECK-NEXT:   %[[G:.*]] = kernel.dim "y_count"
// CHECK-NEXT:   kernel.launch @unique_write_float32(%[[X]], %[[WORK]], %[[Y]], %[[I]], %[[V]], %[[C]], {{.*}}, %[[G]]) items(%{{.*}}) grain(%{{.*}}) for "unique#1"
