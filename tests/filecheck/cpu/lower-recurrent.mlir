// RUN: pyflame-opt %s --to kernel | filecheck %s

// A bidirectional LSTM with a run-time sequence length and batch, its W, R and B fed at run time:
// one GEMM projects X for every step and both directions (W packed first), the GEMM's pack kernel
// packs R^T in panels (reading R transposed), then one step-loop kernel per direction (the reverse one its own variant) runs over the batch
// entries, reading the biases (xb) and writing Y, Y_h and the cell state (an arena buffer: Y_c is
// not an output).
func.func @main(%x: tensor<?x?x3xf32> {graph.name = "x", graph.dims = ["seq", "batch", "3"]}, %w: tensor<2x16x3xf32> {graph.name = "w"}, %r: tensor<2x16x4xf32> {graph.name = "r"}, %b: tensor<2x32xf32> {graph.name = "b"}) -> (tensor<?x2x?x4xf32> {graph.name = "y", graph.dims = ["seq", "2", "batch", "4"]}, tensor<2x?x4xf32> {graph.name = "y_h", graph.dims = ["2", "batch", "4"]}) {
  %y, %y_h, %y_c = "graph.lstm"(%x, %w, %r, %b) <{hidden_size = 4 : i64, direction = #graph<rnn_direction bidirectional>, activations = ["sigmoid", "tanh", "tanh", "sigmoid", "tanh", "tanh"], activation_alpha = array<f32: 0.0, 0.0, 0.0, 0.0, 0.0, 0.0>, activation_beta = array<f32: 0.0, 0.0, 0.0, 0.0, 0.0, 0.0>, operandSegmentSizes = array<i32: 1, 1, 1, 1, 0, 0, 0, 0>}> : (tensor<?x?x3xf32>, tensor<2x16x3xf32>, tensor<2x16x4xf32>, tensor<2x32xf32>) -> (tensor<?x2x?x4xf32>, tensor<2x?x4xf32>, tensor<2x?x4xf32>)
  func.return %y, %y_h : tensor<?x2x?x4xf32>, tensor<2x?x4xf32>
}

// CHECK: func.func public @recurrent_lstm_h4_w{{[0-9]+}}_r{{[0-9]+}}_{{[0-9a-f]+}}(%xp: !llvm.ptr, %xb: !llvm.ptr, %rt: !llvm.ptr, %rt_h: !llvm.ptr, %rb: !llvm.ptr, %p: !llvm.ptr, %seq_lens: !llvm.ptr, %init_h: !llvm.ptr, %init_c: !llvm.ptr, %y: !llvm.ptr, %y_h: !llvm.ptr, %y_c: !llvm.ptr, %status: !llvm.ptr, %seq: i64, %batch: i64,
// CHECK: func.func public @recurrent_lstm_h4_w{{[0-9]+}}_r{{[0-9]+}}_rev_{{[0-9a-f]+}}(
// CHECK: kernel.schedule @model dims ["batch", "seq"] attributes {op_summary = {lstm = 1 : i64}}
// CHECK: %[[X:.*]] = kernel.io input 0 "x"
// CHECK: %[[W:.*]] = kernel.io input 1 "w"
// CHECK: %[[R:.*]] = kernel.io input 2 "r"
// CHECK: %[[B:.*]] = kernel.io input 3 "b"
// CHECK: %[[Y:.*]] = kernel.io output 4 "y"
// CHECK: %[[YH:.*]] = kernel.io output 5 "y_h"
// CHECK: %[[BATCH:.*]] = kernel.dim "batch"
// CHECK: %[[SEQ:.*]] = kernel.dim "seq"
// CHECK: %[[XP:.*]] = kernel.alloc
// CHECK: %[[WP:.*]] = kernel.alloc
// CHECK: kernel.launch @pack_b_{{[0-9]+}}(%[[W]], %[[WP]],
// CHECK: kernel.launch @gemm_{{[0-9a-z_]+}}(%[[X]], %[[WP]], %[[XP]],
// CHECK: %[[RT:.*]] = kernel.alloc
// CHECK: kernel.launch @pack_b_{{[0-9]+}}(%[[R]], %[[RT]],
// CHECK: %[[YC:.*]] = kernel.alloc
// CHECK: %[[ITEMS:.*]] = arith.ceildivsi %[[BATCH]],
// CHECK: kernel.launch @recurrent_lstm_h4_w{{[0-9]+}}_r{{[0-9]+}}_{{[0-9a-f]+}}(%[[XP]], %[[B]], %[[RT]], %{{[0-9]+}}, %{{[0-9]+}}, %{{[0-9]+}}, %{{[0-9]+}}, %{{[0-9]+}}, %{{[0-9]+}}, %[[Y]], %[[YH]], %[[YC]], %{{[0-9]+}}, %[[SEQ]], %[[BATCH]], {{.*}}) items(%[[ITEMS]])
// CHECK: kernel.launch @recurrent_lstm_h4_w{{[0-9]+}}_r{{[0-9]+}}_rev_{{[0-9a-f]+}}(%[[XP]], %{{[0-9]+}}, %{{[0-9]+}}, {{.*}}, %[[Y]], %[[YH]], %[[YC]], %{{[0-9]+}}, %[[SEQ]], %[[BATCH]], {{.*}}) items(%[[ITEMS]])
// CHECK-NOT: kernel.launch
