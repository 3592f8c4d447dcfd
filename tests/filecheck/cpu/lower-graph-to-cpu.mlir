// RUN: pyflame-opt %examples/mlp.onnx -p lower-graph-to-cpu | filecheck %s
// RUN: pyflame-opt %examples/mlp.onnx -p lower-graph-to-cpu | filecheck %s --check-prefix=ONLY
// RUN: pyflame-opt %examples/mlp.onnx -p lower-graph-to-cpu,convert-to-llvm | filecheck %s --check-prefix=LLVM

// The example MLP (Gemm+Relu, Gemm+Relu, Gemm) becomes GEMM and elementwise kernels, and nothing
// else: the artifact's launch table (pyflame_rt/launch_table.py) names the kernels and the runtime
// runs them, so they are public and no entry point calls them; the weights they read (the packed
// GEMM operands among them) stay `graph.weight` symbols. A kernel takes one typed argument per
// field (buffers as pointers, sizes as i64), then its work items.
// CHECK-DAG: func.func public @gemm_{{[0-9]+}}x{{[0-9]+}}_w{{[0-9]+}}_b_none_{{[a-z0-9_]+}}(%a: !llvm.ptr, %b: !llvm.ptr, %c: !llvm.ptr, %bias: !llvm.ptr, %m: i64, {{.*}}, %begin: i64, %end: i64) attributes {kernel.fields = ["a", "b", "c", "bias", "m",
// CHECK-DAG: func.func public @ew_relu_r0_v_w{{[0-9]+}}_{{[a-z0-9_]+}}(%out: !llvm.ptr, %in0: !llvm.ptr, %inner: i64, %nchunks: i64, %in0_inner_stride: i64, %begin: i64, %end: i64) attributes {kernel.fields = ["out", "in0", "inner", "nchunks", "in0_inner_stride"]}
// ONLY-NOT: {{pfm_main|pfrt_run_kernel|graph\.[^w]}}

// In llvm, each kernel is internal (always inlined) behind the task wrapper the runtime calls.
// LLVM: llvm.func internal @gemm_{{[a-z0-9_]+}}.fields(%a: !llvm.ptr,
// LLVM: llvm.intr.fma
// LLVM: llvm.func @gemm_{{[a-z0-9_]+}}(%ctx: !llvm.ptr, %{{.*}}: i64, %{{.*}}: i64)
// LLVM: llvm.call @gemm_{{[a-z0-9_]+}}.fields(
// LLVM-NOT: pfrt_run_kernel
