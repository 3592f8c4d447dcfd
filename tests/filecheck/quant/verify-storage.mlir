// RUN: not pyflame-opt %s 2>&1 | filecheck %s

// The storage tensor's element type is the quantized type's storage.
// CHECK: quant.matmul operand #1 is uint8, its quantized type stores int8
func.func @main(%a: tensor<2x4xui8>, %b: tensor<4x3xui8>) -> tensor<2x3xui8> {
  %y = quant.matmul %a, %b {input_types = [!quant.uniform<u8, 0.5:128>, !quant.uniform<i8, 0.25:0>], type = !quant.uniform<u8, 1.0:128>} : (tensor<2x4xui8>, tensor<4x3xui8>) -> tensor<2x3xui8>
  func.return %y : tensor<2x3xui8>
}
