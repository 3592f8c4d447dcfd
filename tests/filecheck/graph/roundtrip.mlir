// RUN: pyflame-opt %s | filecheck %s
// RUN: pyflame-opt %s | pyflame-opt | filecheck %s

// CHECK-LABEL: func.func @main
// CHECK-SAME: graph.dims = ["batch", "1", "28", "28"]
func.func @main(%x: tensor<?x1x28x28xf32> {graph.name = "x", graph.dims = ["batch", "1", "28", "28"]}) -> (tensor<?x10xf32> {graph.name = "y", graph.dims = ["batch", "10"]}) {
  // CHECK: %{{.*}} = graph.constant @fc1.weight : tensor<784x64xf32>
  %w1 = graph.constant @fc1.weight : tensor<784x64xf32>
  // CHECK: graph.constant {value = dense<1.000000e+00> : tensor<64xf32>} : tensor<64xf32>
  %b1 = graph.constant {value = dense<1.0> : tensor<64xf32>} : tensor<64xf32>
  %w2 = graph.constant @fc2.weight : tensor<10x64xf32>
  // CHECK: graph.flatten %{{.*}} : (tensor<?x1x28x28xf32>) -> tensor<?x784xf32>
  %f = graph.flatten %x : (tensor<?x1x28x28xf32>) -> tensor<?x784xf32>
  // CHECK: graph.matmul
  %h = graph.matmul %f, %w1 : (tensor<?x784xf32>, tensor<784x64xf32>) -> tensor<?x64xf32>
  // CHECK: graph.add
  %a = graph.add %h, %b1 : (tensor<?x64xf32>, tensor<64xf32>) -> tensor<?x64xf32>
  // CHECK: graph.relu
  %r = graph.relu %a : (tensor<?x64xf32>) -> tensor<?x64xf32>
  // CHECK: graph.reshape %{{.*}} {shape = array<i64: 0, -1>}
  %rs = graph.reshape %r {shape = array<i64: 0, -1>} : (tensor<?x64xf32>) -> tensor<?x64xf32>
  // CHECK: graph.gemm %{{.*}}, %{{.*}} {trans_b = true, alpha = 5.000000e-01 : f32}
  %y = graph.gemm %rs, %w2 {trans_b = true, alpha = 0.5 : f32} : (tensor<?x64xf32>, tensor<10x64xf32>) -> tensor<?x10xf32>
  func.return %y : tensor<?x10xf32>
}
