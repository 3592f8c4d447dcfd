// RUN: sed -n '/^\/\/ begin lower$/,/^\/\/ end lower$/p' %s | pyflame-opt - -p 'lower-graph-to-kernel{cpu=x86-64-v3}' | filecheck %s
// RUN: sed -n '/^\/\/ begin computed$/,/^\/\/ end computed$/p' %s | pyflame-opt - -p 'lower-graph-to-kernel{cpu=x86-64-v3},plan-memory' | filecheck %s --check-prefix=COMPUTED
// RUN: sed -n '/^\/\/ begin dtype$/,/^\/\/ end dtype$/p' %s | not pyflame-opt - 2>&1 | filecheck %s --check-prefix=DTYPE
// RUN: sed -n '/^\/\/ begin element$/,/^\/\/ end element$/p' %s | not pyflame-opt - 2>&1 | filecheck %s --check-prefix=ELEMENT
// RUN: sed -n '/^\/\/ begin dim$/,/^\/\/ end dim$/p' %s | not pyflame-opt - 2>&1 | filecheck %s --check-prefix=DIM

// A shape fed as a graph input: the argument's graph.values name the dims its elements bind. The
// lowering binds each with a kernel.bind_dim from the input's io slot, before any launch; the sizes
// after it (the fill's element count, the output's shape) are expressions over those dims.
// begin lower
func.func @main(%s: tensor<2xi64> {graph.name = "s", graph.dims = ["2"], graph.values = ["s_0", "s_1"]}) -> (tensor<?x?xf32> {graph.name = "y", graph.dims = ["s_0", "s_1"]}) {
  %y = graph.constant_of_shape {shape = ["s_0", "s_1"], value = 2.5 : f64, dtype = #graph<element_type float32>} : tensor<?x?xf32>
  func.return %y : tensor<?x?xf32>
}
// end lower

// CHECK:      kernel.schedule @model dims ["s_0", "s_1"]
// CHECK-NEXT:   %[[S:.*]] = kernel.io input 0 "s" ["2"] "int64"
// CHECK-NEXT:   %{{.*}} = kernel.io output 1 "y" ["s_0", "s_1"] "float32"
// CHECK-NEXT:   %{{.*}} = kernel.io status 2 "status" [] "int64"
// CHECK-NEXT:   kernel.bind_dim "s_0" = %[[S]][0] "int64"
// CHECK-NEXT:   kernel.bind_dim "s_1" = %[[S]][1] "int64"
// CHECK:        %[[A:.*]] = kernel.dim "s_0"
// CHECK:        %[[B:.*]] = kernel.dim "s_1"
// CHECK:        kernel.launch

// A shape computed from tensor data: graph.bind_dims binds the dims from its operand once computed.
// The kernel.bind_dim reads the Cast's arena buffer after the Cast's launch and before the fill sized
// by the dims; the buffer lives at least until the launch before the binding.
// begin computed
func.func @main(%v: tensor<2xf32> {graph.name = "v", graph.dims = ["2"]}) -> (tensor<?x?xf32> {graph.name = "y", graph.dims = ["s_0", "s_1"]}) {
  %s = graph.cast %v to int64 : (tensor<2xf32>) -> tensor<2xi64>
  %0 = graph.bind_dims %s {dims = ["s_0", "s_1"]} : (tensor<2xi64>) -> tensor<2xi64>
  %y = graph.constant_of_shape {shape = ["s_0", "s_1"], value = 2.5 : f64, dtype = #graph<element_type float32>} : tensor<?x?xf32>
  func.return %y : tensor<?x?xf32>
}
// end computed

// COMPUTED:      kernel.schedule @model dims ["s_0", "s_1"]
// COMPUTED:        %[[BUF:.*]] = kernel.alloc(%{{.*}}) {offset = 0 : i64, live = array<i64: 0, 0>}
// COMPUTED:        kernel.launch @ew_cast_{{.*}}(%[[BUF]], {{.*}} for "cast#1"
// COMPUTED-NEXT:   kernel.bind_dim "s_0" = %[[BUF]][0] "int64"
// COMPUTED-NEXT:   kernel.bind_dim "s_1" = %[[BUF]][1] "int64"
// COMPUTED:        kernel.launch @ew_fill_{{.*}} for "constant_of_shape#1"

// A dim is bound from an element of an int64 or int32 tensor only ...
// begin dtype
kernel.schedule @model dims ["n"] {
  %0 = kernel.io input 0 "s" ["1"] "float32"
  kernel.bind_dim "n" = %0[0] "int64"
}
// end dtype
// DTYPE: a dim is bound from an element of an int64 tensor, 's' is float32

// ... from an element inside it ...
// begin element
kernel.schedule @model dims ["n"] {
  %0 = kernel.io input 0 "s" ["2"] "int64"
  kernel.bind_dim "n" = %0[2] "int64"
}
// end element
// ELEMENT: element 2 is outside input 's' of shape [2]

// ... and the dim is one of the schedule's.
// begin dim
kernel.schedule @model dims [] {
  %0 = kernel.io input 0 "s" ["2"] "int64"
  kernel.bind_dim "n" = %0[0] "int64"
}
// end dim
// DIM: 'n' is not a dim of the schedule []
