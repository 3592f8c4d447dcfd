"""The lowering registry: graph op type (and layout) -> lowering, and the float32-only op types.

A leaf module: every lowering family registers here when it is imported (the package imports them
all), so the families and the package do not import each other.
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
