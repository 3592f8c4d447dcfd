// RUN: pyflame-opt %s -p convert-to-llvm | filecheck %s

// A kernel-level loop (scf + arith + llvm memory ops) lowered to the llvm dialect only.
// CHECK-LABEL: llvm.func internal @scale
// CHECK-NOT: scf.
// CHECK-NOT: arith.
// CHECK: llvm.cond_br
// CHECK: llvm.fmul
// CHECK: llvm.call_intrinsic "llvm.maxnum.v8f32"
// CHECK: llvm.add
// CHECK: llvm.br
// CHECK: llvm.return
// CHECK: llvm.func @pfrt_parallel_for(!llvm.ptr, !llvm.ptr, !llvm.ptr, i64, i64)
func.func private @scale(%ctx: !llvm.ptr, %begin: i64, %end: i64) {
  %step = arith.constant 8 : i64
  %two = arith.constant dense<2.0> : vector<8xf32>
  %zero = arith.constant dense<0.0> : vector<8xf32>
  scf.for %i = %begin to %end step %step : i64 {
    %p = llvm.getelementptr inbounds %ctx[%i] : (!llvm.ptr, i64) -> !llvm.ptr, f32
    %v = llvm.load %p {alignment = 4 : i64} : !llvm.ptr -> vector<8xf32>
    %m = arith.mulf %v, %two : vector<8xf32>
    %r = arith.maxnumf %m, %zero : vector<8xf32>
    llvm.store %r, %p {alignment = 4 : i64} : vector<8xf32>, !llvm.ptr
  }
  func.return
}
func.func private @pfrt_parallel_for(!llvm.ptr, !llvm.ptr, !llvm.ptr, i64, i64)
