// RUN: pyflame-opt %examples/mlp.onnx -p lower-graph-to-cpu | filecheck %s
// RUN: pyflame-opt %examples/mlp.onnx -p lower-graph-to-cpu,convert-to-llvm | filecheck %s --check-prefix=LLVM

// The example MLP (Gemm+Relu, Gemm+Relu, Gemm) becomes GEMM and elementwise kernels
// called through the runtime (pfrt_run_kernel) from one entry point.
// CHECK-DAG: func.func private @gemm_{{[0-9]+}}x{{[0-9]+}}_w{{[0-9]+}}_b_none_{{[a-z0-9_]+}}(%{{.*}}: !llvm.ptr, %{{.*}}: i64, %{{.*}}: i64)
// CHECK-DAG: func.func private @ew_relu_r0_v_w{{[0-9]+}}
// CHECK-LABEL: func.func public @pfm_main(%{{.*}}: !llvm.ptr, %{{.*}}: !llvm.ptr, %{{.*}}: !llvm.ptr, %{{.*}}: !llvm.ptr, %{{.*}}: !llvm.ptr, %{{.*}}: !llvm.ptr)
// CHECK: llvm.mlir.addressof @gemm_
// CHECK: func.call @pfrt_run_kernel
// CHECK: llvm.mlir.addressof @ew_relu
// CHECK: func.call @pfrt_run_kernel
// CHECK-NOT: graph.

// LLVM: llvm.func internal @gemm_
// LLVM: llvm.intr.fma
// LLVM: llvm.func @pfm_main
// LLVM: llvm.call @pfrt_run_kernel
