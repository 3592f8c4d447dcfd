// RUN: pyflame-opt %s -O0 --to llvm --cpu x86-64-v3 | filecheck %s

// A GEMM tile, op by op: a static 6x8 @ 8x16 MatMul (at most SMALL_GEMM_MACS multiply-adds) takes
// the one-row kernel: a 1x16 register tile of two 8-lane accumulators. Each K step loads the two
// vectors of B's packed 16-column panel, broadcasts one element of A, and issues two FMAs; a full
// tile stores both accumulators, a partial one masked stores.
// The kernel's fields: A, packed B, C, the bias, the sizes and strides, the residual (a MatMul's
// kernel has no convolution geometry: that is a conv_a kernel's); then the work items.
// CHECK:      llvm.func internal @gemm_1x16_w8_nb_none_k576m24n16.fields(%a: !llvm.ptr, %[[B:b]]: !llvm.ptr, %c: !llvm.ptr, %bias: !llvm.ptr, %m: i64, %n: i64, %k: i64, %a_rs: i64, %a_cs: i64, %a_bs: i64, %b_bs: i64, %c_bs: i64, %mblocks: i64, %nblocks: i64, %ncp: i64, %npanels: i64, %groups: i64, %a_gs: i64, %c_gs: i64, %residual: !llvm.ptr, %c_rs: i64, %begin: i64, %end: i64) attributes {passthrough = ["alwaysinline"]} {
// The K loop: the step index and the two accumulators are block arguments.
// CHECK:      ^[[KLOOP:bb[0-9]+]](%[[K:.*]]: i64, %[[C0:.*]]: vector<8xf32>, %[[C1:.*]]: vector<8xf32>):
// CHECK-NEXT:   %{{.*}} = llvm.icmp "slt" %[[K]], %{{.*}} : i64
// CHECK-NEXT:   llvm.cond_br %{{.*}}, ^[[KBODY:bb[0-9]+]], ^[[KEXIT:bb[0-9]+]]
// CHECK-NEXT: ^[[KBODY]]:
// B's panel row k: 16 floats, two vectors.
// CHECK-NEXT:   %[[SIXTEEN:.*]] = llvm.mlir.constant(16) : i64
// CHECK-NEXT:   %[[ROW:.*]] = llvm.mul %[[K]], %[[SIXTEEN]] : i64
// CHECK-NEXT:   %[[BASE:.*]] = llvm.add %{{.*}}, %[[ROW]] : i64
// CHECK-NEXT:   %{{.*}} = llvm.mlir.constant(0) : i64
// CHECK-NEXT:   %[[OFF0:.*]] = llvm.add %[[BASE]], %{{.*}} : i64
// CHECK-NEXT:   %[[PB0:.*]] = llvm.getelementptr inbounds %[[B]][%[[OFF0]]] : (!llvm.ptr, i64) -> !llvm.ptr, f32
// CHECK-NEXT:   %[[B0:.*]] = llvm.load %[[PB0]] {alignment = 4 : i64} : !llvm.ptr -> vector<8xf32>
// CHECK-NEXT:   %{{.*}} = llvm.mlir.constant(8) : i64
// CHECK-NEXT:   %[[OFF1:.*]] = llvm.add %[[BASE]], %{{.*}} : i64
// CHECK-NEXT:   %[[PB1:.*]] = llvm.getelementptr inbounds %[[B]][%[[OFF1]]] : (!llvm.ptr, i64) -> !llvm.ptr, f32
// CHECK-NEXT:   %[[B1:.*]] = llvm.load %[[PB1]] {alignment = 4 : i64} : !llvm.ptr -> vector<8xf32>
// A[row, k], broadcast to 8 lanes.
// CHECK-NEXT:   %[[AOFF:.*]] = llvm.add %{{.*}}, %[[K]] : i64
// CHECK-NEXT:   %[[PA:.*]] = llvm.getelementptr inbounds %{{.*}}[%[[AOFF]]] : (!llvm.ptr, i64) -> !llvm.ptr, f32
// CHECK-NEXT:   %[[A:.*]] = llvm.load %[[PA]] {alignment = 4 : i64} : !llvm.ptr -> f32
// CHECK-NEXT:   %[[UNDEF:.*]] = llvm.mlir.undef : vector<8xf32>
// CHECK-NEXT:   %[[LANE0:.*]] = llvm.mlir.constant(0 : i32) : i32
// CHECK-NEXT:   %[[INS:.*]] = llvm.insertelement %[[A]], %[[UNDEF]][%[[LANE0]] : i32] : vector<8xf32>
// CHECK-NEXT:   %[[SPLAT:.*]] = llvm.shufflevector %[[INS]], %[[UNDEF]] [0, 0, 0, 0, 0, 0, 0, 0] : vector<8xf32>
// Two FMAs into the accumulators, then the next K step.
// CHECK-NEXT:   %[[N0:.*]] = llvm.intr.fma(%[[SPLAT]], %[[B0]], %[[C0]]) : (vector<8xf32>, vector<8xf32>, vector<8xf32>) -> vector<8xf32>
// CHECK-NEXT:   %[[N1:.*]] = llvm.intr.fma(%[[SPLAT]], %[[B1]], %[[C1]]) : (vector<8xf32>, vector<8xf32>, vector<8xf32>) -> vector<8xf32>
// CHECK-NEXT:   %[[K1:.*]] = llvm.add %[[K]], %{{.*}} : i64
// CHECK-NEXT:   llvm.br ^[[KLOOP]](%[[K1]], %[[N0]], %[[N1]] : i64, vector<8xf32>, vector<8xf32>)
// The epilogue: a full 16-column tile stores both vectors, else a masked store.
// CHECK-NEXT: ^[[KEXIT]]:
// CHECK-NEXT:   %[[W:.*]] = llvm.mlir.constant(8) : i64
// CHECK-NEXT:   %{{.*}} = llvm.icmp "eq" %{{.*}}, %[[W]] : i64
// CHECK-NEXT:   llvm.cond_br %{{.*}}, ^[[FULL:bb[0-9]+]], ^{{bb[0-9]+}}
// CHECK-NEXT: ^[[FULL]]:
// CHECK:        llvm.store %[[C0]], %{{.*}} {alignment = 4 : i64} : vector<8xf32>, !llvm.ptr
// CHECK:        llvm.store %[[C1]], %{{.*}} {alignment = 4 : i64} : vector<8xf32>, !llvm.ptr
// CHECK:        llvm.call_intrinsic "llvm.masked.store.v8f32.p0"(%[[C0]], %{{.*}}, %{{.*}}, %{{.*}}) : (vector<8xf32>, !llvm.ptr, i32, vector<8xi1>) -> ()
builtin.module {
  graph.weight @w : tensor<8x16xf32>
  func.func @main(%x: tensor<6x8xf32> {graph.name = "x", graph.dims = ["6", "8"]}) -> (tensor<6x16xf32> {graph.name = "y", graph.dims = ["6", "16"]}) {
    %w = graph.constant @w : tensor<8x16xf32>
    %y = graph.matmul %x, %w {graph.node = "mm"} : (tensor<6x8xf32>, tensor<8x16xf32>) -> tensor<6x16xf32>
    func.return %y : tensor<6x16xf32>
  }
}

{-#
  dialect_resources: {
    graph: {
      w: "0x040000000000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f"
    }
  }
#-}
