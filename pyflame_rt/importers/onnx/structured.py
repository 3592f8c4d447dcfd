"""Sequence and optional values at import, and how they cross the model's boundary.

The graph dialect has tensors only: a sequence or optional value exists while the importer
converts the nodes, as the tensors it is made of.
- A sequence whose element count the model fixes (SequenceConstruct, static SplitToSequence, inserts
  and erases at constant positions) is its element values; one whose count is a run-time dim (a
  sequence graph input) or whose positions are computed at run time is one stacked tensor
  [count, ...] of elements sharing a shape.
- A sequence split at sizes a graph input gives is the split tensor and the sizes, sliced where an
  element is used.
- A sequence input whose type gives no element shape (not even the rank) is ragged: its elements'
  values one after the other [total] and their shapes [count, rank], all three run-time dims. It
  can be passed on and appended to, not indexed.
- A sequence a Loop run at run time carries is, inside its body, only the elements the body
  appends to it (`Appended`); the loop stacks them as a scan output.
- An optional is its element (a tensor or sequence) and, when its presence is known only at run
  time (an optional graph input), a bool flag tensor.
The model's sequence / optional inputs and outputs are flattened into tensor inputs and outputs;
the header's `structured_io` (docs/pfm-format.md) records how, and `pyflame_rt/structured_io.py`
converts feeds (a list of arrays, None) and results back at run time.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Union

import onnx
from xdsl.ir import SSAValue

from pyflame_rt.dialects.symbolic import Dim, Shape, SymDim
from pyflame_rt.dtype import DType
from pyflame_rt.errors import UnsupportedFormatError

# the bool tensor that says whether an optional input / output holds an element
FLAG_SUFFIX = ".has_element"
# the int64 sizes of the pieces of a sequence output split at run-time sizes
SIZES_SUFFIX = ".sizes"
# the int64 [count, rank] element shapes of a ragged sequence
SHAPES_SUFFIX = ".shapes"


@dataclass(frozen=True)
class SplitPieces:
    """The pieces of `input` along `axis` of the int64 `sizes` computed at run time, sliced only when
    used: between consecutive `bounds` (run-time dims: a SplitToSequence whose sizes are a graph
    input), or, with `bounds` None, as many as `sizes` has before its first 0 (a scalar split size
    computed at run time: the count is known only then)."""

    input: SSAValue
    axis: int
    bounds: tuple[Dim, ...] | None
    sizes: SSAValue


@dataclass(frozen=True)
class Ragged:
    """Elements of run-time shapes: their values row-major one after the other, and their shapes."""

    values: SSAValue
    shapes: SSAValue


@dataclass(frozen=True)
class Appended:
    """The elements a run-time loop's body appends to the sequence it carries as body input `carried`,
    whose elements it cannot see: the loop stacks them as a scan output after the initial ones."""

    carried: str
    elements: tuple[SSAValue, ...] = ()


@dataclass(frozen=True)
class SequenceValue:
    """Exactly one of `elements` (the count is known at import), `stacked` ([count, ...]), `pieces`,
    `ragged` and `appended`."""

    dtype: DType
    elements: tuple[SSAValue, ...] | None = None
    stacked: SSAValue | None = None
    pieces: SplitPieces | None = None
    ragged: Ragged | None = None
    appended: Appended | None = None


@dataclass(frozen=True)
class OptionalValue:
    """`element` None: empty. `flag` None: presence known at import. `source`: the graph input it is."""

    element: Union[SSAValue, SequenceValue, None]
    type: onnx.TypeProto
    flag: SSAValue | None = None
    source: str | None = None


Structured = Union[SequenceValue, OptionalValue]


@dataclass(frozen=True)
class FlatInput:
    """One tensor argument a model input becomes."""

    name: str
    shape: Shape
    dtype: DType


# (input name, tensor type) -> its shape and element type (the importer's rules for tensor inputs)
TensorInfo = Callable[[str, onnx.TypeProto.Tensor], tuple[Shape, DType]]


def type_string(t: onnx.TypeProto) -> str:
    """onnxruntime's type string: "tensor(float)", "seq(tensor(float))", "optional(tensor(int64))"."""
    which = t.WhichOneof("value")
    if which == "tensor_type":
        return DType.from_onnx(t.tensor_type.elem_type).ort_type
    if which == "sequence_type":
        return f"seq({type_string(t.sequence_type.elem_type)})"
    if which == "optional_type":
        return f"optional({type_string(t.optional_type.elem_type)})"
    raise UnsupportedFormatError(f"{which or 'untyped'} values are not supported")


def flatten_input(name: str, t: onnx.TypeProto, tensor_info: TensorInfo,
                  new_dim: Callable[[str], str]) -> tuple[list[FlatInput], dict]:
    """The tensor arguments an input becomes and its layout: a sequence one stacked tensor whose
    count is a new dim, an optional its element's arguments and a flag."""
    which = t.WhichOneof("value")
    if which == "sequence_type":
        elem = t.sequence_type.elem_type
        if elem.WhichOneof("value") != "tensor_type":
            raise UnsupportedFormatError(f"input '{name}': a sequence of {type_string(elem)} is not supported")
        count = SymDim.of(new_dim(f"{name}_count"))
        if not elem.tensor_type.HasField("shape"):
            dtype = tensor_info(name, onnx.helper.make_tensor_type_proto(elem.tensor_type.elem_type, []).tensor_type)[1]
            total, rank = (SymDim.of(new_dim(f"{name}_{d}")) for d in ("total", "rank"))
            shapes = name + SHAPES_SUFFIX
            return ([FlatInput(name, (total,), dtype), FlatInput(shapes, (count, rank), DType.INT64)],
                    {"ragged": {"values": name, "shapes": shapes}})
        shape, dtype = tensor_info(name, elem.tensor_type)
        return [FlatInput(name, (count, *shape), dtype)], {"stacked": name}
    if which == "optional_type":
        args, element = flatten_input(name, t.optional_type.elem_type, tensor_info, new_dim)
        flag = name + FLAG_SUFFIX
        return [*args, FlatInput(flag, (), DType.BOOL)], {"optional": {"element": element, "flag": flag}}
    if which != "tensor_type":
        raise UnsupportedFormatError(f"input '{name}': {which or 'untyped'} values are not supported")
    shape, dtype = tensor_info(name, t.tensor_type)
    return [FlatInput(name, shape, dtype)], {"tensor": name}


def input_value(t: onnx.TypeProto, name: str, args: list[SSAValue]) -> SSAValue | Structured:
    """The importer's value of an input flattened into `args` (flatten_input's order)."""
    which = t.WhichOneof("value")
    if which == "sequence_type":
        dtype = DType.from_onnx(t.sequence_type.elem_type.tensor_type.elem_type)
        if len(args) == 2:
            return SequenceValue(dtype, ragged=Ragged(*args))
        return SequenceValue(dtype, stacked=args[0])
    if which == "optional_type":
        return OptionalValue(input_value(t.optional_type.elem_type, name, args[:-1]), t.optional_type.elem_type,
                             flag=args[-1], source=name)
    return args[0]


def note_rank(layout: dict, rank: int | None) -> None:
    """Record in a ragged sequence input's layout the rank the model gives its elements."""
    if "optional" in layout and layout["optional"]["element"] is not None:
        note_rank(layout["optional"]["element"], rank)
    elif "ragged" in layout and rank is not None:
        layout["ragged"]["rank"] = rank


def value_type_string(value: SSAValue | Structured, dtype_of: Callable[[SSAValue], DType]) -> str:
    if isinstance(value, SequenceValue):
        return f"seq({value.dtype.ort_type})"
    if isinstance(value, OptionalValue):
        return f"optional({type_string(value.type)})"
    return dtype_of(value).ort_type


def flatten_output(name: str, value: SSAValue | Structured) -> tuple[list[tuple[str, SSAValue]], dict]:
    """The tensor results a model output becomes (name, value) and its layout."""
    if isinstance(value, SequenceValue):
        if value.pieces is not None:  # the input and the sizes: the session splits it
            sizes = name + SIZES_SUFFIX
            return ([(name, value.pieces.input), (sizes, value.pieces.sizes)],
                    {"split": {"tensor": name, "sizes": sizes, "axis": value.pieces.axis,
                               "drop_empty": value.pieces.bounds is None}})
        if value.stacked is not None:
            return [(name, value.stacked)], {"stacked": name}
        if value.ragged is not None:
            shapes = name + SHAPES_SUFFIX
            return ([(name, value.ragged.values), (shapes, value.ragged.shapes)],
                    {"ragged": {"values": name, "shapes": shapes}})
        names = [f"{name}.{i}" for i in range(len(value.elements))]
        return list(zip(names, value.elements)), {"elements": names}
    if isinstance(value, OptionalValue):
        results, element = flatten_output(name, value.element) if value.element is not None else ([], None)
        flag = None
        if value.flag is not None:
            flag = name + FLAG_SUFFIX
            results.append((flag, value.flag))
        return results, {"optional": {"element": element, "flag": flag}}
    return [(name, value)], {"tensor": name}

