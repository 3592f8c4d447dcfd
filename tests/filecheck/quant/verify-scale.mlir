// RUN: not pyflame-opt %s 2>&1 | filecheck %s

// CHECK: scales must be finite and positive, got [0.0]
func.func @main(%x: tensor<4xf32>) -> tensor<4xi8> {
  %q = quant.quantize %x {type = !quant.uniform<i8, 0.0:0>} : (tensor<4xf32>) -> tensor<4xi8>
  func.return %q : tensor<4xi8>
}
