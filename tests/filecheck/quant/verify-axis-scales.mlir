// RUN: not pyflame-opt %s 2>&1 | filecheck %s

// A per-axis type needs one scale per slice along its axis.
// CHECK: 2 scales along axis 1 of size 3
func.func @main(%w: tensor<4x3xi8>) -> tensor<4x3xf32> {
  %y = quant.dequantize %w {type = !quant.uniform<i8:1, {0.5:0, 0.25:0}>} : (tensor<4x3xi8>) -> tensor<4x3xf32>
  func.return %y : tensor<4x3xf32>
}
