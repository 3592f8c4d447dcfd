"""Attributes of the `graph` dialect: enums for the kinds, modes and layouts ops carry, and the
fused-activation attribute `#graph.activation<name, params...>`.

An enum attribute prints as `#graph<enum value>` in an attribute dictionary and as the bare
value where an op's format names it; an unknown value is a parse error. Ops take plain strings
in their constructors (`enum_attr` converts) and read `.data`, a `StrEnum` member that compares
equal to its string.
"""
from __future__ import annotations

from typing import Sequence, TypeVar

import numpy as np
from xdsl.dialects.builtin import ArrayAttr, BFloat16Type, Float16Type, Float32Type, FloatAttr, TensorType, f32
from xdsl.dialects.utils import EnumAttribute
from xdsl.ir import Attribute, ParametrizedAttribute, SpacedOpaqueSyntaxAttribute
from xdsl.irdl import irdl_attr_definition, param_def
from xdsl.parser import AttrParser
from xdsl.printer import Printer
from xdsl.utils.exceptions import VerifyException
from xdsl.utils.str_enum import StrEnum

from pyflame_rt.dtype import DType
from pyflame_rt.errors import ShapeMismatchError


class Layout(StrEnum):
    """Where the channels sit: ONNX's NCHW, or channels last (2-D only)."""

    NCHW = "NCHW"
    NHWC = "NHWC"


class ReduceKind(StrEnum):
    SUM = "sum"
    MEAN = "mean"
    MAX = "max"
    MIN = "min"
    PROD = "prod"
    L1 = "l1"
    L2 = "l2"
    SUM_SQUARE = "sum_square"
    LOG_SUM = "log_sum"
    LOG_SUM_EXP = "log_sum_exp"


class ArgReduceKind(StrEnum):
    ARGMAX = "argmax"
    ARGMIN = "argmin"


class PadMode(StrEnum):
    CONSTANT = "constant"
    REFLECT = "reflect"
    EDGE = "edge"


class ResizeMode(StrEnum):
    """Interpolation of Resize and GridSample (targets say which they implement)."""

    NEAREST = "nearest"
    LINEAR = "linear"
    CUBIC = "cubic"


class GridPaddingMode(StrEnum):
    """ONNX GridSample padding_mode: what a sample outside the input reads."""

    ZEROS = "zeros"
    BORDER = "border"
    REFLECTION = "reflection"


class CoordinateMode(StrEnum):
    """ONNX Resize coordinate_transformation_mode (targets say which they implement)."""

    HALF_PIXEL = "half_pixel"
    HALF_PIXEL_SYMMETRIC = "half_pixel_symmetric"
    PYTORCH_HALF_PIXEL = "pytorch_half_pixel"
    ALIGN_CORNERS = "align_corners"
    ASYMMETRIC = "asymmetric"
    TF_HALF_PIXEL_FOR_NN = "tf_half_pixel_for_nn"
    TF_CROP_AND_RESIZE = "tf_crop_and_resize"


class NearestMode(StrEnum):
    """ONNX Resize nearest_mode (targets say which they implement)."""

    ROUND_PREFER_FLOOR = "round_prefer_floor"
    ROUND_PREFER_CEIL = "round_prefer_ceil"
    FLOOR = "floor"
    CEIL = "ceil"


class ScatterReduction(StrEnum):
    NONE = "none"
    ADD = "add"
    MUL = "mul"
    MAX = "max"
    MIN = "min"


class StorageOrder(StrEnum):
    """How a flat index orders the spatial dims (ONNX MaxPool storage_order 0 and 1)."""

    ROW_MAJOR = "row_major"
    COLUMN_MAJOR = "column_major"


class ShiftDirection(StrEnum):
    LEFT = "left"
    RIGHT = "right"


class GeluApproximation(StrEnum):
    NONE = "none"
    TANH = "tanh"


class RoundMode(StrEnum):
    """How Cast rounds to float8e8m0 (powers of two): away from zero, toward zero, to nearest (ties up)."""

    UP = "up"
    DOWN = "down"
    NEAREST = "nearest"


# the element type an op produces where its operands do not say (Cast's `to`, the dtype of
# ConstantOfShape and Range): DType's names; `DType(attr.data)` reads one back
ElementType = StrEnum("ElementType", [(d.name, d.value) for d in DType])


@irdl_attr_definition
class LayoutAttr(EnumAttribute[Layout], SpacedOpaqueSyntaxAttribute):
    name = "graph.layout"


@irdl_attr_definition
class ReduceKindAttr(EnumAttribute[ReduceKind], SpacedOpaqueSyntaxAttribute):
    name = "graph.reduce_kind"


@irdl_attr_definition
class ArgReduceKindAttr(EnumAttribute[ArgReduceKind], SpacedOpaqueSyntaxAttribute):
    name = "graph.arg_reduce_kind"


@irdl_attr_definition
class PadModeAttr(EnumAttribute[PadMode], SpacedOpaqueSyntaxAttribute):
    name = "graph.pad_mode"


@irdl_attr_definition
class ResizeModeAttr(EnumAttribute[ResizeMode], SpacedOpaqueSyntaxAttribute):
    name = "graph.resize_mode"


@irdl_attr_definition
class GridPaddingModeAttr(EnumAttribute[GridPaddingMode], SpacedOpaqueSyntaxAttribute):
    name = "graph.grid_padding_mode"


@irdl_attr_definition
class CoordinateModeAttr(EnumAttribute[CoordinateMode], SpacedOpaqueSyntaxAttribute):
    name = "graph.coordinate_mode"


@irdl_attr_definition
class NearestModeAttr(EnumAttribute[NearestMode], SpacedOpaqueSyntaxAttribute):
    name = "graph.nearest_mode"


@irdl_attr_definition
class ScatterReductionAttr(EnumAttribute[ScatterReduction], SpacedOpaqueSyntaxAttribute):
    name = "graph.scatter_reduction"


@irdl_attr_definition
class StorageOrderAttr(EnumAttribute[StorageOrder], SpacedOpaqueSyntaxAttribute):
    name = "graph.storage_order"


@irdl_attr_definition
class ShiftDirectionAttr(EnumAttribute[ShiftDirection], SpacedOpaqueSyntaxAttribute):
    name = "graph.shift_direction"


@irdl_attr_definition
class GeluApproximationAttr(EnumAttribute[GeluApproximation], SpacedOpaqueSyntaxAttribute):
    name = "graph.gelu_approximation"


@irdl_attr_definition
class RoundModeAttr(EnumAttribute[RoundMode], SpacedOpaqueSyntaxAttribute):
    name = "graph.round_mode"


@irdl_attr_definition
class ElementTypeAttr(EnumAttribute[ElementType], SpacedOpaqueSyntaxAttribute):
    name = "graph.element_type"


_E = TypeVar("_E", bound=EnumAttribute)


def enum_attr(cls: type[_E], value: str) -> _E:
    """`value` as an enum attribute; ShapeMismatchError (an invalid op) when it is no member."""
    try:
        return cls(cls.enum_type(value))
    except ValueError:
        values = ", ".join(m.value for m in cls.enum_type)
        raise ShapeMismatchError(f"{cls.name.removeprefix('graph.')} must be one of {values}, got '{value}'") from None


# ------------------------------------------------------------ activation


class Activation(StrEnum):
    """What a fused epilogue applies to a result still in registers. relu6 is min(max(x, 0), 6),
    the Clip(0, 6) of MobileNet-style networks; gelu is the erf form."""

    RELU = "relu"
    RELU6 = "relu6"
    CLIP = "clip"
    LEAKY_RELU = "leaky_relu"
    SIGMOID = "sigmoid"
    TANH = "tanh"
    HARD_SIGMOID = "hard_sigmoid"
    HARD_SWISH = "hard_swish"
    GELU = "gelu"
    GELU_TANH = "gelu_tanh"


# the float parameters each activation takes, by name (clip: its bounds)
ACTIVATION_PARAMS: dict[Activation, tuple[str, ...]] = {
    Activation.CLIP: ("min", "max"), Activation.LEAKY_RELU: ("alpha",), Activation.HARD_SIGMOID: ("alpha", "beta")}
# relu and relu6 apply to any element type; the others to single-precision floats (computed in f32)
INTEGER_ACTIVATIONS = (Activation.RELU, Activation.RELU6)
_SINGLE_FLOAT_TYPES = (Float16Type, BFloat16Type, Float32Type)


@irdl_attr_definition
class ActivationKindAttr(EnumAttribute[Activation], SpacedOpaqueSyntaxAttribute):
    name = "graph.activation_kind"


def float32_text(value: float) -> str:
    """A float32 value as the shortest decimal that reads back as it, in MLIR float syntax."""
    text = str(np.float32(value))
    mantissa, e, exponent = text.partition("e")
    return text if "." in mantissa or not e or "n" in mantissa else f"{mantissa}.0e{exponent}"


def _param_count_error(kind: Activation, count: int) -> str | None:
    names = ACTIVATION_PARAMS.get(kind, ())
    if count == len(names):
        return None
    return f"activation {kind.value} takes {len(names)} parameters ({', '.join(names) or 'none'}), got {count}"


@irdl_attr_definition
class ActivationAttr(ParametrizedAttribute):
    """`#graph.activation<relu>`, `#graph.activation<clip, 0.0, 6.0>`,
    `#graph.activation<leaky_relu, 0.01>`: the kind and its float32 parameters (ACTIVATION_PARAMS)."""

    name = "graph.activation"
    kind: ActivationKindAttr = param_def()
    params: ArrayAttr[FloatAttr] = param_def()

    def __init__(self, kind: str | Activation, params: Sequence[float] = ()):
        super().__init__(enum_attr(ActivationKindAttr, kind), ArrayAttr(FloatAttr(float(p), f32) for p in params))

    @property
    def activation(self) -> Activation:
        return self.kind.data

    @property
    def values(self) -> tuple[float, ...]:
        return tuple(p.value.data for p in self.params)

    # parameters print as float32 shortest-round-trip decimals, `inf` for an unbounded clip
    def print_parameters(self, printer: Printer) -> None:
        printer.print_string(f"<{self.activation.value}")
        for p in self.values:
            printer.print_string(f", {float32_text(p)}")
        printer.print_string(">")

    @classmethod
    def parse_parameters(cls, parser: AttrParser) -> Sequence[Attribute]:
        start = parser.pos
        parser.parse_punctuation("<")
        kind = ActivationKindAttr(ActivationKindAttr.parse_parameter(parser))
        params = []
        while parser.parse_optional_punctuation(",") is not None:
            negative = parser.parse_optional_punctuation("-") is not None
            value = float("inf") if parser.parse_optional_keyword("inf") else float(parser.parse_number())
            params.append(FloatAttr(-value if negative else value, f32))
        parser.parse_punctuation(">")
        if (error := _param_count_error(kind.data, len(params))) is not None:
            parser.raise_error(error, start, parser.pos)
        return kind, ArrayAttr(params)

    def verify(self) -> None:
        if (error := _param_count_error(self.activation, len(self.values))) is not None:
            raise VerifyException(error)

    def applies_to(self, result_type: Attribute) -> bool:
        """Whether this activation is defined for a result of this type."""
        return self.activation in INTEGER_ACTIVATIONS or (
            isinstance(result_type, TensorType) and isinstance(result_type.element_type, _SINGLE_FLOAT_TYPES))


GRAPH_ATTRS = [LayoutAttr, ReduceKindAttr, ArgReduceKindAttr, PadModeAttr, ResizeModeAttr, CoordinateModeAttr,
               GridPaddingModeAttr, NearestModeAttr, ScatterReductionAttr, StorageOrderAttr, ShiftDirectionAttr,
               GeluApproximationAttr, RoundModeAttr, ElementTypeAttr, ActivationKindAttr, ActivationAttr]
