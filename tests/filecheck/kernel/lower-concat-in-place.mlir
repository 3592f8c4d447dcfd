// RUN: pyflame-opt %s -p 'lower-graph-to-kernel{cpu=x86-64-v3}' | filecheck %s

// The movement pattern of a channels-last Concat whose inputs are convs read only by it: each
// conv's GEMM writes its rows straight into its channel slice of the Concat's result (here the
// output slot; the second at byte 16, after 4 channels), and the Concat launches nothing.
func.func @main(%x: tensor<1x4x4x8xf32> {graph.name = "x", graph.dims = ["1", "4", "4", "8"]}) -> (tensor<1x4x4x8xf32> {graph.name = "y", graph.dims = ["1", "4", "4", "8"]}) {
  %w1 = graph.constant {value = dense<0.5> : tensor<4x8x1x1xf32>} : tensor<4x8x1x1xf32>
  %w2 = graph.constant {value = dense<0.25> : tensor<4x8x1x1xf32>} : tensor<4x8x1x1xf32>
  %a = graph.conv %x, %w1 strides [1, 1] dilations [1, 1] pads [0, 0, 0, 0] layout NHWC : (tensor<1x4x4x8xf32>, tensor<4x8x1x1xf32>) -> tensor<1x4x4x4xf32>
  %b = graph.conv %x, %w2 strides [1, 1] dilations [1, 1] pads [0, 0, 0, 0] layout NHWC : (tensor<1x4x4x8xf32>, tensor<4x8x1x1xf32>) -> tensor<1x4x4x4xf32>
  %y = graph.concat %a, %b {axis = 3 : i64} : (tensor<1x4x4x4xf32>, tensor<1x4x4x4xf32>) -> tensor<1x4x4x8xf32>
  func.return %y : tensor<1x4x4x8xf32>
}

// CHECK:      kernel.schedule @model dims [] attributes {op_summary = {conv = 2 : i64, concat = 1 : i64}} {
// CHECK-NEXT:   %[[X:.*]] = kernel.io input 0 "x" ["1", "4", "4", "8"] "float32"
// CHECK-NEXT:   %[[Y:.*]] = kernel.io output 1 "y" ["1", "4", "4", "8"] "float32"
// CHECK-NEXT:   %{{.*}} = kernel.io status 2 "status" [] "int64"
// CHECK-NEXT:   %[[W1:.*]] = kernel.weight "packed_b" 512 bytes
// CHECK-NOT:    kernel.alloc
// CHECK:        kernel.launch @gemm_{{.*}}(%[[X]], %[[W1]], %[[Y]], {{.*}}) items(%{{.*}}) grain(%{{.*}}) for "conv#1"
// CHECK-NEXT:   %[[W2:.*]] = kernel.weight "packed_b_1" 512 bytes
// CHECK-NEXT:   %[[SLICE:.*]] = kernel.subview %[[Y]][16]
// CHECK-NEXT:   kernel.launch @gemm_{{.*}}(%[[X]], %[[W2]], %[[SLICE]], {{.*}}) items(%{{.*}}) grain(%{{.*}}) for "conv#2"
// CHECK-NEXT: }
