// RUN: pyflame-opt %s -p fuse-activation | filecheck %s

// Clip(0, 6) (ReLU6) and Clip(0, +inf) move into the producer's epilogue as relu6 / relu, other
// bounds as clip(min, max); a producer with a second user keeps the Clip.
// CHECK-LABEL: func.func @main
// CHECK:      %[[C:.*]] = graph.conv %x, %w {{.*}}activation <relu6> :
// CHECK-NEXT: %[[A:.*]] = graph.add %[[C]], %x {activation = #graph.activation<relu>}
// CHECK-NEXT: %[[B:.*]] = graph.add %[[A]], %x {activation = #graph.activation<clip, -1.0, 6.0>}
// CHECK-NEXT: %[[D:.*]] = graph.add %[[B]], %x :
// CHECK-NEXT: %[[E:.*]] = graph.clip %[[D]] {min = 0.000000e+00 : f32, max = 6.000000e+00 : f32}
// CHECK-NEXT: func.return %[[E]], %[[D]]
func.func @main(%x: tensor<1x4x5x5xf32> {graph.name = "x"}) -> (tensor<1x4x5x5xf32>, tensor<1x4x5x5xf32>) {
  %w = graph.constant {value = dense<0.5> : tensor<4x4x1x1xf32>} : tensor<4x4x1x1xf32>
  %c = graph.conv %x, %w strides [1, 1] dilations [1, 1] pads [0, 0, 0, 0] : (tensor<1x4x5x5xf32>, tensor<4x4x1x1xf32>) -> tensor<1x4x5x5xf32>
  %c6 = graph.clip %c {min = 0.0 : f32, max = 6.0 : f32} : (tensor<1x4x5x5xf32>) -> tensor<1x4x5x5xf32>
  %a = graph.add %c6, %x : (tensor<1x4x5x5xf32>, tensor<1x4x5x5xf32>) -> tensor<1x4x5x5xf32>
  %ar = graph.clip %a {min = 0.0 : f32} : (tensor<1x4x5x5xf32>) -> tensor<1x4x5x5xf32>
  %b = graph.add %ar, %x : (tensor<1x4x5x5xf32>, tensor<1x4x5x5xf32>) -> tensor<1x4x5x5xf32>
  %k = graph.clip %b {min = -1.0 : f32, max = 6.0 : f32} : (tensor<1x4x5x5xf32>) -> tensor<1x4x5x5xf32>
  %d = graph.add %k, %x : (tensor<1x4x5x5xf32>, tensor<1x4x5x5xf32>) -> tensor<1x4x5x5xf32>
  %e = graph.clip %d {min = 0.0 : f32, max = 6.0 : f32} : (tensor<1x4x5x5xf32>) -> tensor<1x4x5x5xf32>
  func.return %e, %d : tensor<1x4x5x5xf32>, tensor<1x4x5x5xf32>
}
