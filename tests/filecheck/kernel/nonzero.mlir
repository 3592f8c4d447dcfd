// RUN: pyflame-opt %s -p 'lower-graph-to-kernel{cpu=x86-64-v3},plan-memory' | filecheck %s

// NonZero's result is [rank, count], count a dim of the schedule bound mid-run: the counting kernel
// writes the count into a scratch buffer, a kernel.bind_dim reads it after that launch, and the
// kernel writing the coordinates takes the bound dim as the result's row length.
func.func @main(%x: tensor<?x3xf32> {graph.name = "x", graph.dims = ["n", "3"]}) -> (tensor<2x?xi64> {graph.name = "y", graph.dims = ["2", "y_count"]}) {
  %y = graph.nonzero %x {count = "y_count"} : (tensor<?x3xf32>) -> tensor<2x?xi64>
  func.return %y : tensor<2x?xi64>
}

// CHECK:      kernel.schedule @model dims ["n", "y_count"]
// CHECK:        %[[X:.*]] = kernel.io input 0 "x" ["n", "3"] "float32"
// CHECK-NEXT:   %[[Y:.*]] = kernel.io output 1 "y" ["2", "y_count"] "int64"
// CHECK:        %[[COUNT:.*]] = kernel.alloc(%{{.*}}) {offset = 0 : i64, live = array<i64: 0, 0>}
// CHECK:        kernel.launch @count_nonzero_float32(%[[X]], %[[COUNT]], %{{.*}}) items(%{{.*}}) grain(%{{.*}}) for "nonzero#1"
// CHECK-NEXT:   kernel.bind_dim "y_count" = %[[COUNT]][0] "int64"
// CHECK-NEXT:   %[[N:.*]] = kernel.dim "y_count"
// CHECK-NEXT:   kernel.launch @nonzero_float32_r2(%[[X]], %[[Y]], %[[N]], {{.*}}) items(%{{.*}}) grain(%{{.*}}) for "nonzero#1"
