// RUN: pyflame-opt %s | filecheck %s
// RUN: pyflame-opt %s | pyflame-opt | filecheck %s
// The bitwise ops (dialects/graph_bitwise.py) round trip with broadcasting shapes.

// CHECK-LABEL: func.func @main
func.func @main(%x: tensor<?x8xui8> {graph.name = "x", graph.dims = ["batch", "8"]}, %y: tensor<8xui8>) -> (tensor<?x8xui8>, tensor<?x8xui8>) {
  // CHECK: graph.bitwise_and %{{.*}}, %{{.*}} : (tensor<?x8xui8>, tensor<8xui8>) -> tensor<?x8xui8>
  %a = graph.bitwise_and %x, %y : (tensor<?x8xui8>, tensor<8xui8>) -> tensor<?x8xui8>
  // CHECK: graph.bitwise_xor
  %b = graph.bitwise_xor %a, %y : (tensor<?x8xui8>, tensor<8xui8>) -> tensor<?x8xui8>
  // CHECK: graph.bitwise_not %{{.*}} : (tensor<?x8xui8>) -> tensor<?x8xui8>
  %n = graph.bitwise_not %b : (tensor<?x8xui8>) -> tensor<?x8xui8>
  // CHECK: graph.bit_shift %{{.*}}, %{{.*}} {direction = #graph<shift_direction right>} : (tensor<?x8xui8>, tensor<8xui8>) -> tensor<?x8xui8>
  %s = graph.bit_shift %n, %y {direction = #graph<shift_direction right>} : (tensor<?x8xui8>, tensor<8xui8>) -> tensor<?x8xui8>
  func.return %a, %s : tensor<?x8xui8>, tensor<?x8xui8>
}
