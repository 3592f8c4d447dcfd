// RUN: pyflame-opt %examples/mlp.onnx -p lower-graph-to-cpu | filecheck %s
// RUN: pyflame-opt %examples/mlp.onnx -p lower-graph-to-cpu | filecheck %s --check-prefix=ONLY
// RUN: pyflame-opt %examples/mlp.onnx -p lower-graph-to-cpu,convert-to-llvm | filecheck %s --check-prefix=LLVM

// The example MLP (Gemm+Relu, Gemm+Relu, Gemm) becomes GEMM and elementwise task kernels, and
// nothing else: the artifact's launch table (pyflame_rt/launch_table.py) names the kernels and the
// runtime runs them, so they are public and no entry point calls them; the weights they read
// (the packed GEMM operands among them) stay `graph.weight` symbols.
// CHECK-DAG: func.func public @gemm_{{[0-9]+}}x{{[0-9]+}}_w{{[0-9]+}}_b_none_{{[a-z0-9_]+}}(%{{.*}}: !llvm.ptr, %{{.*}}: i64, %{{.*}}: i64)
// CHECK-DAG: func.func public @ew_relu_r0_v_w{{[0-9]+}}_{{[a-z0-9_]+}}(%{{.*}}: !llvm.ptr, %{{.*}}: i64, %{{.*}}: i64)
// ONLY-NOT: {{pfm_main|pfrt_run_kernel|graph\.[^w]}}

// LLVM: llvm.func @gemm_
// LLVM: llvm.intr.fma
// LLVM-NOT: pfrt_run_kernel
