// RUN: pyflame-opt %s -p 'lower-graph-to-kernel{cpu=x86-64-v3}' | filecheck %s

// The view pattern: Flatten moves no data, its result aliases the input's io slot, so the only
// launch is the Relu's, reading the input directly.
func.func @main(%x: tensor<?x4x4xf32> {graph.name = "x", graph.dims = ["batch", "4", "4"]}) -> (tensor<?x16xf32> {graph.name = "y", graph.dims = ["batch", "16"]}) {
  %f = graph.flatten %x {axis = 1 : i64} : (tensor<?x4x4xf32>) -> tensor<?x16xf32>
  %y = graph.relu %f : (tensor<?x16xf32>) -> tensor<?x16xf32>
  func.return %y : tensor<?x16xf32>
}

// CHECK:      kernel.schedule @model dims ["batch"] attributes {op_summary = {flatten = 1 : i64, relu = 1 : i64}} {
// CHECK-NEXT:   %[[X:.*]] = kernel.io input 0 "x" ["batch", "4", "4"] "float32"
// CHECK-NEXT:   %[[Y:.*]] = kernel.io output 1 "y" ["batch", "16"] "float32"
// CHECK-NEXT:   %{{.*}} = kernel.io status 2 "status" [] "int64"
// CHECK-NOT:    kernel.alloc
// CHECK-NOT:    "flatten#1"
// CHECK:        kernel.launch @ew_relu_r0_v_w8_float32_float32(%[[Y]], %[[X]], {{.*}}) items(%{{.*}}) grain(%{{.*}}) for "relu#1"
// CHECK-NEXT: }
