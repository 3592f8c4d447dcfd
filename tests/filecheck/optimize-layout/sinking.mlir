// RUN: pyflame-opt %s -p optimize-layout | filecheck %s

// Transposes sink through layout-agnostic ops to meet the next converted op: Clip (unary),
// a residual Add of two transposed values, a Mul by a per-channel constant (permuted at compile
// time to [1, 1, 1, C]) and a Concat along channels (axis 1 -> 3). Only the graph's ends keep one.
// CHECK-LABEL: func.func @main
// CHECK:      %[[IN:.*]] = graph.transpose %x {perm = array<i64: 0, 2, 3, 1>}
// CHECK-NEXT: %[[C1:.*]] = graph.conv %[[IN]], %w1, %b strides [1, 1] dilations [1, 1] pads [0, 0, 0, 0] layout NHWC : {{.*}} -> tensor<?x6x6x4xf32>
// CHECK-NEXT: %[[CL:.*]] = graph.clip %[[C1]] {min = 0.000000e+00 : f32, max = 6.000000e+00 : f32} : (tensor<?x6x6x4xf32>) -> tensor<?x6x6x4xf32>
// CHECK-NEXT: %[[DW:.*]] = graph.conv %[[CL]], %wd, %b strides [1, 1] dilations [1, 1] pads [1, 1, 1, 1] group 4 layout NHWC :
// CHECK-NEXT: %[[ADD:.*]] = graph.add %[[DW]], %[[IN]] : (tensor<?x6x6x4xf32>, tensor<?x6x6x4xf32>) -> tensor<?x6x6x4xf32>
// CHECK-NEXT: %[[S:.*]] = graph.constant {value = dense<{{\[\[\[\[}}1.000000e+00, 2.000000e+00, 3.000000e+00, 4.000000e+00]]]]> : tensor<1x1x1x4xf32>}
// CHECK-NEXT: %[[MUL:.*]] = graph.mul %[[ADD]], %[[S]] : (tensor<?x6x6x4xf32>, tensor<1x1x1x4xf32>) -> tensor<?x6x6x4xf32>
// CHECK-NEXT: %[[CAT:.*]] = graph.concat %[[MUL]], %[[CL]] {axis = 3 : i64} : (tensor<?x6x6x4xf32>, tensor<?x6x6x4xf32>) -> tensor<?x6x6x8xf32>
// CHECK-NEXT: %[[C2:.*]] = graph.conv %[[CAT]], %w2, %b strides [1, 1] dilations [1, 1] pads [0, 0, 0, 0] layout NHWC : {{.*}} -> tensor<?x6x6x4xf32>
// CHECK-NEXT: %[[OUT:.*]] = graph.transpose %[[C2]] {perm = array<i64: 0, 3, 1, 2>}
// CHECK-NEXT: func.return %[[OUT]]
func.func @main(%x: tensor<?x4x6x6xf32> {graph.name = "x", graph.dims = ["n", "4", "6", "6"]}) -> (tensor<?x4x6x6xf32> {graph.name = "y", graph.dims = ["n", "4", "6", "6"]}) {
  %w1 = graph.constant {value = dense<0.5> : tensor<4x4x1x1xf32>} : tensor<4x4x1x1xf32>
  %wd = graph.constant {value = dense<0.25> : tensor<4x1x3x3xf32>} : tensor<4x1x3x3xf32>
  %w2 = graph.constant {value = dense<0.125> : tensor<4x8x1x1xf32>} : tensor<4x8x1x1xf32>
  %b = graph.constant {value = dense<1.0> : tensor<4xf32>} : tensor<4xf32>
  %s = graph.constant {value = dense<[[[1.0]], [[2.0]], [[3.0]], [[4.0]]]> : tensor<4x1x1xf32>} : tensor<4x1x1xf32>
  %c1 = graph.conv %x, %w1, %b strides [1, 1] dilations [1, 1] pads [0, 0, 0, 0] : (tensor<?x4x6x6xf32>, tensor<4x4x1x1xf32>, tensor<4xf32>) -> tensor<?x4x6x6xf32>
  %cl = graph.clip %c1 {min = 0.0 : f32, max = 6.0 : f32} : (tensor<?x4x6x6xf32>) -> tensor<?x4x6x6xf32>
  %dw = graph.conv %cl, %wd, %b strides [1, 1] dilations [1, 1] pads [1, 1, 1, 1] group 4 : (tensor<?x4x6x6xf32>, tensor<4x1x3x3xf32>, tensor<4xf32>) -> tensor<?x4x6x6xf32>
  %add = graph.add %dw, %x : (tensor<?x4x6x6xf32>, tensor<?x4x6x6xf32>) -> tensor<?x4x6x6xf32>
  %mul = graph.mul %add, %s : (tensor<?x4x6x6xf32>, tensor<4x1x1xf32>) -> tensor<?x4x6x6xf32>
  %cat = graph.concat %mul, %cl {axis = 1 : i64} : (tensor<?x4x6x6xf32>, tensor<?x4x6x6xf32>) -> tensor<?x8x6x6xf32>
  %c2 = graph.conv %cat, %w2, %b strides [1, 1] dilations [1, 1] pads [0, 0, 0, 0] : (tensor<?x8x6x6xf32>, tensor<4x8x1x1xf32>, tensor<4xf32>) -> tensor<?x4x6x6xf32>
  func.return %c2 : tensor<?x4x6x6xf32>
}
