"""What a compiled model is once it leaves the compiler: header, weight blob, object files.

Kept apart from `compiler.py` so that loading and running an artifact imports only
this (numpy and the symbolic shapes), never the compiler side (xDSL, onnx).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pyflame_rt.dialects.symbolic import Dim, SymDim, parse_dim
from pyflame_rt.targets.cpu.memory_plan import Buffer


@dataclass
class CompiledModel:
    """Everything an artifact stores: metadata (JSON-able), the weight blob, the object files
    (linked into one engine when loaded; together they define the entry point)."""

    header: dict
    weights: np.ndarray  # uint8 view of the 64-byte-aligned weight blob
    objects: tuple[bytes, ...]
    digest: bytes = b""   # read from an artifact: its verified SHA-256
    signed: bool = False  # read from an artifact: whether it carries a signature


def expr_to_json(e):
    if isinstance(e, (int, SymDim)):
        return str(e)
    return [e[0], expr_to_json(e[1]), expr_to_json(e[2])]


def expr_from_json(j):
    if isinstance(j, str):
        return parse_dim(j)
    return (j[0], expr_from_json(j[1]), expr_from_json(j[2]))


def buffers_from_header(header: dict) -> list[Buffer]:
    return [Buffer(expr_from_json(n), first, last) for n, first, last in header["buffers"]]


def dims_from_json(shape: list[str]) -> tuple[Dim, ...]:
    return tuple(parse_dim(d) for d in shape)
