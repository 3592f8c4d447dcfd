"""PyFlameRT's xDSL dialects. `graph` is the tensor level every importer targets."""
from xdsl.ir import Dialect

from pyflame_rt.dialects import graph, graph_fused, graph_math, graph_nn, graph_reduce, graph_tensor

Graph = Dialect("graph", [*graph.CORE_OPS, *graph_math.MATH_OPS, *graph_reduce.REDUCE_OPS,
                        *graph_tensor.TENSOR_OPS, *graph_fused.FUSED_OPS, *graph_nn.NN_OPS], [])

ALL_DIALECTS = [Graph]
