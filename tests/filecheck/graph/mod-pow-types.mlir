// RUN: pyflame-opt %s | filecheck %s
// RUN: pyflame-opt %s | pyflame-opt | filecheck %s
// graph.mod (fmod property), integer-base graph.pow, int16 and bfloat16 tensors round trip.

// CHECK-LABEL: func.func @main
func.func @main(%x: tensor<?x8xi16> {graph.name = "x", graph.dims = ["batch", "8"]}, %y: tensor<8xi16>, %e: tensor<8xi64>, %h: tensor<8xbf16>) -> (tensor<?x8xi16>, tensor<?x8xi16>, tensor<8xbf16>) {
  // CHECK: graph.mod %{{.*}}, %{{.*}} {fmod = true} : (tensor<?x8xi16>, tensor<8xi16>) -> tensor<?x8xi16>
  %m = graph.mod %x, %y {fmod = true} : (tensor<?x8xi16>, tensor<8xi16>) -> tensor<?x8xi16>
  // CHECK: graph.pow %{{.*}}, %{{.*}} : (tensor<?x8xi16>, tensor<8xi64>) -> tensor<?x8xi16>
  %p = graph.pow %m, %e : (tensor<?x8xi16>, tensor<8xi64>) -> tensor<?x8xi16>
  // CHECK: graph.cast %{{.*}} to bfloat16 : (tensor<8xi16>) -> tensor<8xbf16>
  %b = graph.cast %y to bfloat16 : (tensor<8xi16>) -> tensor<8xbf16>
  func.return %m, %p, %b : tensor<?x8xi16>, tensor<?x8xi16>, tensor<8xbf16>
}
