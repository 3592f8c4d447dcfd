// RUN: pyflame-opt %s -O0 --to llvm --cpu x86-64-v3 | filecheck %s

// An elementwise kernel with a fused epilogue, op by op: z = relu(x + y) over 8-lane vectors
// (AVX2), then a scalar tail. Relu is a NaN-propagating select (x < 0 ? 0 : x as bit masks), not
// a max, so a NaN sum stays NaN.
func.func @main(%x: tensor<64xf32> {graph.name = "x", graph.dims = ["64"]}, %y: tensor<64xf32> {graph.name = "y", graph.dims = ["64"]}) -> (tensor<64xf32> {graph.name = "z", graph.dims = ["64"]}) {
  %z = graph.add %x, %y {activation = #graph.activation<relu>} : (tensor<64xf32>, tensor<64xf32>) -> tensor<64xf32>
  func.return %z : tensor<64xf32>
}

// The kernel: a task over work items [begin, end) reading its fields from the ctx array.
// CHECK:      llvm.func @ew_add_relu_r0_vv_w8_float32_float32_float32(%[[CTX:.*]]: !llvm.ptr, %[[BEGIN:.*]]: i64, %[[END:.*]]: i64) {
// Field 0 is the output, fields 1 and 2 the operands (addresses as integers).
// CHECK:        %[[F0:.*]] = llvm.load %{{.*}} {alignment = 8 : i64} : !llvm.ptr -> i64
// CHECK-NEXT:   %[[OUT:.*]] = llvm.inttoptr %[[F0]] : i64 to !llvm.ptr
// CHECK:        %[[F1:.*]] = llvm.load %{{.*}} {alignment = 8 : i64} : !llvm.ptr -> i64
// CHECK-NEXT:   %[[A:.*]] = llvm.inttoptr %[[F1]] : i64 to !llvm.ptr
// CHECK:        %[[F2:.*]] = llvm.load %{{.*}} {alignment = 8 : i64} : !llvm.ptr -> i64
// CHECK-NEXT:   %[[B:.*]] = llvm.inttoptr %[[F2]] : i64 to !llvm.ptr
// The loop over work items.
// CHECK:        llvm.br ^bb1(%[[BEGIN]] : i64)
// CHECK:        llvm.icmp "slt" %{{.*}}, %[[END]] : i64
// The vector body: two 8-lane loads, the add, relu as compare + bit select, one store.
// CHECK:        %[[PA:.*]] = llvm.getelementptr inbounds %[[A]][%{{.*}}] : (!llvm.ptr, i64) -> !llvm.ptr, f32
// CHECK-NEXT:   %[[VA:.*]] = llvm.load %[[PA]] {alignment = 4 : i64} : !llvm.ptr -> vector<8xf32>
// CHECK-NEXT:   %{{.*}} = llvm.add
// CHECK-NEXT:   %[[PB:.*]] = llvm.getelementptr inbounds %[[B]][%{{.*}}] : (!llvm.ptr, i64) -> !llvm.ptr, f32
// CHECK-NEXT:   %[[VB:.*]] = llvm.load %[[PB]] {alignment = 4 : i64} : !llvm.ptr -> vector<8xf32>
// CHECK-NEXT:   %[[SUM:.*]] = llvm.fadd %[[VA]], %[[VB]] : vector<8xf32>
// CHECK-NEXT:   %[[ZERO:.*]] = llvm.mlir.constant(dense<0.000000e+00> : vector<8xf32>) : vector<8xf32>
// CHECK-NEXT:   %[[NEG:.*]] = llvm.fcmp "olt" %[[SUM]], %[[ZERO]] : vector<8xf32>
// CHECK-NEXT:   %[[ZBITS:.*]] = llvm.bitcast %[[ZERO]] : vector<8xf32> to vector<8xi32>
// CHECK-NEXT:   %[[SBITS:.*]] = llvm.bitcast %[[SUM]] : vector<8xf32> to vector<8xi32>
// CHECK-NEXT:   %[[MASK:.*]] = llvm.sext %[[NEG]] : vector<8xi1> to vector<8xi32>
// CHECK-NEXT:   %[[ONES:.*]] = llvm.mlir.constant(dense<-1> : vector<8xi32>) : vector<8xi32>
// CHECK-NEXT:   %[[KEEP:.*]] = llvm.xor %[[MASK]], %[[ONES]] : vector<8xi32>
// CHECK-NEXT:   %[[LO:.*]] = llvm.and %[[ZBITS]], %[[MASK]] : vector<8xi32>
// CHECK-NEXT:   %[[HI:.*]] = llvm.and %[[SBITS]], %[[KEEP]] : vector<8xi32>
// CHECK-NEXT:   %[[BITS:.*]] = llvm.or %[[LO]], %[[HI]] : vector<8xi32>
// CHECK-NEXT:   %[[RES:.*]] = llvm.bitcast %[[BITS]] : vector<8xi32> to vector<8xf32>
// CHECK-NEXT:   %{{.*}} = llvm.add
// CHECK-NEXT:   %[[PO:.*]] = llvm.getelementptr inbounds %[[OUT]][%{{.*}}] : (!llvm.ptr, i64) -> !llvm.ptr, f32
// CHECK-NEXT:   %[[PV:.*]] = llvm.getelementptr %[[PO]][0] : (!llvm.ptr) -> !llvm.ptr, vector<8xf32>
// CHECK-NEXT:   llvm.store %[[RES]], %[[PV]] {alignment = 4 : i64} : vector<8xf32>, !llvm.ptr
// The scalar tail computes the same on f32.
// CHECK:        %[[TS:.*]] = llvm.fadd %{{.*}}, %{{.*}} : f32
// CHECK:        llvm.fcmp "olt" %[[TS]], %{{.*}} : f32
// CHECK:        llvm.store %{{.*}}, %{{.*}} {alignment = 4 : i64} : f32, !llvm.ptr
// CHECK:        llvm.return
