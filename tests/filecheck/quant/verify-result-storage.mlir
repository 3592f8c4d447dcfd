// RUN: not pyflame-opt %s 2>&1 | filecheck %s

// A quantize produces its type's storage; int4 and float8 types parse but have no tensors yet.
// CHECK: i4 quantized tensors have no element type yet
func.func @main(%x: tensor<4xf32>) -> tensor<4xi8> {
  %q = quant.quantize %x {type = !quant.uniform<i4, 0.5:0>} : (tensor<4xf32>) -> tensor<4xi8>
  func.return %q : tensor<4xi8>
}
