"""The `graph` dialect: tensor-level ops, one per ONNX operator family.

Values are builtin tensor types (dynamic dims are `?`). The names of dynamic dims
live on the entry function's arguments (`graph.dims`), and every op knows how to
compute its result shapes from its operands' symbolic shapes (`infer_shapes`),
so shape inference stays exact through Flatten/Reshape of dynamic tensors.
Weights are not inlined: `graph.constant @name` reads a `graph.weight` symbol (weights.py).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from xdsl.dialects.builtin import (
    DYNAMIC_INDEX,
    ArrayAttr,
    BoolAttr,
    DenseArrayBase,
    BFloat16Type,
    DenseIntOrFPElementsAttr,
    Float4E2M1FNType,
    Float8E4M3FNType,
    Float8E4M3FNUZType,
    Float8E5M2FNUZType,
    Float8E5M2Type,
    Float8E8M0FNUType,
    Float16Type,
    Float32Type,
    Float64Type,
    FloatAttr,
    IntegerAttr,
    IntegerType,
    Signedness,
    StringAttr,
    SymbolRefAttr,
    TensorType,
    f32,
    i64,
)
from xdsl.dialects import func
from xdsl.ir import Attribute, SSAValue
from xdsl.irdl import (
    IRDLOperation,
    ParsePropInAttrDict,
    irdl_op_definition,
    operand_def,
    opt_operand_def,
    opt_prop_def,
    prop_def,
    result_def,
    traits_def,
    var_operand_def,
)
from xdsl.parser import Parser
from xdsl.printer import Printer
from xdsl.traits import Pure
from xdsl.utils.exceptions import VerifyException

from pyflame_rt.dtype import DType
from pyflame_rt.errors import DTypeMismatchError, ShapeMismatchError
from pyflame_rt.dialects.assumptions import at_node, broadcast_dim, collect, require_equal, require_nonempty
from pyflame_rt.dialects.graph_attrs import ActivationAttr
from pyflame_rt.dialects.symbolic import Dim, Shape, SymDim, dim_div, numel, parse_dim, unknown_dim

_ELEMENT_TYPES: dict[DType, Attribute] = {
    DType.FLOAT32: Float32Type(),
    DType.FLOAT64: Float64Type(),
    DType.FLOAT16: Float16Type(),
    DType.BFLOAT16: BFloat16Type(),
    DType.INT64: IntegerType(64),
    DType.INT32: IntegerType(32),
    DType.INT16: IntegerType(16),
    DType.INT8: IntegerType(8),
    DType.UINT8: IntegerType(8, Signedness.UNSIGNED),
    DType.UINT16: IntegerType(16, Signedness.UNSIGNED),
    DType.UINT32: IntegerType(32, Signedness.UNSIGNED),
    DType.UINT64: IntegerType(64, Signedness.UNSIGNED),
    DType.BOOL: IntegerType(1),
    DType.FLOAT8E4M3FN: Float8E4M3FNType(),
    DType.FLOAT8E4M3FNUZ: Float8E4M3FNUZType(),
    DType.FLOAT8E5M2: Float8E5M2Type(),
    DType.FLOAT8E5M2FNUZ: Float8E5M2FNUZType(),
    DType.FLOAT8E8M0: Float8E8M0FNUType(),
    DType.FLOAT4E2M1: Float4E2M1FNType(),
    DType.INT4: IntegerType(4),
    DType.UINT4: IntegerType(4, Signedness.UNSIGNED),
    DType.INT2: IntegerType(2),
    DType.UINT2: IntegerType(2, Signedness.UNSIGNED),
}


def element_type(dtype: DType) -> Attribute:
    if dtype not in _ELEMENT_TYPES:
        raise DTypeMismatchError(f"{dtype.value} tensors are not supported in graph IR")
    return _ELEMENT_TYPES[dtype]


def dtype_of(t: Attribute) -> DType:
    elem = t.get_element_type() if isinstance(t, TensorType) else t
    for k, v in _ELEMENT_TYPES.items():
        if v == elem:
            return k
    raise VerifyException(f"element type {elem} has no DType")


def tensor_type(shape: Shape, dtype: DType) -> TensorType:
    return TensorType(element_type(dtype), [d if isinstance(d, int) else DYNAMIC_INDEX for d in shape])


def static_shape(t: TensorType) -> Shape:
    return tuple(t.get_shape())


# ------------------------------------------------------------------ helpers


def _check_compatible(shape: Shape, t: Attribute, what: str) -> None:
    """The IR type must agree with the inferred symbolic shape (dynamic = '?')."""
    assert isinstance(t, TensorType)
    declared = t.get_shape()
    if len(declared) != len(shape):
        raise VerifyException(f"{what}: rank {len(declared)} but inferred {len(shape)}")
    for d, s in zip(declared, shape):
        if d != DYNAMIC_INDEX and isinstance(s, int) and d != s:
            raise VerifyException(f"{what}: declared {list(declared)} but inferred {list(map(str, shape))}")


def broadcast_shapes(a: Shape, b: Shape) -> Shape:
    """Numpy-style multidirectional broadcast (ONNX semantics; dynamic dims: `broadcast_dim`)."""
    what = f"shapes {list(map(str, a))} and {list(map(str, b))} do not broadcast"
    out: list[Dim] = []
    for i in range(max(len(a), len(b))):
        x = a[len(a) - 1 - i] if i < len(a) else 1
        y = b[len(b) - 1 - i] if i < len(b) else 1
        out.append(broadcast_dim(x, y, what))
    return tuple(reversed(out))


def same_dtype(dtypes: Sequence[DType], what: str) -> DType:
    """The one element type all operands share (ONNX ops do not promote types)."""
    if len(set(dtypes)) > 1:
        raise DTypeMismatchError(f"{what} operands must have one element type, got {[d.value for d in dtypes]}")
    return dtypes[0]


def normalize_axis(axis: int, rank: int, what: str = "axis") -> int:
    """`axis` in [0, rank) (negative counts from the end; a scalar's only axis is 0)."""
    if not -rank <= axis < max(rank, 1):
        raise ShapeMismatchError(f"{what} {axis} is out of range for rank {rank}")
    return axis % rank if rank else 0


def axis_prop(default: int = 0):
    """The i64 `axis` of an `AxisOp`, with the ONNX operator's default."""
    return prop_def(IntegerAttr, default_value=IntegerAttr(default, i64))


def activation_prop():
    """The optional fused `activation` of the ops whose epilogue applies one (fuse-activation)."""
    return opt_prop_def(ActivationAttr)


def activation_props(activation: ActivationAttr | None) -> dict[str, Attribute]:
    return {} if activation is None else {"activation": activation}


def activation_of(op: IRDLOperation) -> ActivationAttr | None:
    act = op.properties.get("activation")
    return act if isinstance(act, ActivationAttr) else None


def check_activation(op: IRDLOperation) -> None:
    act = activation_of(op)
    if act is not None and not all(act.applies_to(r.type) for r in op.results):
        raise VerifyException(f"{op.name}: activation {act.activation.value} needs a float32, float16 or bfloat16 "
                              "result")


class GraphOp(IRDLOperation):
    """Base of graph ops: pure, properties in the attribute dictionary, a fused `activation` (where
    the op defines one) verified against the result type, and shape inference from symbolic
    operand shapes."""

    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)

    def infer_shapes(self, shapes: Sequence[Shape]) -> list[Shape]:
        raise NotImplementedError

    def infer_dtypes(self, dtypes: Sequence[DType]) -> list[DType]:
        """Result element types from the operands' (default: every result like operand 0)."""
        return [dtypes[0]] * len(self.results)

    def verify_(self) -> None:
        check_activation(self)
        try:
            dtypes = self.infer_dtypes([dtype_of(o.type) for o in self.operands])
        except (ShapeMismatchError, DTypeMismatchError) as e:
            raise VerifyException(f"{self.name}: {e}") from e
        for k, (d, r) in enumerate(zip(dtypes, self.results)):
            if dtype_of(r.type) is not d:
                raise VerifyException(f"{self.name} result #{k}: element type {r.type.get_element_type()} "
                                      f"but inferred {d.value}")
        shapes = [static_shape(o.type) for o in self.operands]
        # dynamic dims in the types are unknown here: give each its own symbol
        shapes = [
            tuple(unknown_dim(f"{i}_{j}") if d == DYNAMIC_INDEX else d for j, d in enumerate(s))
            for i, s in enumerate(shapes)
        ]
        try:
            with collect():  # verification states no assumptions for the compiled model
                inferred = self.infer_shapes(shapes)
        except ShapeMismatchError as e:
            # unrelated symbols for '?' dims cannot prove a mismatch (x:[?,3] + y:[?,3]): the op is
            # only invalid if it also fails with every '?' taken as 1 (which broadcasts with anything)
            ones = [tuple(1 if isinstance(d, SymDim) else d for d in s) for s in shapes]
            if ones == shapes:
                raise VerifyException(f"{self.name}: {e}") from e
            try:
                with collect():
                    self.infer_shapes(ones)
            except ShapeMismatchError:
                raise VerifyException(f"{self.name}: {e}") from e
            return
        for k, (s, r) in enumerate(zip(inferred, self.results)):
            _check_compatible(s, r.type, f"{self.name} result #{k}")


# ------------------------------------------------------------------ constant


@irdl_op_definition
class ConstantOp(GraphOp):
    """A tensor constant: a named `graph.weight`, or a small inline value."""

    name = "graph.constant"
    weight = opt_prop_def(SymbolRefAttr)
    value = opt_prop_def(DenseIntOrFPElementsAttr)
    result = result_def(TensorType)

    def __init__(self, result_type: TensorType, weight: str | None = None, value=None):
        props: dict[str, Attribute] = {}
        if weight is not None:
            props["weight"] = SymbolRefAttr(weight)
        if value is not None:
            props["value"] = value
        super().__init__(result_types=[result_type], properties=props)

    # `graph.constant @name : type` or `graph.constant {value = dense<...>} : type`
    def print(self, printer: Printer) -> None:
        if self.weight is not None:
            printer.print_string(" ")
            printer.print_attribute(self.weight)
        if self.value is not None:
            printer.print_string(" ")
            printer.print_attr_dict({"value": self.value})
        printer.print_op_attributes(self.attributes)
        printer.print_string(" : ")
        printer.print_attribute(self.result.type)

    @classmethod
    def parse(cls, parser: Parser) -> "ConstantOp":
        name = parser.parse_optional_symbol_name()
        attrs = parser.parse_optional_attr_dict()
        value = attrs.pop("value", None)
        parser.parse_punctuation(":")
        op = cls(parser.parse_type(), weight=name.data if name else None, value=value)
        op.attributes.update(attrs)
        return op

    @property
    def weight_name(self) -> str | None:
        return self.weight.root_reference.data if self.weight is not None else None

    def verify_(self) -> None:
        if (self.weight is None) == (self.value is None):
            raise VerifyException("graph.constant needs exactly one of a weight name or a value")
        if any(d == DYNAMIC_INDEX for d in self.result.type.get_shape()):
            raise VerifyException("graph.constant must have a static shape")

    def infer_shapes(self, shapes):
        return [static_shape(self.result.type)]


# ------------------------------------------------------------ op families


class UnaryOp(GraphOp):
    """One tensor in, one out, properties in the attribute dictionary (default: the input's shape)."""

    input = operand_def(TensorType)
    result = result_def(TensorType)
    assembly_format = "$input attr-dict `:` functional-type(operands, results)"

    def __init__(self, input: SSAValue, result_type: TensorType | None = None, **properties: Attribute):
        super().__init__(operands=[input], result_types=[result_type or input.type], properties=properties)

    def infer_shapes(self, shapes):
        return [shapes[0]]


class BinaryOp(GraphOp):
    """Two tensors in, one out."""

    lhs = operand_def(TensorType)
    rhs = operand_def(TensorType)
    result = result_def(TensorType)
    assembly_format = "$lhs `,` $rhs attr-dict `:` functional-type(operands, results)"

    def __init__(self, lhs: SSAValue, rhs: SSAValue, result_type: TensorType, **properties: Attribute):
        super().__init__(operands=[lhs, rhs], result_types=[result_type], properties=properties)


class VariadicOp(GraphOp):
    """Any number of tensors in, one out."""

    inputs = var_operand_def(TensorType)
    result = result_def(TensorType)
    assembly_format = "$inputs attr-dict `:` functional-type(operands, results)"

    def __init__(self, *inputs: SSAValue, result_type: TensorType, **properties: Attribute):
        super().__init__(operands=[list(inputs)], result_types=[result_type], properties=properties)


class AxisOp(GraphOp):
    """An op along one `axis` of its (first) input; the op declares the property with its default
    (`axis_prop`)."""

    def axis_in(self, rank: int) -> int:
        """The axis in [0, rank); ShapeMismatchError when it is out of range."""
        return normalize_axis(self.axis.value.data, rank)


# ------------------------------------------------------------ elementwise


class ElementwiseBinaryOp(BinaryOp):
    """lhs (op) rhs with multidirectional broadcasting, one element type."""

    def infer_shapes(self, shapes):
        return [broadcast_shapes(shapes[0], shapes[1])]

    def infer_dtypes(self, dtypes):
        return [same_dtype(dtypes, self.name)]


@irdl_op_definition
class AddOp(ElementwiseBinaryOp):
    name = "graph.add"
    activation = activation_prop()

    def __init__(self, lhs: SSAValue, rhs: SSAValue, result_type: TensorType,
                 activation: ActivationAttr | None = None):
        super().__init__(lhs, rhs, result_type, **activation_props(activation))


@irdl_op_definition
class SubOp(ElementwiseBinaryOp):
    name = "graph.sub"


@irdl_op_definition
class MulOp(ElementwiseBinaryOp):
    name = "graph.mul"


@irdl_op_definition
class DivOp(ElementwiseBinaryOp):
    name = "graph.div"


class ElementwiseUnaryOp(UnaryOp):
    """f(x) element by element."""


@irdl_op_definition
class ReluOp(ElementwiseUnaryOp):
    name = "graph.relu"


@irdl_op_definition
class IdentityOp(ElementwiseUnaryOp):
    name = "graph.identity"


# ------------------------------------------------------------ linear algebra


@irdl_op_definition
class GemmOp(GraphOp):
    """Y = alpha * op(A) @ op(B) + beta * C, A and B 2-D, C broadcast to Y (ONNX Gemm)."""

    name = "graph.gemm"
    a = operand_def(TensorType)
    b = operand_def(TensorType)
    c = opt_operand_def(TensorType)
    alpha = prop_def(FloatAttr, default_value=FloatAttr(1.0, f32))
    beta = prop_def(FloatAttr, default_value=FloatAttr(1.0, f32))
    trans_a = prop_def(BoolAttr, default_value=BoolAttr.from_bool(False))
    trans_b = prop_def(BoolAttr, default_value=BoolAttr.from_bool(False))
    activation = activation_prop()  # applied after + C
    result = result_def(TensorType)
    assembly_format = "operands attr-dict `:` functional-type(operands, results)"

    def __init__(self, a, b, c, result_type, *, alpha=1.0, beta=1.0, trans_a=False, trans_b=False,
                 activation: ActivationAttr | None = None):
        super().__init__(
            operands=[a, b, [c] if c is not None else []],
            result_types=[result_type],
            properties={
                "alpha": FloatAttr(alpha, f32),
                "beta": FloatAttr(beta, f32),
                "trans_a": BoolAttr.from_bool(trans_a),
                "trans_b": BoolAttr.from_bool(trans_b),
                **activation_props(activation),
            },
        )

    def infer_shapes(self, shapes):
        a, b = shapes[0], shapes[1]
        if len(a) != 2 or len(b) != 2:
            raise ShapeMismatchError(f"Gemm needs 2-D A and B, got ranks {len(a)} and {len(b)}")
        m, ka = (a[1], a[0]) if self.trans_a.value.data else (a[0], a[1])
        kb, n = (b[1], b[0]) if self.trans_b.value.data else (b[0], b[1])
        require_equal(ka, kb, "Gemm inner dims differ")
        out = (m, n)
        if len(shapes) > 2 and broadcast_shapes(shapes[2], out) != out:
            raise ShapeMismatchError(f"Gemm C {list(map(str, shapes[2]))} does not broadcast to {out}")
        return [out]


@irdl_op_definition
class MatMulOp(BinaryOp):
    """numpy.matmul semantics: 1-D promotion and batch broadcasting (ONNX MatMul)."""

    name = "graph.matmul"

    def infer_shapes(self, shapes):
        return [matmul_shape(shapes[0], shapes[1])]


def matmul_shape(a: Shape, b: Shape) -> Shape:
    """numpy.matmul's result shape."""
    if not a or not b:
        raise ShapeMismatchError("MatMul operands must have rank >= 1")
    a2 = (1,) + tuple(a) if len(a) == 1 else tuple(a)
    b2 = tuple(b) + (1,) if len(b) == 1 else tuple(b)
    require_equal(a2[-1], b2[-2], "MatMul inner dims differ")
    batch = broadcast_shapes(a2[:-2], b2[:-2])
    out = batch + (a2[-2], b2[-1])
    if len(a) == 1:
        out = out[:-2] + out[-1:]
    if len(b) == 1:
        out = out[:-1]
    return out


# ------------------------------------------------------------------ shapes


@irdl_op_definition
class FlattenOp(UnaryOp):
    """Reshape to 2-D: dims before `axis` form the rows (ONNX Flatten)."""

    name = "graph.flatten"
    axis = prop_def(IntegerAttr, default_value=IntegerAttr(1, i64))

    def __init__(self, input, axis: int, result_type):
        super().__init__(input, result_type, axis=IntegerAttr(axis, i64))

    def infer_shapes(self, shapes):
        s = shapes[0]
        axis = self.axis.value.data
        if axis < 0:
            axis += len(s)
        if not 0 <= axis <= len(s):
            raise ShapeMismatchError(f"Flatten axis {self.axis.value.data} out of range for rank {len(s)}")
        return [(numel(s[:axis]), numel(s[axis:]))]


@irdl_op_definition
class ReshapeOp(UnaryOp):
    """Reshape to `shape` (ONNX rules: 0 copies the input dim unless allowzero, -1 is inferred): ints,
    or dims as text (`["batch", "seq", "64"]`) where the target has symbolic dims a single -1 and
    copies cannot express."""

    name = "graph.reshape"
    shape = prop_def(DenseArrayBase | ArrayAttr)
    allowzero = prop_def(BoolAttr, default_value=BoolAttr.from_bool(False))

    def __init__(self, input, shape: Sequence[Dim], result_type, allowzero: bool = False):
        target = (ArrayAttr([StringAttr(str(d)) for d in shape]) if any(isinstance(d, SymDim) for d in shape)
                  else DenseArrayBase.from_list(i64, [int(d) for d in shape]))
        super().__init__(input, result_type, shape=target, allowzero=BoolAttr.from_bool(allowzero))

    def target(self) -> list[Dim]:
        if isinstance(self.shape, ArrayAttr):
            return [parse_dim(d.data) for d in self.shape.data]
        return list(self.shape.get_values())

    def infer_shapes(self, shapes):
        return [reshape_shape(shapes[0], self.target(), self.allowzero.value.data)]


def reshape_shape(src: Shape, target: Sequence[Dim], allowzero: bool = False) -> Shape:
    out: list[Dim | None] = []
    for i, t in enumerate(target):
        if isinstance(t, SymDim):
            out.append(t)
        elif t == 0 and not allowzero:
            if i >= len(src):
                raise ShapeMismatchError(f"Reshape: 0 at position {i} but input has rank {len(src)}")
            out.append(src[i])
        elif t == -1:
            out.append(None)
        elif t < -1:
            raise ShapeMismatchError(f"Reshape: invalid target dim {t}")
        else:
            out.append(t)
    shown = [t if isinstance(t, int) else str(t) for t in target]
    if out.count(None) > 1:
        raise ShapeMismatchError("Reshape: more than one -1 in the target shape")
    total = numel(src)
    known = numel(tuple(d for d in out if d is not None))
    if None in out:
        require_nonempty(known, f"Reshape to {shown}: the -1 dim cannot be inferred when the other dims "
                                "hold no elements")
        out[out.index(None)] = dim_div(total, known)
    else:
        require_equal(total, known, f"Reshape to {shown}: element counts differ (input vs target)")
    return tuple(out)  # type: ignore[arg-type]


# ------------------------------------------------------------------ dialect

CORE_OPS = [ConstantOp, AddOp, SubOp, MulOp, DivOp, ReluOp, IdentityOp, GemmOp, MatMulOp,
            FlattenOp, ReshapeOp]

# ------------------------------------------------------------- function I/O

ARG_NAME = "graph.name"
ARG_DIMS = "graph.dims"
# on an integer argument whose values set sizes (a Reshape / Expand / ConstantOfShape shape fed as a
# graph input): the run-time dims its elements bind, in row-major element order
ARG_VALUES = "graph.values"
# the name of the ONNX node an op computes (a discardable attribute: stamped by the importer, kept by
# the passes on the op that replaces a node), so that shape errors name the node
NODE_NAME = "graph.node"


def set_node_name(op: IRDLOperation, name: str) -> None:
    if isinstance(op, GraphOp) and not isinstance(op, ConstantOp) and NODE_NAME not in op.attributes:
        op.attributes[NODE_NAME] = StringAttr(name)


def keep_node_name(src: IRDLOperation, dst: IRDLOperation) -> IRDLOperation:
    """dst (an op that takes over src's work) named like src; returns dst."""
    name = src.attributes.get(NODE_NAME)
    if isinstance(name, StringAttr):
        set_node_name(dst, name.data)
    return dst


def node_label(op: IRDLOperation) -> str:
    """How errors name an op: "graph.matmul node 'mm'", or the op kind if its node name was lost."""
    name = op.attributes.get(NODE_NAME)
    return f"{op.name} node '{name.data}'" if isinstance(name, StringAttr) else op.name


def io_attrs(name: str, shape: Shape) -> dict[str, Attribute]:
    return {ARG_NAME: StringAttr(name), ARG_DIMS: ArrayAttr([StringAttr(str(d)) for d in shape])}


def io_shape(attrs: dict[str, Attribute], t: TensorType) -> Shape:
    """The symbolic shape of an entry-function argument or result."""
    dims = attrs.get(ARG_DIMS)
    if isinstance(dims, ArrayAttr):
        return tuple(parse_dim(d.data) for d in dims.data)  # type: ignore[union-attr]
    return tuple(SymDim.of(f"d{i}") if d == DYNAMIC_INDEX else d for i, d in enumerate(t.get_shape()))


def value_dims(attrs: dict[str, Attribute]) -> list[str]:
    """The dims an entry-function argument's values bind (none for most arguments)."""
    names = attrs.get(ARG_VALUES)
    return [n.data for n in names.data] if isinstance(names, ArrayAttr) else []  # type: ignore[union-attr]


def entry_function(module) -> func.FuncOp:
    for op in module.ops:
        if isinstance(op, func.FuncOp) and op.sym_name.data == "main":
            return op
    raise VerifyException("graph module has no func.func @main")


def infer_value_shapes(fn: func.FuncOp) -> dict[SSAValue, Shape]:
    """Symbolic shape of every value in a graph function, from the arguments' graph.dims (the
    assumptions the shape functions make go to the active collector, attributed to their nodes)."""
    shapes: dict[SSAValue, Shape] = {}
    arg_attrs = fn.arg_attrs.data if fn.arg_attrs is not None else [None] * len(fn.args)
    for arg, attrs in zip(fn.args, arg_attrs):
        shapes[arg] = io_shape(attrs.data if attrs is not None else {}, arg.type)
    infer_block_shapes(fn.body.block, shapes)
    return shapes


def infer_block_shapes(block, shapes: dict[SSAValue, Shape]) -> None:
    """The shapes of the values a block's graph ops compute (and those of their regions), into `shapes`."""
    for op in block.ops:
        if isinstance(op, GraphOp):
            with at_node(node_label(op)):
                inferred = (op.infer_body_shapes(shapes, infer_block_shapes) if op.regions
                            else op.infer_shapes([shapes[o] for o in op.operands]))
            for res, s in zip(op.results, inferred):
                shapes[res] = s


def dense_value(value: DenseIntOrFPElementsAttr, shape: Sequence[int]) -> np.ndarray:
    dtype = dtype_of(value.type)
    return np.array(value.get_values(), dtype=dtype.numpy).reshape(shape)
