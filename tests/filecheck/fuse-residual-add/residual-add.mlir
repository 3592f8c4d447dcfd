// RUN: pyflame-opt %s -p fuse-residual-add | filecheck %s
// RUN: pyflame-opt %s -O2 | filecheck %s --check-prefix=O2

// Add(conv(x), r) -> conv with `residual` r, in either operand order; the Add's activation moves too.
// CHECK-LABEL: func.func @main
// CHECK:      %[[A:.*]] = graph.conv %x, %w, %b residual %r : tensor<?x4x5x5xf32> strides [1, 1] dilations [1, 1] pads [0, 0, 0, 0] : (tensor<?x4x5x5xf32>, tensor<4x4x1x1xf32>, tensor<4xf32>) -> tensor<?x4x5x5xf32>
// CHECK-NEXT: %[[AR:.*]] = graph.relu %[[A]]
// CHECK-NEXT: %[[B:.*]] = graph.conv %x, %w residual %[[AR]] : tensor<?x4x5x5xf32> strides [1, 1] dilations [1, 1] pads [0, 0, 0, 0] activation <relu> :
// A conv that already has an activation (applied before the add) keeps its Add.
// CHECK-NEXT: %[[C:.*]] = graph.conv %x, %w strides [1, 1] dilations [1, 1] pads [0, 0, 0, 0] activation <relu> :
// CHECK-NEXT: %[[D:.*]] = graph.add %[[C]], %r
// A conv result with a second user keeps its Add.
// CHECK-NEXT: %[[E:.*]] = graph.conv %x, %w strides
// CHECK-NEXT: %[[F:.*]] = graph.add %[[E]], %r
// A residual of another shape (broadcast) keeps its Add.
// CHECK-NEXT: %[[G:.*]] = graph.conv %x, %w strides
// CHECK-NEXT: graph.add %[[G]], %b4
// CHECK:      func.return %[[B]], %[[D]], %[[F]], %[[E]]

// At -O2 the Relu after the Add becomes the activation of the conv that took the residual (CSE
// merges the identical convs %c1, %c3, %c4, whose result then has several users: no fusion there).
// (optimize-layout then runs it NHWC, the residual transposed like the input.)
// O2:     graph.conv %{{.*}}, %w, %b residual %{{.*}} {{.*}}activation <relu>
// O2-NOT: graph.relu
func.func @main(%x: tensor<?x4x5x5xf32> {graph.name = "x", graph.dims = ["n", "4", "5", "5"]}, %r: tensor<?x4x5x5xf32> {graph.name = "r", graph.dims = ["n", "4", "5", "5"]}) -> (tensor<?x4x5x5xf32>, tensor<?x4x5x5xf32>, tensor<?x4x5x5xf32>, tensor<?x4x5x5xf32>, tensor<?x4x5x5xf32>) {
  %w = graph.constant {value = dense<0.5> : tensor<4x4x1x1xf32>} : tensor<4x4x1x1xf32>
  %b = graph.constant {value = dense<1.0> : tensor<4xf32>} : tensor<4xf32>
  %b4 = graph.constant {value = dense<1.0> : tensor<4x1x1xf32>} : tensor<4x1x1xf32>
  %c = graph.conv %x, %w, %b strides [1, 1] dilations [1, 1] pads [0, 0, 0, 0] : (tensor<?x4x5x5xf32>, tensor<4x4x1x1xf32>, tensor<4xf32>) -> tensor<?x4x5x5xf32>
  %a = graph.add %c, %r : (tensor<?x4x5x5xf32>, tensor<?x4x5x5xf32>) -> tensor<?x4x5x5xf32>
  %ar = graph.relu %a : (tensor<?x4x5x5xf32>) -> tensor<?x4x5x5xf32>
  %c1 = graph.conv %x, %w strides [1, 1] dilations [1, 1] pads [0, 0, 0, 0] : (tensor<?x4x5x5xf32>, tensor<4x4x1x1xf32>) -> tensor<?x4x5x5xf32>
  %a1 = graph.add %ar, %c1 {activation = #graph.activation<relu>} : (tensor<?x4x5x5xf32>, tensor<?x4x5x5xf32>) -> tensor<?x4x5x5xf32>
  %c2 = graph.conv %x, %w strides [1, 1] dilations [1, 1] pads [0, 0, 0, 0] activation <relu> : (tensor<?x4x5x5xf32>, tensor<4x4x1x1xf32>) -> tensor<?x4x5x5xf32>
  %a2 = graph.add %c2, %r : (tensor<?x4x5x5xf32>, tensor<?x4x5x5xf32>) -> tensor<?x4x5x5xf32>
  %c3 = graph.conv %x, %w strides [1, 1] dilations [1, 1] pads [0, 0, 0, 0] : (tensor<?x4x5x5xf32>, tensor<4x4x1x1xf32>) -> tensor<?x4x5x5xf32>
  %a3 = graph.add %c3, %r : (tensor<?x4x5x5xf32>, tensor<?x4x5x5xf32>) -> tensor<?x4x5x5xf32>
  %c4 = graph.conv %x, %w strides [1, 1] dilations [1, 1] pads [0, 0, 0, 0] : (tensor<?x4x5x5xf32>, tensor<4x4x1x1xf32>) -> tensor<?x4x5x5xf32>
  %a4 = graph.add %c4, %b4 : (tensor<?x4x5x5xf32>, tensor<4x1x1xf32>) -> tensor<?x4x5x5xf32>
  func.return %a1, %a2, %a3, %c3, %a4 : tensor<?x4x5x5xf32>, tensor<?x4x5x5xf32>, tensor<?x4x5x5xf32>, tensor<?x4x5x5xf32>, tensor<?x4x5x5xf32>
}
