// RUN: pyflame-opt %s -O0 --to llvm --cpu x86-64-v3 | filecheck %s

// An elementwise kernel with a fused epilogue, op by op: z = relu(x + y) over 8-lane vectors
// (AVX2), then a scalar tail. Relu is a NaN-propagating select (x < 0 ? 0 : x as bit masks), not
// a max, so a NaN sum stays NaN.
func.func @main(%x: tensor<64xf32> {graph.name = "x", graph.dims = ["64"]}, %y: tensor<64xf32> {graph.name = "y", graph.dims = ["64"]}) -> (tensor<64xf32> {graph.name = "z", graph.dims = ["64"]}) {
  %z = graph.add %x, %y {activation = #graph.activation<relu>} : (tensor<64xf32>, tensor<64xf32>) -> tensor<64xf32>
  func.return %z : tensor<64xf32>
}

// The kernel: a typed function, one argument per field (the output, the two operands, the inner
// extent, its chunks, the operands' inner strides), then the work items [begin, end); internal and
// always inlined into its task wrapper.
// CHECK:      llvm.func internal @ew_add_relu_r0_vv_w8_float32_float32_float32.fields(%[[OUT:out]]: !llvm.ptr, %[[A:in0]]: !llvm.ptr, %[[B:in1]]: !llvm.ptr, %inner: i64, %nchunks: i64, %in0_inner_stride: i64, %in1_inner_stride: i64, %[[BEGIN:begin]]: i64, %[[END:end]]: i64) attributes {passthrough = ["alwaysinline"]} {
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
// The task wrapper the runtime calls, under the kernel's name: it loads the seven fields from the
// ctx array (i64 slots), turns the buffers' addresses into pointers and calls the kernel.
// CHECK:      llvm.func @ew_add_relu_r0_vv_w8_float32_float32_float32(%[[CTX:ctx]]: !llvm.ptr, %[[WB:.*]]: i64, %[[WE:.*]]: i64) {
// CHECK:        %[[S0:.*]] = llvm.getelementptr inbounds %[[CTX]][%{{.*}}] : (!llvm.ptr, i64) -> !llvm.ptr, i64
// CHECK-NEXT:   %[[F0:.*]] = llvm.load %[[S0]] {alignment = 8 : i64} : !llvm.ptr -> i64
// CHECK-COUNT-6: llvm.load %{{.*}} {alignment = 8 : i64} : !llvm.ptr -> i64
// CHECK:        %[[P0:.*]] = llvm.inttoptr %[[F0]] : i64 to !llvm.ptr
// CHECK-NEXT:   %[[P1:.*]] = llvm.inttoptr %{{.*}} : i64 to !llvm.ptr
// CHECK-NEXT:   %[[P2:.*]] = llvm.inttoptr %{{.*}} : i64 to !llvm.ptr
// CHECK-NEXT:   llvm.call @ew_add_relu_r0_vv_w8_float32_float32_float32.fields(%[[P0]], %[[P1]], %[[P2]], %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %[[WB]], %[[WE]]) : (!llvm.ptr, !llvm.ptr, !llvm.ptr, i64, i64, i64, i64, i64, i64) -> ()
// CHECK-NEXT:   llvm.return
