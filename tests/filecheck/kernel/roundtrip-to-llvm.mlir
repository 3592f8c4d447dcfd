// RUN: pyflame-opt %examples/mlp.onnx --to kernel --cpu x86-64-v3 > %t.kernel.mlir
// RUN: pyflame-opt %t.kernel.mlir > %t.again.mlir
// RUN: diff %t.kernel.mlir %t.again.mlir
// RUN: pyflame-opt %t.kernel.mlir --to llvm | filecheck %s

// The example MLP's kernel level (kernels and schedule) prints, parses back to the same text,
// and lowers on: the schedule becomes the pfm_main entry point calling every launch through
// the runtime, in launch order.
// CHECK:     llvm.func internal @gemm_
// CHECK-NOT: kernel.
// CHECK:     llvm.func @pfm_main(%{{.*}}: !llvm.ptr, %{{.*}}: !llvm.ptr, %{{.*}}: !llvm.ptr, %{{.*}}: !llvm.ptr, %{{.*}}: !llvm.ptr, %{{.*}}: !llvm.ptr)
// CHECK:     llvm.mlir.addressof @gemm_
// CHECK:     llvm.call @pfrt_run_kernel
// CHECK:     llvm.mlir.addressof @gemm_
// CHECK:     llvm.call @pfrt_run_kernel
// CHECK:     llvm.mlir.addressof @gemm_
// CHECK:     llvm.call @pfrt_run_kernel
// CHECK-NOT: llvm.call @pfrt_run_kernel
// CHECK:     llvm.func @pfrt_run_kernel(!llvm.ptr, !llvm.ptr, !llvm.ptr, i64, i64)
