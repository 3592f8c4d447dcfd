// RUN: pyflame-opt %s -p fold-batch-norm | filecheck %s
// RUN: pyflame-opt %s -O2 | filecheck %s --check-prefix=O2

// A BN after a constant conv whose result feeds only the BN folds into new conv weights.
// CHECK-LABEL: func.func @main
// CHECK:      %[[W:.*]] = graph.constant @w_bn : tensor<4x2x1x1xf32>
// CHECK-NEXT: %[[B:.*]] = graph.constant @b_bn : tensor<4xf32>
// CHECK-NEXT: %[[C:.*]] = graph.conv %x, %[[W]], %[[B]] strides [1, 1] dilations [1, 1] pads [0, 0, 0, 0] : (tensor<?x2x5x5xf32>, tensor<4x2x1x1xf32>, tensor<4xf32>) -> tensor<?x4x5x5xf32>
// The second conv's result is also a graph output: its BN cannot fold and becomes a mul_add.
// CHECK:      %[[C2:.*]] = graph.conv %x, %w {{.*}} -> tensor<?x4x5x5xf32>
// CHECK:      %[[S:.*]] = graph.constant @scale_bn_mul : tensor<4x1x1xf32>
// CHECK-NEXT: %[[T:.*]] = graph.constant @scale_bn_add : tensor<4x1x1xf32>
// CHECK-NEXT: %[[M:.*]] = graph.mul_add %[[C2]], %[[S]], %[[T]]
// A BN of a graph input (no conv) becomes a mul_add with [C, 1, 1] constants.
// CHECK:      %[[S2:.*]] = graph.constant @scale2_bn_mul : tensor<2x1x1xf32>
// CHECK:      graph.mul_add %x, %[[S2]], %{{.*}} : (tensor<?x2x5x5xf32>, tensor<2x1x1xf32>, tensor<2x1x1xf32>) -> tensor<?x2x5x5xf32>
// Non-constant parameters: the BN stays.
// CHECK:      graph.batch_norm %x, %s, %bias2, %mean2, %var2
// CHECK-NOT:  graph.batch_norm
// CHECK:      func.return

// At -O2 the Relu after the folded conv and after the mul_add become their activations (the conv
// then runs NHWC: optimize-layout gives it a transposed input).
// O2:     graph.conv %{{.*}}, %{{.*}}, %{{.*}} {{.*}}activation <relu>
// O2:     graph.mul_add %{{.*}} {activation = #graph.activation<relu>}
// O2-NOT: graph.relu
func.func @main(%x: tensor<?x2x5x5xf32> {graph.name = "x", graph.dims = ["n", "2", "5", "5"]}, %s: tensor<2xf32> {graph.name = "s", graph.dims = ["2"]}) -> (tensor<?x4x5x5xf32>, tensor<?x4x5x5xf32>, tensor<?x4x5x5xf32>, tensor<?x2x5x5xf32>, tensor<?x2x5x5xf32>) {
  %w = graph.constant {value = dense<0.5> : tensor<4x2x1x1xf32>} : tensor<4x2x1x1xf32>
  %b = graph.constant {value = dense<1.0> : tensor<4xf32>} : tensor<4xf32>
  %scale = graph.constant {value = dense<4.0> : tensor<4xf32>} : tensor<4xf32>
  %bias = graph.constant {value = dense<0.5> : tensor<4xf32>} : tensor<4xf32>
  %mean = graph.constant {value = dense<1.0> : tensor<4xf32>} : tensor<4xf32>
  %var = graph.constant {value = dense<3.0> : tensor<4xf32>} : tensor<4xf32>
  %c = graph.conv %x, %w, %b strides [1, 1] dilations [1, 1] pads [0, 0, 0, 0] : (tensor<?x2x5x5xf32>, tensor<4x2x1x1xf32>, tensor<4xf32>) -> tensor<?x4x5x5xf32>
  %y = graph.batch_norm %c, %scale, %bias, %mean, %var {epsilon = 1.0 : f32} : (tensor<?x4x5x5xf32>, tensor<4xf32>, tensor<4xf32>, tensor<4xf32>, tensor<4xf32>) -> tensor<?x4x5x5xf32>
  %yr = graph.relu %y : (tensor<?x4x5x5xf32>) -> tensor<?x4x5x5xf32>
  %c2 = graph.conv %x, %w strides [1, 1] dilations [1, 1] pads [0, 0, 0, 0] : (tensor<?x2x5x5xf32>, tensor<4x2x1x1xf32>) -> tensor<?x4x5x5xf32>
  %y2 = graph.batch_norm %c2, %scale, %bias, %mean, %var : (tensor<?x4x5x5xf32>, tensor<4xf32>, tensor<4xf32>, tensor<4xf32>, tensor<4xf32>) -> tensor<?x4x5x5xf32>
  %y2r = graph.relu %y2 : (tensor<?x4x5x5xf32>) -> tensor<?x4x5x5xf32>
  %scale2 = graph.constant {value = dense<2.0> : tensor<2xf32>} : tensor<2xf32>
  %bias2 = graph.constant {value = dense<0.0> : tensor<2xf32>} : tensor<2xf32>
  %mean2 = graph.constant {value = dense<0.0> : tensor<2xf32>} : tensor<2xf32>
  %var2 = graph.constant {value = dense<1.0> : tensor<2xf32>} : tensor<2xf32>
  %y3 = graph.batch_norm %x, %scale2, %bias2, %mean2, %var2 : (tensor<?x2x5x5xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>) -> tensor<?x2x5x5xf32>
  %y4 = graph.batch_norm %x, %s, %bias2, %mean2, %var2 : (tensor<?x2x5x5xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>) -> tensor<?x2x5x5xf32>
  func.return %yr, %y2r, %c2, %y3, %y4 : tensor<?x4x5x5xf32>, tensor<?x4x5x5xf32>, tensor<?x4x5x5xf32>, tensor<?x2x5x5xf32>, tensor<?x2x5x5xf32>
}
