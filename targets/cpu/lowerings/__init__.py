"""Graph op -> kernel call lowerings, one module per op family.

A lowering is `fn(L: GraphLowering, op)` registered with `@lowering(OpType, ...)`;
it asks `L` for operand storage and emits kernel calls (see lower_graph.py).
"""
from __future__ import annotations

from typing import Callable

LOWERINGS: dict[type, Callable] = {}


def lowering(*op_types: type):
    def register(fn: Callable) -> Callable:
        for t in op_types:
            LOWERINGS[t] = fn
        return fn
    return register


from pyflame_rt.targets.cpu.lowerings import elementwise, linalg, math, reduce, tensor, views  # noqa: E402,F401
from pyflame_rt.targets.cpu.lowerings import conv, conv_transpose, movement, normalization, pooling, resize  # noqa: E402,F401
