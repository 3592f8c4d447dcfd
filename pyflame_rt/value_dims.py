"""Dims bound from tensor values: a shape fed as a graph input, or computed from tensor data.

An Expand / ConstantOfShape shape, Tile repeats or TopK k that is a graph input sets sizes that no
input shape gives. Each of its elements becomes a run-time dim (`kernel.bind_dim` at the kernel
level), which the executable binds from the feed before any kernel runs, like the dims bound from
input shapes: the sizes of every buffer after it, and of the outputs, follow from it. In the
artifact header (`value_dims`, docs/pfm-format.md) each is [dim, input index, element index].

Such a tensor computed by the model (`computed_dims`) is read once the launches before its
binding have run; the run then goes on in steps (executable.py): the buffers and outputs whose
sizes the new dims give are allocated, and the launches after the binding resolved, only then.

A bound value is checked before native code sees it: a negative one is a ShapeMismatchError, and
the sizes it gives go through the same int64 and memory-limit checks as any other dims'.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from pyflame_rt.errors import ShapeMismatchError

VALUE_DTYPES = (np.dtype(np.int64), np.dtype(np.int32))


class ValueDim(NamedTuple):
    dim: str
    slot: int   # the input it is read from
    index: int  # its element, row-major

    def to_json(self) -> list:
        return [self.dim, self.slot, self.index]


class ComputedDim(NamedTuple):
    """A dim bound from an element of a tensor the launches before `step` compute."""

    dim: str
    kind: str    # where the tensor lies: "arena" (a buffer) or "io" (a slot)
    buffer: int  # the arena buffer or io slot
    offset: int  # the element's byte offset in it
    dtype: str   # "int64" or "int32"
    step: int    # the launch it is bound before

    def to_json(self) -> list:
        return list(self)


def computed_from_header(entries: list, buffers: int, io_slots: int, launches: int) -> list[ComputedDim]:
    """The header's computed dims, each checked to name a buffer, an integer type and a launch (ValueError
    if not), in launch order."""
    out = []
    for entry in entries:
        dim, kind, buffer, offset, dtype, step = entry
        limit = {"arena": buffers, "io": io_slots}.get(kind, 0)
        if not (isinstance(dim, str) and isinstance(buffer, int) and 0 <= buffer < limit and isinstance(offset, int)
                and offset >= 0 and dtype in ("int64", "int32") and isinstance(step, int) and 0 < step <= launches):
            raise ValueError(f"computed dim {entry!r} is not [name, arena|io, buffer, offset, int64|int32, launch]")
        out.append(ComputedDim(dim, kind, buffer, offset, dtype, step))
    return sorted(out, key=lambda c: c.step)


def check_value(value: int, dim: str, where: str) -> int:
    """A value bound to `dim` (ShapeMismatchError if it is negative)."""
    if value < 0:
        raise ShapeMismatchError(f"{where} is {value}: it is the size '{dim}' of a tensor the model computes "
                                 f"and must not be negative")
    return value


def expr_symbols(e) -> set[str]:
    """The dims a size expression (int, SymDim or (op, a, b)) names."""
    if isinstance(e, tuple):
        return expr_symbols(e[1]) | expr_symbols(e[2])
    return set(getattr(e, "syms", ()))


def from_header(entries: list, input_dtypes: list[np.dtype], input_sizes: list[int | None]) -> list[ValueDim]:
    """The header's value dims, each checked against the input it reads (ValueError if it does not
    name an int64 / int32 input and an element inside its static size)."""
    out = []
    for dim, slot, index in entries:
        if not (isinstance(dim, str) and isinstance(slot, int) and isinstance(index, int)):
            raise ValueError(f"value dim {[dim, slot, index]!r} is not [name, input, element]")
        if not 0 <= slot < len(input_dtypes) or input_dtypes[slot] not in VALUE_DTYPES:
            raise ValueError(f"value dim '{dim}' reads input {slot}, which is not an int64 or int32 input")
        size = input_sizes[slot]
        if size is None or not 0 <= index < size:
            raise ValueError(f"value dim '{dim}' reads element {index} of an input of static size {size}")
        out.append(ValueDim(dim, slot, index))
    return out


def bind_values(value_dims: list[ValueDim], arrays: list[np.ndarray], names: list[str],
                bindings: dict[str, int]) -> None:
    """Add each value dim's value to `bindings` (ShapeMismatchError for a negative value, or one
    that contradicts a dim bound already)."""
    for v in value_dims:
        value = check_value(int(arrays[v.slot].reshape(-1)[v.index]), v.dim,
                            f"input '{names[v.slot]}' element {v.index}")
        if bindings.setdefault(v.dim, value) != value:
            raise ShapeMismatchError(f"input '{names[v.slot]}' element {v.index} sets '{v.dim}' to {value}, but "
                                     f"it is {bindings[v.dim]}")


def values_key(value_dims: list[ValueDim], arrays: list[np.ndarray]) -> tuple:
    """The bound values, part of a run's signature beside the input shapes (None for an element
    a feed of the wrong shape lacks: binding its shape refuses it)."""
    return tuple(int(arrays[v.slot].reshape(-1)[v.index]) if v.index < arrays[v.slot].size else None
                 for v in value_dims)
