// RUN: not pyflame-opt %s 2>&1 | filecheck %s

// Zero points lie in the storage's range; scales are positive.
// CHECK: zero points [200] outside the i8 range
func.func @main(%x: tensor<4xf32>) -> tensor<4xi8> {
  %q = quant.quantize %x {type = !quant.uniform<i8, 0.5:200>} : (tensor<4xf32>) -> tensor<4xi8>
  func.return %q : tensor<4xi8>
}
