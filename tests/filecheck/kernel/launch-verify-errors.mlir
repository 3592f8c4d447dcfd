// RUN: sed -n '/^\/\/ begin count$/,/^\/\/ end count$/p' %s | not pyflame-opt - 2>&1 | filecheck %s --check-prefix=COUNT
// RUN: sed -n '/^\/\/ begin size$/,/^\/\/ end size$/p' %s | not pyflame-opt - 2>&1 | filecheck %s --check-prefix=SIZE
// RUN: sed -n '/^\/\/ begin buffer$/,/^\/\/ end buffer$/p' %s | not pyflame-opt - 2>&1 | filecheck %s --check-prefix=BUFFER
// RUN: sed -n '/^\/\/ begin null$/,/^\/\/ end null$/p' %s | pyflame-opt - | filecheck %s --check-prefix=NULL
// RUN: sed -n '/^\/\/ begin zero$/,/^\/\/ end zero$/p' %s | not pyflame-opt - 2>&1 | filecheck %s --check-prefix=ZERO

// A launch passes the fields of its kernel's signature: as many as the kernel's kernel.fields
// names, a buffer for each !llvm.ptr argument and an index for each i64 one; `kernel.null` is the
// buffer for a field the kernel does not touch (an index 0 is not a buffer). The kernels here are declarations
// (as the kernel cache's kernels are), which carry the same signature.

// begin count
builtin.module {
  func.func private @copy(!llvm.ptr, !llvm.ptr, i64, i64, i64) attributes {kernel.fields = ["dst", "src", "n"]}
  kernel.schedule @model dims [] {
    %0 = kernel.io input 0 "x" ["4"] "float32"
    %1 = kernel.io output 1 "y" ["4"] "float32"
    %2 = arith.constant 1 : index
    kernel.launch @copy(%1, %0) items(%2) grain(%2) for "copy#1" : !kernel.buffer, !kernel.buffer
  }
}
// end count
// COUNT: launch of @copy passes 2 fields, the kernel takes 3 (dst, src, n)

// begin size
builtin.module {
  func.func private @copy(!llvm.ptr, !llvm.ptr, i64, i64, i64) attributes {kernel.fields = ["dst", "src", "n"]}
  kernel.schedule @model dims [] {
    %0 = kernel.io input 0 "x" ["4"] "float32"
    %1 = kernel.io output 1 "y" ["4"] "float32"
    %2 = arith.constant 1 : index
    kernel.launch @copy(%1, %0, %0) items(%2) grain(%2) for "copy#1" : !kernel.buffer, !kernel.buffer, !kernel.buffer
  }
}
// end size
// SIZE: field 2 ('n') of @copy is a size (i64), the launch passes !kernel.buffer

// begin buffer
builtin.module {
  func.func private @copy(!llvm.ptr, !llvm.ptr, i64, i64, i64) attributes {kernel.fields = ["dst", "src", "n"]}
  kernel.schedule @model dims [] {
    %0 = kernel.io input 0 "x" ["4"] "float32"
    %1 = kernel.io output 1 "y" ["4"] "float32"
    %2 = arith.constant 1 : index
    kernel.launch @copy(%1, %2, %2) items(%2) grain(%2) for "copy#1" : !kernel.buffer, index, index
  }
}
// end buffer
// BUFFER: field 1 ('src') of @copy is a buffer (!llvm.ptr), the launch passes index

// begin null
builtin.module {
  func.func private @copy(!llvm.ptr, !llvm.ptr, i64, i64, i64) attributes {kernel.fields = ["dst", "src", "n"]}
  kernel.schedule @model dims [] {
    %0 = kernel.io output 0 "y" ["4"] "float32"
    %1 = kernel.null
    %2 = arith.constant 1 : index
    kernel.launch @copy(%0, %1, %2) items(%2) grain(%2) for "copy#1" : !kernel.buffer, !kernel.buffer, index
  }
}
// end null
// NULL: %[[NULL:.*]] = kernel.null
// NULL: kernel.launch @copy(%{{.*}}, %[[NULL]], %{{.*}})

// begin zero
builtin.module {
  func.func private @copy(!llvm.ptr, !llvm.ptr, i64, i64, i64) attributes {kernel.fields = ["dst", "src", "n"]}
  kernel.schedule @model dims [] {
    %0 = kernel.io output 0 "y" ["4"] "float32"
    %1 = arith.constant 0 : index
    %2 = arith.constant 1 : index
    kernel.launch @copy(%0, %1, %2) items(%2) grain(%2) for "copy#1" : !kernel.buffer, index, index
  }
}
// end zero
// ZERO: field 1 ('src') of @copy is a buffer (!llvm.ptr), the launch passes index
