// RUN: pyflame-opt %s -O0 --to llvm --cpu x86-64-v3 | filecheck %s

// A row reduction kernel, op by op: ReduceSum over rows of 32 floats accumulates 8-lane vectors,
// stores the accumulator to a stack slot and adds its 8 lanes in order, then adds the scalar tail
// of the row and stores the row's sum.
func.func @main(%x: tensor<4x32xf32> {graph.name = "x", graph.dims = ["4", "32"]}) -> (tensor<4x1xf32> {graph.name = "y", graph.dims = ["4", "1"]}) {
  %y = graph.reduce %x {kind = #graph<reduce_kind sum>, axes = array<i64: 1>, keepdims = true} : (tensor<4x32xf32>) -> tensor<4x1xf32>
  func.return %y : tensor<4x1xf32>
}

// CHECK:      llvm.func internal @row_sum_float32_w8.fields(%in: !llvm.ptr, %out: !llvm.ptr, %r: i64, %inner: i64, %scale: !llvm.ptr, %bias: !llvm.ptr, %mean: !llvm.ptr, %rstd: !llvm.ptr, %begin: i64, %end: i64) attributes {passthrough = ["alwaysinline"]} {
// CHECK-NEXT:   %[[EIGHT:.*]] = llvm.mlir.constant(8) : i64
// CHECK-NEXT:   %[[SLOT:.*]] = llvm.alloca %[[EIGHT]] x f32 {alignment = 64 : i64} : (i64) -> !llvm.ptr
// The vector loop: the accumulator is a block argument, one load and one fadd per step.
// CHECK:        %[[ZERO:.*]] = llvm.mlir.constant(dense<0.000000e+00> : vector<8xf32>) : vector<8xf32>
// CHECK:        llvm.br ^[[VLOOP:.*]](%{{.*}}, %[[ZERO]] : i64, vector<8xf32>)
// CHECK-NEXT: ^[[VLOOP]](%[[I:.*]]: i64, %[[ACC:.*]]: vector<8xf32>):
// CHECK-NEXT:   llvm.icmp "slt" %[[I]], %{{.*}} : i64
// CHECK-NEXT:   llvm.cond_br %{{.*}}, ^{{.*}}, ^{{.*}}
// CHECK:        %[[V:.*]] = llvm.load %{{.*}} {alignment = 4 : i64} : !llvm.ptr -> vector<8xf32>
// CHECK-NEXT:   %[[NEXT:.*]] = llvm.fadd %[[ACC]], %[[V]] : vector<8xf32>
// CHECK-NEXT:   %[[I2:.*]] = llvm.add %[[I]], %{{.*}} : i64
// CHECK-NEXT:   llvm.br ^[[VLOOP]](%[[I2]], %[[NEXT]] : i64, vector<8xf32>)
// The horizontal sum: lanes 0..7 in order, through the stack slot.
// CHECK:        %[[VSLOT:.*]] = llvm.getelementptr %{{.*}}[0] : (!llvm.ptr) -> !llvm.ptr, vector<8xf32>
// CHECK-NEXT:   llvm.store %[[ACC]], %[[VSLOT]] {alignment = 4 : i64} : vector<8xf32>, !llvm.ptr
// CHECK:        %[[L0:.*]] = llvm.load %{{.*}} {alignment = 4 : i64} : !llvm.ptr -> f32
// CHECK:        %[[L1:.*]] = llvm.load %{{.*}} {alignment = 4 : i64} : !llvm.ptr -> f32
// CHECK-NEXT:   %[[S1:.*]] = llvm.fadd %[[L0]], %[[L1]] : f32
// CHECK-COUNT-6: llvm.fadd %{{.*}}, %{{.*}} : f32
// The scalar tail of the row, then the row's sum stored.
// CHECK:        %[[T:.*]] = llvm.load %{{.*}} {alignment = 4 : i64} : !llvm.ptr -> f32
// CHECK-NEXT:   llvm.fadd %{{.*}}, %[[T]] : f32
// CHECK:        llvm.store %{{.*}}, %{{.*}} {alignment = 4 : i64} : f32, !llvm.ptr
// CHECK:        llvm.return
