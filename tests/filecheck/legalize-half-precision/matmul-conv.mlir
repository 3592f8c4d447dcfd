// RUN: pyflame-opt %s -p legalize-half-precision | filecheck %s

// float16 / bfloat16 ops with float32-only CPU kernels compute in float32 between graph Casts;
// the result is narrowed back once. Einsum (widens in its own copies), elementwise ops (half
// kernels of their own) and float32 ops are left alone.
// CHECK-LABEL: func.func @main
// CHECK:      %[[A:.*]] = graph.cast %a to float32 : (tensor<?x3x5xf16>) -> tensor<?x3x5xf32>
// CHECK-NEXT: %[[B:.*]] = graph.cast %b to float32 : (tensor<5x4xf16>) -> tensor<5x4xf32>
// CHECK-NEXT: %[[MM:.*]] = graph.matmul %[[A]], %[[B]] : (tensor<?x3x5xf32>, tensor<5x4xf32>) -> tensor<?x3x4xf32>
// CHECK-NEXT: %[[Y:.*]] = graph.cast %[[MM]] to float16 : (tensor<?x3x4xf32>) -> tensor<?x3x4xf16>
// CHECK-NEXT: %[[X:.*]] = graph.cast %x to float32
// CHECK-NEXT: %[[W:.*]] = graph.cast %w to float32
// CHECK-NEXT: %[[CB:.*]] = graph.cast %cb to float32 : (tensor<3xbf16>) -> tensor<3xf32>
// CHECK-NEXT: %[[CONV:.*]] = graph.conv %[[X]], %[[W]], %[[CB]] {{.*}} : (tensor<1x2x5x5xf32>, tensor<3x2x3x3xf32>, tensor<3xf32>) -> tensor<1x3x3x3xf32>
// CHECK-NEXT: %[[C:.*]] = graph.cast %[[CONV]] to bfloat16 : (tensor<1x3x3x3xf32>) -> tensor<1x3x3x3xbf16>
// CHECK-NEXT: %[[E:.*]] = graph.einsum %a, %b {{.*}} -> tensor<?x3x4xf16>
// CHECK-NEXT: %[[S:.*]] = graph.add %a, %a : (tensor<?x3x5xf16>, tensor<?x3x5xf16>) -> tensor<?x3x5xf16>
// CHECK-NEXT: %[[H:.*]] = graph.matmul %f, %g : (tensor<2x5xf32>, tensor<5x2xf32>) -> tensor<2x2xf32>
// CHECK-NEXT: func.return %[[Y]], %[[C]], %[[E]], %[[S]], %[[H]]
func.func @main(%a: tensor<?x3x5xf16> {graph.name = "a", graph.dims = ["n", "3", "5"]}, %b: tensor<5x4xf16> {graph.name = "b", graph.dims = ["5", "4"]}, %x: tensor<1x2x5x5xbf16> {graph.name = "x", graph.dims = ["1", "2", "5", "5"]}, %w: tensor<3x2x3x3xbf16> {graph.name = "w", graph.dims = ["3", "2", "3", "3"]}, %cb: tensor<3xbf16> {graph.name = "cb", graph.dims = ["3"]}, %f: tensor<2x5xf32> {graph.name = "f", graph.dims = ["2", "5"]}, %g: tensor<5x2xf32> {graph.name = "g", graph.dims = ["5", "2"]}) -> (tensor<?x3x4xf16> {graph.name = "y", graph.dims = ["n", "3", "4"]}, tensor<1x3x3x3xbf16> {graph.name = "c", graph.dims = ["1", "3", "3", "3"]}, tensor<?x3x4xf16> {graph.name = "e", graph.dims = ["n", "3", "4"]}, tensor<?x3x5xf16> {graph.name = "s", graph.dims = ["n", "3", "5"]}, tensor<2x2xf32> {graph.name = "h", graph.dims = ["2", "2"]}) {
  %y = graph.matmul %a, %b : (tensor<?x3x5xf16>, tensor<5x4xf16>) -> tensor<?x3x4xf16>
  %c = graph.conv %x, %w, %cb strides [1, 1] dilations [1, 1] pads [0, 0, 0, 0] : (tensor<1x2x5x5xbf16>, tensor<3x2x3x3xbf16>, tensor<3xbf16>) -> tensor<1x3x3x3xbf16>
  %e = graph.einsum %a, %b {equation = "nik,kj->nij"} : (tensor<?x3x5xf16>, tensor<5x4xf16>) -> tensor<?x3x4xf16>
  %s = graph.add %a, %a : (tensor<?x3x5xf16>, tensor<?x3x5xf16>) -> tensor<?x3x5xf16>
  %h = graph.matmul %f, %g : (tensor<2x5xf32>, tensor<5x2xf32>) -> tensor<2x2xf32>
  func.return %y, %c, %e, %s, %h : tensor<?x3x4xf16>, tensor<1x3x3x3xbf16>, tensor<?x3x4xf16>, tensor<?x3x5xf16>, tensor<2x2xf32>
}
