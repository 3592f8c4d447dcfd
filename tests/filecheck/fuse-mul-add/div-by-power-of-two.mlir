// RUN: pyflame-opt %s -p fuse-mul-add | filecheck %s

// x / 8 + mask: a Div by powers of two is an exact Mul by the reciprocal, so it fuses (attention's
// scaled scores); a Div by 3 (inexact reciprocal), or by a run-time value, stays.
// CHECK-LABEL: func.func @main
// CHECK:      %[[R:.*]] = graph.constant {value = dense<1.250000e-01> : tensor<f32>}
// CHECK-NEXT: %[[F:.*]] = graph.mul_add %x, %[[R]], %mask : (tensor<?x4xf32>, tensor<f32>, tensor<4xf32>) -> tensor<?x4xf32>
// CHECK-NEXT: %[[R2:.*]] = graph.constant {value = dense<[5.000000e-01, -2.500000e-01, 1.000000e+00, 6.250000e-02]> : tensor<4xf32>}
// CHECK-NEXT: %[[F2:.*]] = graph.mul_add %x, %[[R2]], %mask
// CHECK-NEXT: %[[D3:.*]] = graph.div %x, %three
// CHECK-NEXT: graph.add %[[D3]], %mask
// CHECK-NEXT: %[[DX:.*]] = graph.div %x, %x
// CHECK-NEXT: graph.add %[[DX]], %mask
// CHECK-NOT:  graph.div
func.func @main(%x: tensor<?x4xf32> {graph.name = "x", graph.dims = ["n", "4"]}) -> (tensor<?x4xf32>, tensor<?x4xf32>, tensor<?x4xf32>, tensor<?x4xf32>) {
  %eight = graph.constant {value = dense<8.0> : tensor<f32>} : tensor<f32>
  %pows = graph.constant {value = dense<[2.0, -4.0, 1.0, 16.0]> : tensor<4xf32>} : tensor<4xf32>
  %three = graph.constant {value = dense<3.0> : tensor<f32>} : tensor<f32>
  %mask = graph.constant {value = dense<-1.0> : tensor<4xf32>} : tensor<4xf32>
  %d = graph.div %x, %eight : (tensor<?x4xf32>, tensor<f32>) -> tensor<?x4xf32>
  %y = graph.add %d, %mask : (tensor<?x4xf32>, tensor<4xf32>) -> tensor<?x4xf32>
  %d2 = graph.div %x, %pows : (tensor<?x4xf32>, tensor<4xf32>) -> tensor<?x4xf32>
  %y2 = graph.add %mask, %d2 : (tensor<4xf32>, tensor<?x4xf32>) -> tensor<?x4xf32>
  %d3 = graph.div %x, %three : (tensor<?x4xf32>, tensor<f32>) -> tensor<?x4xf32>
  %y3 = graph.add %d3, %mask : (tensor<?x4xf32>, tensor<4xf32>) -> tensor<?x4xf32>
  %dx = graph.div %x, %x : (tensor<?x4xf32>, tensor<?x4xf32>) -> tensor<?x4xf32>
  %y4 = graph.add %dx, %mask : (tensor<?x4xf32>, tensor<4xf32>) -> tensor<?x4xf32>
  func.return %y, %y2, %y3, %y4 : tensor<?x4xf32>, tensor<?x4xf32>, tensor<?x4xf32>, tensor<?x4xf32>
}
