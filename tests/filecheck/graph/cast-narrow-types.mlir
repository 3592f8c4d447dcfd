// RUN: pyflame-opt %s | filecheck %s
// RUN: pyflame-opt %s | pyflame-opt | filecheck %s
// graph.cast to float8 with saturate / round_mode, and uint64, int4 tensors round trip; the
// defaults (saturate, round_mode up) are not printed.

// CHECK-LABEL: func.func @main
func.func @main(%x: tensor<4xf32> {graph.name = "x", graph.dims = ["4"]}, %u: tensor<4xui64>) -> (tensor<4xf8E4M3FN>, tensor<4xf8E8M0FNU>, tensor<4xi4>, tensor<4xf32>) {
  // CHECK: graph.cast %{{.*}} to float8_e4m3fn {saturate = false} : (tensor<4xf32>) -> tensor<4xf8E4M3FN>
  %a = graph.cast %x to float8_e4m3fn {saturate = false} : (tensor<4xf32>) -> tensor<4xf8E4M3FN>
  // CHECK: graph.cast %{{.*}} to float8_e8m0fnu {round_mode = #graph<round_mode nearest>} : (tensor<4xf32>) -> tensor<4xf8E8M0FNU>
  %b = graph.cast %x to float8_e8m0fnu {saturate = true, round_mode = #graph<round_mode nearest>} : (tensor<4xf32>) -> tensor<4xf8E8M0FNU>
  // CHECK: graph.cast %{{.*}} to int4 : (tensor<4xf32>) -> tensor<4xi4>
  %c = graph.cast %x to int4 : (tensor<4xf32>) -> tensor<4xi4>
  // CHECK: graph.cast %{{.*}} to float32 : (tensor<4xui64>) -> tensor<4xf32>
  %d = graph.cast %u to float32 : (tensor<4xui64>) -> tensor<4xf32>
  func.return %a, %b, %c, %d : tensor<4xf8E4M3FN>, tensor<4xf8E8M0FNU>, tensor<4xi4>, tensor<4xf32>
}
