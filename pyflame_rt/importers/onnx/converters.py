"""The converter registry (ONNX op type -> converter) and what a converter sees of its node.

A leaf module: the converter families (ops) register here and the importer reads the registry,
so neither imports the other.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import numpy as np
import onnx
from xdsl.ir import SSAValue

from pyflame_rt.dialects.symbolic import Dim, Shape, SymDim
from pyflame_rt.errors import PyFlameRTError, UnsupportedOperatorError

if TYPE_CHECKING:
    from pyflame_rt.importers.onnx.importer import ONNXImporter

Converter = Callable[["_NodeContext"], list[SSAValue]]
_CONVERTERS: dict[str, Converter] = {}
# attributes added after MAX_OPSET that a converter implements (op type -> names)
_NEWER_ATTRIBUTES: dict[str, frozenset[str]] = {}
# the domain of the op types converted from outside the default domain (com.microsoft's QLinear ops)
_DOMAINS: dict[str, str] = {}


def converter(*op_types: str, newer_attributes: tuple[str, ...] = (), domain: str = ""):
    def register(fn: Converter) -> Converter:
        for t in op_types:
            _CONVERTERS[t] = fn
            _NEWER_ATTRIBUTES[t] = frozenset(newer_attributes)
            if domain:
                _DOMAINS[t] = domain
        return fn
    return register


def converts(domain: str, op_type: str) -> bool:
    """Whether a converter is registered for this (domain, op type)."""
    return op_type in _CONVERTERS and _DOMAINS.get(op_type, "") == ("" if domain == "ai.onnx" else domain)


class _NodeContext:
    """What a converter sees: the node, its inputs as SSA values, attributes, and a builder."""

    def __init__(self, importer: "ONNXImporter", node: onnx.NodeProto):
        self.importer = importer
        self.node = node
        self.attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}

    @property
    def opset(self) -> int:
        return self.importer.opset

    def input(self, i: int) -> SSAValue | None:
        if i >= len(self.node.input) or not self.node.input[i]:
            return None
        return self.importer.value(self.node.input[i])

    def structured(self, i: int):
        """Input i when it is a sequence or optional value (importers/onnx/structured.py), else None."""
        if i >= len(self.node.input) or not self.node.input[i]:
            return None
        return self.importer.structured.get(self.node.input[i])

    def const_input(self, i: int) -> np.ndarray | None:
        known = self.sym_input(i)
        if known is not None and known.is_static:
            return known.array()
        v = self.input(i)
        return None if v is None else self.importer.constants.get(v)

    def sym_input(self, i: int):
        """An integer input whose values are known at import (ints and symbolic dims), or None."""
        if i >= len(self.node.input) or not self.node.input[i]:
            return None
        return self.importer.known_value(self.node.input[i])

    def dims_input(self, i: int):
        """An integer input that sets sizes: known at import (`sym_input`), or a graph input whose
        elements become dims bound from its values at run time; None otherwise."""
        known = self.sym_input(i)
        if known is None and i < len(self.node.input) and self.node.input[i]:
            known = self.importer.run_time_values(self.node.input[i])
        return known

    def known_dims(self, i: int, what: str, run_time: bool = False) -> list[Dim]:
        """A shape-determining input (shape, Slice ends, Tile repeats, ...) as ints and symbolic dims:
        a constant or computed by Shape arithmetic over the input dims; with `run_time`, also a graph
        input whose elements become dims bound from its values (`dims_input`)."""
        known = self.dims_input(i) if run_time else self.sym_input(i)
        if known is None:
            raise self.fail(f"the {what} must be known at compile time (constant or computed from input shapes)"
                            + (" or be a graph input" if run_time else ""))
        return [v if isinstance(v, SymDim) else int(v) for v in known.values.flat]

    def shape(self, v: SSAValue) -> Shape:
        return self.importer.shapes[v]

    def declared_shape(self, i: int) -> Shape | None:
        """The static shape the model declares for output i (a graph output or value_info), or None."""
        vi = self.importer.declared.get(self.node.output[i]) if i < len(self.node.output) else None
        if vi is None or not vi.type.tensor_type.HasField("shape"):
            return None
        dims = vi.type.tensor_type.shape.dim
        return tuple(int(d.dim_value) for d in dims) if all(d.HasField("dim_value") for d in dims) else None

    def emit(self, op_cls, operands: list[SSAValue | None], **props) -> list[SSAValue]:
        """Create op_cls with result types from its own shape inference."""
        return self.importer.emit(op_cls, operands, props, self.node)

    def fail(self, why: str) -> PyFlameRTError:
        return UnsupportedOperatorError(
            f"{self.node.op_type} (opset {self.opset}) node '{self.node.name or self.node.output[0]}': {why}"
        )
