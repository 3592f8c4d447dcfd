// RUN: pyflame-opt %examples/mlp.onnx --to kernel --cpu x86-64-v3 > %t.kernel.mlir
// RUN: pyflame-opt %t.kernel.mlir > %t.again.mlir
// RUN: diff %t.kernel.mlir %t.again.mlir
// RUN: pyflame-opt %t.kernel.mlir --to llvm | filecheck %s

// The example MLP's kernel level (kernels and schedule) prints, parses back to the same text,
// and lowers on: each typed kernel becomes an internal llvm function behind its public task
// wrapper (a compile turns the schedule's launches into the artifact's launch table, data the
// runtime executes, not code).
// CHECK:     llvm.func internal @gemm_{{[a-z0-9_]+}}.fields(%a: !llvm.ptr, %b: !llvm.ptr,
// CHECK:     llvm.func @gemm_{{[a-z0-9_]+}}(%ctx: !llvm.ptr, %{{.*}}: i64, %{{.*}}: i64)
// CHECK-NOT: kernel.
// CHECK-NOT: pfm_main
// CHECK-NOT: pfrt_run_kernel
