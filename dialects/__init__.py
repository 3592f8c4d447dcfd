"""PyFlameRT's xDSL dialects. `graph` is the tensor level every importer targets (with `quant`, its
quantized ops); `kernel` is the level below it (buffers, sizes and kernel launches).

The Dialect list is built on first use: `pyflame_rt.dialects.symbolic` (the symbolic
shapes that running a compiled artifact needs) must import without xDSL.
"""


def __getattr__(name: str):
    if name not in ("Graph", "Kernel", "Quant", "ALL_DIALECTS"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from xdsl.ir import Dialect

    from pyflame_rt.dialects import (
        graph, graph_attrs, graph_bitwise, graph_control, graph_detection, graph_fused, graph_index, graph_linalg, graph_math, graph_nn, graph_pool_indices,
        graph_recurrent, graph_reduce, graph_tensor, weights)
    from pyflame_rt.dialects.kernel import Kernel
    from pyflame_rt.dialects.quant import Quant

    Graph = Dialect("graph", [*graph.CORE_OPS, *graph_math.MATH_OPS, *graph_reduce.REDUCE_OPS,
                            *graph_tensor.TENSOR_OPS, *graph_fused.FUSED_OPS, *graph_nn.NN_OPS,
                            *graph_bitwise.BITWISE_OPS, *graph_index.INDEX_OPS,
                            *graph_pool_indices.POOL_INDEX_OPS, *graph_linalg.LINALG_OPS, *weights.WEIGHT_OPS,
                            *graph_recurrent.RECURRENT_OPS, *graph_detection.DETECTION_OPS,
                            *graph_control.CONTROL_OPS],
                    [*graph_attrs.GRAPH_ATTRS, *graph_recurrent.RECURRENT_ATTRS, *weights.WEIGHT_ATTRS])
    globals().update(Graph=Graph, Kernel=Kernel, Quant=Quant, ALL_DIALECTS=[Graph, Quant, Kernel])
    return globals()[name]
