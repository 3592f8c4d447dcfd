// RUN: not pyflame-opt %s 2>&1 | filecheck %s
// Float-only math on an integer tensor is rejected by the verifier (dtype inference).

// CHECK: graph.exp: operand must be a float tensor, got int64
func.func @main(%ids: tensor<?x4xi64>) -> tensor<?x4xi64> {
  %y = graph.exp %ids : (tensor<?x4xi64>) -> tensor<?x4xi64>
  func.return %y : tensor<?x4xi64>
}
