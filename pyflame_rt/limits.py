"""Limits on the sizes a model states, checked before anything is built from them.

A 100-byte model can state a tensor of 10^18 elements. The compiler builds a few arrays from
such sizes (lowering tables, import-time constants and shape values, folded constants):
`check_compile_array` refuses one larger than MAX_COMPILE_BYTES before it is allocated, so
compiling never takes more than a bounded amount of memory per array. Independently, a
tensor's static size must fit the int64 byte arithmetic of the memory plan and the kernels
(`check_tensor_bytes`).
"""
from __future__ import annotations

from math import prod

from pyflame_rt.errors import InvalidModelError

MAX_COMPILE_BYTES = 1 << 30  # one array the compiler builds from a model's sizes
MAX_TENSOR_BYTES = 1 << 62   # sums of a few sizes and offsets stay inside int64


def check_compile_array(nbytes: int, what: str) -> None:
    """Raise before building an array of `nbytes` sized by the model (`what`: the node)."""
    if nbytes > MAX_COMPILE_BYTES:
        raise InvalidModelError(
            f"{what} needs a {nbytes:,}-byte array at compile time, more than the compiler's limit of "
            f"{MAX_COMPILE_BYTES:,} bytes (pyflame_rt.limits.MAX_COMPILE_BYTES)")


def check_tensor_bytes(shape, itemsize: int, what: str) -> None:
    """Raise if the static dims of `shape` already make the tensor too large to address."""
    nbytes = prod(d for d in shape if isinstance(d, int)) * itemsize
    if nbytes > MAX_TENSOR_BYTES:
        dims = ", ".join(str(d) for d in shape)
        raise InvalidModelError(f"{what} has shape [{dims}]: {nbytes:,} bytes, more than a tensor may hold "
                                f"({MAX_TENSOR_BYTES:,} bytes)")
