// RUN: pyflame-opt %s | filecheck %s
// RUN: pyflame-opt %s | pyflame-opt | filecheck %s
// RUN: pyflame-opt %s -p lower-graph-to-cpu | filecheck %s --check-prefix=CPU
// MaxPool with Indices round trips and lowers to the window kernel's argmax variant; MaxUnpool
// (a run-time output_shape, a box smaller than the output) to a shape check, a zero fill, the
// index kernel without negative wrap-around, and an end pad.

// CHECK-LABEL: func.func @main
// CPU-DAG: func.func public @window_maxarg_3x3_w1_nb_none(
// CPU-DAG: func.func public @expect_i64(
// CPU-DAG: func.func public @index_scatter_none_float32_int64_k1_nonneg(
func.func @main(%x: tensor<1x2x7x7xf32> {graph.name = "x"}, %s: tensor<4xi64> {graph.name = "s"}) -> (tensor<1x2x3x3xf32>, tensor<1x2x3x3xi64>, tensor<1x2x8x9xf32>) {
  // CHECK: graph.max_pool_with_indices %{{.*}} {{{.*}}storage_order = #graph<storage_order column_major>{{.*}}} : (tensor<1x2x7x7xf32>) -> (tensor<1x2x3x3xf32>, tensor<1x2x3x3xi64>)
  %y, %i = graph.max_pool_with_indices %x {kernel_shape = array<i64: 3, 3>, strides = array<i64: 2, 2>, dilations = array<i64: 1, 1>, pads = array<i64: 0, 0, 0, 0>, storage_order = #graph<storage_order column_major>} : (tensor<1x2x7x7xf32>) -> (tensor<1x2x3x3xf32>, tensor<1x2x3x3xi64>)
  // CHECK: graph.max_unpool %{{.*}}, %{{.*}}, %{{.*}} {index_shape = array<i64: 7, 7>, spatial_shape = array<i64: 8, 9>} : (tensor<1x2x3x3xf32>, tensor<1x2x3x3xi64>, tensor<4xi64>) -> tensor<1x2x8x9xf32>
  %u = graph.max_unpool %y, %i, %s {index_shape = array<i64: 7, 7>, spatial_shape = array<i64: 8, 9>} : (tensor<1x2x3x3xf32>, tensor<1x2x3x3xi64>, tensor<4xi64>) -> tensor<1x2x8x9xf32>
  func.return %y, %i, %u : tensor<1x2x3x3xf32>, tensor<1x2x3x3xi64>, tensor<1x2x8x9xf32>
}
