// RUN: pyflame-opt %s | filecheck %s
// RUN: pyflame-opt %s | pyflame-opt | filecheck %s
// Sizes computed from the input dims: a Slice to the sequence length, a Tile to the batch, a
// Reshape of [b*s, 16] back to [b, s, 16] (dims a single -1 cannot infer); and a
// reshape whose -1 dim divides a `?` the verifier cannot relate to the target (heads folded into
// the batch: `?` is 4*batch): it verifies, a `?` standing for any size.

// CHECK-LABEL: func.func @main
func.func @main(%x: tensor<?x?x16xf32> {graph.name = "x", graph.dims = ["batch", "seq", "16"]}, %table: tensor<1x64x16xf32>, %token: tensor<1x1x16xf32>, %folded: tensor<?x17x16xf32>) -> (tensor<1x?x16xf32>, tensor<?x1x16xf32>, tensor<?x4x17x16xf32>, tensor<?x?x16xf32>) {
  // CHECK: graph.slice %{{.*}} {starts = ["0"], ends = ["seq"], axes = array<i64: 1>, steps = array<i64: 1>} : (tensor<1x64x16xf32>) -> tensor<1x?x16xf32>
  %pos = graph.slice %table {starts = ["0"], ends = ["seq"], axes = array<i64: 1>, steps = array<i64: 1>} : (tensor<1x64x16xf32>) -> tensor<1x?x16xf32>
  // CHECK: graph.tile %{{.*}} {repeats = ["batch", "1", "1"]} : (tensor<1x1x16xf32>) -> tensor<?x1x16xf32>
  %tokens = graph.tile %token {repeats = ["batch", "1", "1"]} : (tensor<1x1x16xf32>) -> tensor<?x1x16xf32>
  // CHECK: graph.reshape %{{.*}} {shape = array<i64: -1, 4, 17, 16>} : (tensor<?x17x16xf32>) -> tensor<?x4x17x16xf32>
  %heads = graph.reshape %folded {shape = array<i64: -1, 4, 17, 16>} : (tensor<?x17x16xf32>) -> tensor<?x4x17x16xf32>
  %rows = graph.flatten %x {axis = 2 : i64} : (tensor<?x?x16xf32>) -> tensor<?x16xf32>
  // CHECK: graph.reshape %{{.*}} {shape = ["batch", "seq", "16"]} : (tensor<?x16xf32>) -> tensor<?x?x16xf32>
  %back = graph.reshape %rows {shape = ["batch", "seq", "16"]} : (tensor<?x16xf32>) -> tensor<?x?x16xf32>
  func.return %pos, %tokens, %heads, %back : tensor<1x?x16xf32>, tensor<?x1x16xf32>, tensor<?x4x17x16xf32>, tensor<?x?x16xf32>
}
