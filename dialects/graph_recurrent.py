"""`graph` ops of recurrent layers: RNN, GRU and LSTM (ONNX's semantics and gate orders).

One op family on `RecurrentOp`: X [seq, batch, input] (`batch_first`: [batch, seq, input], ONNX's
layout 1), W [dirs, gates * hidden, input], R [dirs, gates * hidden, hidden], the optional bias
B [dirs, 2 * gates * hidden] (W's biases, then R's), sequence_lens [batch] (int32) and initial_h
[dirs, batch, hidden] (batch first: [batch, dirs, hidden]). Results: Y [seq, dirs, batch, hidden]
(batch first: [batch, seq, dirs, hidden]), zero at the steps past a batch entry's length, and Y_h,
the last state, laid out like initial_h. LSTM adds initial_c and the peepholes P [dirs, 3 * hidden]
(gates i, o, f) and the result Y_c.

Each direction's activations (`activations`: ONNX's names in snake case, one per function the
cell applies, the forward direction's first) take their `activation_alpha` / `activation_beta`
entry (0 for one that uses none), resolved at import from ONNX's lists and defaults. `clip`, when
set, bounds every gate's input to [-clip, clip].
"""
from __future__ import annotations

from enum import StrEnum
from typing import ClassVar

from xdsl.dialects.builtin import ArrayAttr, BoolAttr, DenseArrayBase, FloatAttr, IntegerAttr, StringAttr, TensorType, \
    f32, i64
from xdsl.irdl import (
    AttrSizedOperandSegments, irdl_attr_definition, irdl_op_definition, operand_def, opt_operand_def, opt_prop_def,
    prop_def, result_def)
from xdsl.dialects.utils import EnumAttribute
from xdsl.ir import SpacedOpaqueSyntaxAttribute

from pyflame_rt.dialects.assumptions import require_equal
from pyflame_rt.dialects.graph import GraphOp
from pyflame_rt.dialects.graph_attrs import enum_attr
from pyflame_rt.dialects.symbolic import Shape
from pyflame_rt.dtype import DType
from pyflame_rt.errors import DTypeMismatchError, ShapeMismatchError


class Direction(StrEnum):
    FORWARD = "forward"
    REVERSE = "reverse"
    BIDIRECTIONAL = "bidirectional"


@irdl_attr_definition
class DirectionAttr(EnumAttribute[Direction], SpacedOpaqueSyntaxAttribute):
    name = "graph.rnn_direction"


# the activations a recurrent cell may apply -> how many of (alpha, beta) each takes
ACTIVATION_ARITY = {"relu": 0, "tanh": 0, "sigmoid": 0, "softsign": 0, "softplus": 0, "leaky_relu": 1,
                    "thresholded_relu": 1, "elu": 1, "affine": 2, "scaled_tanh": 2, "hard_sigmoid": 2}


def _dims(shape: Shape) -> str:
    return f"[{', '.join(map(str, shape))}]"


def _floats(values) -> DenseArrayBase:
    return DenseArrayBase.from_list(f32, [float(v) for v in values])


class RecurrentOp(GraphOp):
    """The family's shared attributes, shapes and accessors. A cell has GATES gates and applies
    ACTIVATIONS functions per direction."""

    GATES: ClassVar[int]
    ACTIVATIONS: ClassVar[int]
    STATES: ClassVar[int] = 1  # initial state operands (and last state results): h (and c)

    irdl_options = (AttrSizedOperandSegments(as_property=True),)
    hidden_size = prop_def(IntegerAttr.constr(i64))
    direction = prop_def(DirectionAttr, default_value=DirectionAttr(Direction.FORWARD))
    activations = prop_def(ArrayAttr[StringAttr])
    activation_alpha = prop_def(DenseArrayBase.constr(f32))
    activation_beta = prop_def(DenseArrayBase.constr(f32))
    clip = opt_prop_def(FloatAttr)
    batch_first = prop_def(BoolAttr, default_value=BoolAttr.from_bool(False))

    def __init__(self, *operands, result_types, hidden_size: int, direction: str, activations, alphas, betas,
                 clip: float | None = None, batch_first: bool = False, **props):
        props.update(hidden_size=IntegerAttr(hidden_size, i64), direction=enum_attr(DirectionAttr, direction),
                     activations=ArrayAttr([StringAttr(a) for a in activations]),
                     activation_alpha=_floats(alphas), activation_beta=_floats(betas),
                     batch_first=BoolAttr.from_bool(batch_first))
        if clip is not None:
            props["clip"] = FloatAttr(float(clip), f32)
        super().__init__(operands=[[o] if o is not None else [] for o in operands], result_types=result_types,
                         properties=props)

    @property
    def hidden(self) -> int:
        return self.hidden_size.value.data

    @property
    def num_directions(self) -> int:
        return 2 if self.direction.data == Direction.BIDIRECTIONAL else 1

    @property
    def is_batch_first(self) -> bool:
        return bool(self.batch_first.value.data)

    @property
    def clip_value(self) -> float | None:
        return None if self.clip is None else self.clip.value.data

    def direction_activations(self, d: int) -> list[tuple[str, float, float]]:
        """Direction d's (name, alpha, beta) per function of the cell."""
        names = [a.data for a in self.activations.data]
        alphas, betas = self.activation_alpha.get_values(), self.activation_beta.get_values()
        lo = d * self.ACTIVATIONS
        return [(names[k], alphas[k], betas[k]) for k in range(lo, lo + self.ACTIVATIONS)]

    def _check_attrs(self) -> None:
        names = [a.data for a in self.activations.data]
        n = self.ACTIVATIONS * self.num_directions
        if len(names) != n or len(self.activation_alpha.get_values()) != n or len(self.activation_beta.get_values()) != n:
            raise ShapeMismatchError(f"{self.name}: {n} activations (with alpha and beta each) expected, "
                                     f"got {len(names)}")
        unknown = [a for a in names if a not in ACTIVATION_ARITY]
        if unknown:
            raise ShapeMismatchError(f"{self.name}: unknown activation '{unknown[0]}'")
        if self.hidden < 1:
            raise ShapeMismatchError(f"{self.name}: hidden_size must be positive, got {self.hidden}")
        if self.clip_value is not None and not self.clip_value > 0:
            raise ShapeMismatchError(f"{self.name}: clip must be positive, got {self.clip_value}")

    def infer_shapes(self, shapes):
        self._check_attrs()
        shape = dict(zip(self.operands, shapes))
        x = shape[self.x]
        if len(x) != 3:
            raise ShapeMismatchError(f"{self.name}: X must be rank 3, got {_dims(x)}")
        batch, seq = (x[0], x[1]) if self.is_batch_first else (x[1], x[0])
        d, h, gh = self.num_directions, self.hidden, self.GATES * self.hidden
        expected = {"w": (d, gh, x[2]), "r": (d, gh, h), "b": (d, 2 * gh), "sequence_lens": (batch,),
                    "p": (d, 3 * h)}
        state = (batch, d, h) if self.is_batch_first else (d, batch, h)
        expected.update(dict.fromkeys(("initial_h", "initial_c"), state))
        for name, want in expected.items():
            v = getattr(self, name)
            if v is None:
                continue
            got = shape[v]
            if len(got) != len(want):
                raise ShapeMismatchError(f"{self.name}: {name} must be {_dims(want)}, got {_dims(got)}")
            for g, w in zip(got, want):
                require_equal(g, w, f"{self.name}: {name} must be {_dims(want)}")
        y = (batch, seq, d, h) if self.is_batch_first else (seq, d, batch, h)
        return [y] + [state] * self.STATES

    def infer_dtypes(self, dtypes):
        dtype = {v: t for v, t in zip(self.operands, dtypes)}
        floats = [dtype[v] for v in self.operands if v is not self.sequence_lens]
        if any(t is not DType.FLOAT32 for t in floats):
            bad = next(t for t in floats if t is not DType.FLOAT32)
            raise DTypeMismatchError(f"{self.name} takes float32 tensors, got {bad.value}")
        if self.sequence_lens is not None and dtype[self.sequence_lens] is not DType.INT32:
            raise DTypeMismatchError(f"{self.name}: sequence_lens must be int32, "
                                     f"got {dtype[self.sequence_lens].value}")
        return [DType.FLOAT32] * len(self.results)


class _HiddenStateOp(RecurrentOp):
    """A cell whose only state is h: RNN and GRU."""

    x = operand_def(TensorType)
    w = operand_def(TensorType)
    r = operand_def(TensorType)
    b = opt_operand_def(TensorType)
    sequence_lens = opt_operand_def(TensorType)
    initial_h = opt_operand_def(TensorType)
    y = result_def(TensorType)
    y_h = result_def(TensorType)

    # the LSTM's operands, absent from these cells
    initial_c = property(lambda self: None)
    p = property(lambda self: None)


@irdl_op_definition
class RNNOp(_HiddenStateOp):
    """H = f(X W^T + H R^T + Wb + Rb)."""

    name = "graph.rnn"
    GATES: ClassVar[int] = 1
    ACTIVATIONS: ClassVar[int] = 1


@irdl_op_definition
class GRUOp(_HiddenStateOp):
    """Gates z, r, h: z = f(..), r = f(..), h~ = g(X Wh^T + (r * H) Rh^T + Rbh + Wbh), or with
    `linear_before_reset` g(X Wh^T + r * (H Rh^T + Rbh) + Wbh); H = (1 - z) * h~ + z * H."""

    name = "graph.gru"
    GATES: ClassVar[int] = 3
    ACTIVATIONS: ClassVar[int] = 2
    linear_before_reset = prop_def(BoolAttr, default_value=BoolAttr.from_bool(False))

    @property
    def lbr(self) -> bool:
        return bool(self.linear_before_reset.value.data)


@irdl_op_definition
class LSTMOp(RecurrentOp):
    """Gates i, o, f, c: i = f(.. + Pi * C), f = f(.. + Pf * C) (`input_forget`: 1 - i),
    c~ = g(..), C = f * C + i * c~, o = f(.. + Po * C), H = o * h(C)."""

    name = "graph.lstm"
    GATES: ClassVar[int] = 4
    ACTIVATIONS: ClassVar[int] = 3
    STATES: ClassVar[int] = 2
    x = operand_def(TensorType)
    w = operand_def(TensorType)
    r = operand_def(TensorType)
    b = opt_operand_def(TensorType)
    sequence_lens = opt_operand_def(TensorType)
    initial_h = opt_operand_def(TensorType)
    initial_c = opt_operand_def(TensorType)
    p = opt_operand_def(TensorType)
    input_forget = prop_def(BoolAttr, default_value=BoolAttr.from_bool(False))
    y = result_def(TensorType)
    y_h = result_def(TensorType)
    y_c = result_def(TensorType)

    @property
    def coupled(self) -> bool:
        return bool(self.input_forget.value.data)


RECURRENT_OPS = [RNNOp, GRUOp, LSTMOp]
RECURRENT_ATTRS = [DirectionAttr]
