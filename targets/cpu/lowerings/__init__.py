"""Graph op -> kernel call lowerings, one module per op family.

A lowering is `fn(L: GraphLowering, op)` registered with `@lowering(OpType, ...)`;
it asks `L` for operand storage and emits kernel calls (see lower_graph.py). Ops
with a `layout` property have one lowering per layout (`layout="NHWC"`). A lowering
whose kernels compute float32 only says so (`float32_only=True`): the
`legalize-half-precision` pass runs the float16 / bfloat16 instances of its ops in
float32 between graph Casts.
"""
from __future__ import annotations

from typing import Callable

LOWERINGS: dict[type | tuple[type, str], Callable] = {}
FLOAT32_ONLY: set[type] = set()  # op types whose float kernels are float32 only
DEFAULT_LAYOUT = "NCHW"


def lowering(*op_types: type, layout: str = DEFAULT_LAYOUT, float32_only: bool = False):
    def register(fn: Callable) -> Callable:
        for t in op_types:
            LOWERINGS[t if layout == DEFAULT_LAYOUT else (t, layout)] = fn
        if float32_only:
            FLOAT32_ONLY.update(op_types)
        return fn
    return register


def node_label(op) -> str:
    """How run-time errors name a graph op: its kind and the (ONNX) name of its first result."""
    kind = op.name.split(".", 1)[-1].replace("_", " ").title().replace(" ", "")
    hint = op.results[0].name_hint if op.results else None
    return f"{kind} node (output '{hint}')" if hint else f"{kind} node"


def lowering_for(op) -> Callable | None:
    """The lowering registered for the op's type (and its layout, if it has one)."""
    layout = op.properties.get("layout")
    if layout is None or layout.data == DEFAULT_LAYOUT:
        return LOWERINGS.get(type(op))
    return LOWERINGS.get((type(op), layout.data))


from pyflame_rt.targets.cpu.lowerings import elementwise, index, linalg, math, reduce, tensor, views  # noqa: E402,F401
from pyflame_rt.targets.cpu.lowerings import conv, conv_transpose, movement, normalization, pooling, resize  # noqa: E402,F401
from pyflame_rt.targets.cpu.lowerings import channels_last, determinant  # noqa: E402,F401
