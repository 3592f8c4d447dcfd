"""`quantize-static-int8`: float32 MatMul / Gemm / Conv by constant weights computed on int8 storage
with activation parameters from calibration, as a `quantize_static` QDQ model folded by `fold-qdq`:

    y = graph.conv(x, w, b)  ->  y = quant.dequantize<ty>(quant.conv(quant.quantize<tx>(x), w_i8, b_i32)
                                                          {input_types = [tx, tw], type = ty})

`activations` holds each activation's type as `key=scale:zero_point` (keys: `value_keys`, the
names calibration gives tensors; storage `activation_storage`). The weight is
int8 symmetric (zero point 0), one scale or one per output channel (`per_channel`); a bias is
int32 at input scale x weight scale; a Gemm's alpha, beta, transposition and constant C fold into
its weight and bias. A layer is rewritten when its input and result have types and its weight is
constant; `exclude` names op types or ONNX node names kept in float32.

Between layers values stay int8: a layer reading a dequantized value reads its storage (so the
quantize / dequantize pair between two layers vanishes), a Relu that is the only reader of a layer's
result is its output clamp when the Relu's type has zero point at the storage's low end (its
result's grid starts at 0), an Add of two calibrated values (a residual Add) is a quant.add of
their codes, and MaxPool, Reshape and Flatten (exact on codes: order preserving or moving them)
run on the storage with the dequantize after them. A MatMul / Gemm result no int8 op reads (in a
transformer: the float residual Add and LayerNorm after a projection) is not rounded to 8 bits: the
int32 product is rescaled to float32 (`DequantizeInEpilogue`), as a dynamic INT8 product is.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, StringAttr, TensorType
from xdsl.ir import Operation, SSAValue
from xdsl.pattern_rewriter import PatternRewriter, RewritePattern
from xdsl.utils.exceptions import VerifyException

from pyflame_rt.dialects import graph, graph_math as gm, graph_nn as nn, quant
from pyflame_rt.dialects.graph_attrs import Layout
from pyflame_rt.dialects.weights import WeightTable
from pyflame_rt.dtype import DType
from pyflame_rt.errors import ValidationError
from pyflame_rt.transforms.convert_to_half import node_name
from pyflame_rt.transforms.eliminate_dead_code import referenced_weights
from pyflame_rt.transforms.graph_pass import GraphPass, PassStats, apply_patterns, constant_array, defining, make_constant
from pyflame_rt.transforms.quantize_dynamic import symmetric_int8
from pyflame_rt.transforms.registry import register_pass

STATIC_INT8_OPS: dict[str, type[Operation]] = {"MatMul": graph.MatMulOp, "Gemm": graph.GemmOp, "Conv": nn.ConvOp}
_OP_TYPES = {cls: onnx_type for onnx_type, cls in STATIC_INT8_OPS.items()}
# ops whose result on codes is the codes of their result on real values (one grid in and out)
CODE_EXACT_OPS = (nn.MaxPoolOp, graph.ReshapeOp, graph.FlattenOp)


class StaticLayer(NamedTuple):
    """A layer as the quantized op computes it: activation, float32 weight (MatMul / Gemm: [K, N];
    Conv: [M, C / group, k...]), its output-channel axis, float32 bias or None."""

    x: SSAValue
    weight: np.ndarray
    axis: int
    bias: np.ndarray | None


def static_layer(op: Operation, weights: WeightTable) -> StaticLayer | None:
    """`op` as a layer this pass rewrites, or None."""
    if type(op) not in _OP_TYPES or graph.dtype_of(op.result.type) is not DType.FLOAT32:
        return None
    if isinstance(op, graph.MatMulOp):
        w = constant_array(op.rhs, weights)
        return StaticLayer(op.lhs, w, 1, None) if _float32(w, 2) else None
    if isinstance(op, graph.GemmOp):
        return _gemm_layer(op, weights)
    if op.residual is not None or graph.activation_of(op) is not None or op.data_layout != Layout.NCHW:
        return None
    w = constant_array(op.weight, weights)
    bias = None if op.bias is None else constant_array(op.bias, weights)
    if not _float32(w, None) or op.bias is not None and not _float32(bias, 1):
        return None
    return StaticLayer(op.input, w, 0, bias)


def _gemm_layer(op: graph.GemmOp, weights: WeightTable) -> StaticLayer | None:
    w = constant_array(op.b, weights)
    if op.trans_a.value.data or op.activation is not None or not _float32(w, 2):
        return None
    w = (w.T if op.trans_b.value.data else w) * np.float32(op.alpha.value.data)
    bias = None
    if op.c is not None:
        c = constant_array(op.c, weights)
        if not _float32(c, None) or c.size not in (1, w.shape[1]) or c.ndim > 1 and c.shape[-1] != c.size:
            return None
        bias = np.broadcast_to(c.reshape(-1) * np.float32(op.beta.value.data), (w.shape[1],)).astype(np.float32)
    return StaticLayer(op.a, w.astype(np.float32), 1, bias)


def _float32(arr: np.ndarray | None, ndim: int | None) -> bool:
    return arr is not None and arr.dtype == np.float32 and (ndim is None or arr.ndim == ndim)


def static_op_type(op: Operation, weights: WeightTable) -> str | None:
    """The ONNX op type of a layer this pass rewrites, or None."""
    return _OP_TYPES[type(op)] if static_layer(op, weights) is not None else None


def int8_weight(w: np.ndarray, axis: int | None) -> tuple[np.ndarray, quant.UniformQuantType]:
    """A float32 weight's int8 symmetric codes and type: one scale, or one per slice along `axis`."""
    codes, scale = symmetric_int8(w, axis)
    return codes, quant.UniformQuantType("i8", scale.reshape(-1), [0] * scale.size, axis=-1 if axis is None else axis)


def value_keys(fn: func.FuncOp) -> dict[SSAValue, str]:
    """A name for every value of the graph function: an input's name, else `<node>:<result>`
    (`<op>:<result>` for an op without a node name), made unique by program order."""
    keys: dict[SSAValue, str] = {}
    taken: set[str] = set()

    def add(v: SSAValue, key: str) -> None:
        unique, k = key, 1
        while unique in taken:
            unique, k = f"{key}#{k}", k + 1
        taken.add(unique)
        keys[v] = unique

    arg_attrs = fn.arg_attrs.data if fn.arg_attrs is not None else [None] * len(fn.args)
    for arg, attrs in zip(fn.args, arg_attrs):
        name = attrs.data.get(graph.ARG_NAME) if attrs is not None else None
        add(arg, name.data if isinstance(name, StringAttr) else f"arg{arg.index}")
    for op in fn.body.block.ops:
        for j, r in enumerate(op.results):
            add(r, f"{node_name(op) or op.name}:{j}")
    return keys


def encode_activations(params: dict) -> tuple[str, ...]:
    """Calibrated per-tensor parameters (key -> QuantParams) as this pass's `activations` option."""
    return tuple(f"{key}={float(p.scale.reshape(-1)[0])!r}:{int(p.zero_point.reshape(-1)[0])}"
                 for key, p in params.items() if p.axis is None)


def decode_activations(entries: tuple[str, ...], storage: str) -> dict[str, quant.UniformQuantType]:
    """The `activations` option's types; ValidationError naming an entry that is not one."""
    types = {}
    for entry in entries:
        key, sep, pair = entry.rpartition("=")
        scale, _, zero_point = pair.partition(":")
        try:
            if not sep:
                raise ValueError("not key=scale:zero_point")
            types[key] = t = quant.UniformQuantType(storage, [float(scale)], [int(zero_point)])
            t.verify()
        except (ValueError, VerifyException) as e:
            raise ValidationError(f"quantize-static-int8: bad activation '{entry}': {e}") from None
    return types


def _storage_type(t: TensorType, qtype: quant.UniformQuantType) -> TensorType:
    return TensorType(graph.element_type(qtype.dtype), t.get_shape())


@dataclass
class QuantizeStaticLayer(RewritePattern):
    """A float32 layer with calibrated input and result -> its quant op between conversions."""

    activations: dict[str, quant.UniformQuantType]
    keys: dict[SSAValue, str]
    exclude: frozenset[str]
    per_channel: bool
    weights: WeightTable
    stats: PassStats

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        layer = static_layer(op, self.weights)
        if layer is None or _OP_TYPES[type(op)] in self.exclude or node_name(op) in self.exclude:
            return
        dq = defining(layer.x, quant.DequantizeOp)
        x_type = dq.type if dq is not None else self.activations.get(self.keys.get(layer.x))
        out, out_type = self._output(op)
        if x_type is None or x_type.per_axis or out_type is None:
            return
        new: list[Operation] = []
        if dq is not None:
            xq = dq.input
        else:
            new.append(q := quant.QuantizeOp(layer.x, _storage_type(layer.x.type, x_type), type=x_type))
            xq = q.result
        codes, w_type = int8_weight(layer.weight, layer.axis if self.per_channel else None)
        hint = node_name(op) or _OP_TYPES[type(op)].lower()
        new.append(w := make_constant(codes, f"{hint}_int8", self.weights, 1))
        bias = None
        if layer.bias is not None:
            scales = np.float32(x_type.scale_values[0]) * np.array(w_type.scale_values, np.float32)
            codes32 = np.clip(np.rint(layer.bias.astype(np.float64) / scales), -2 ** 31, 2 ** 31 - 1)
            new.append(b := make_constant(codes32.astype(np.int32), f"{hint}_bias_int32", self.weights, 1))
            bias = b.result
        result_type = _storage_type(op.result.type, out_type)
        new.append(self._quantized(op, xq, w.result, bias, result_type, [x_type, w_type], out_type))
        new.append(quant.DequantizeOp(new[-1].results[0], op.result.type, type=out_type))
        if out is not op.result:  # the Relu this layer's output clamp computes
            rewriter.replace_all_uses_with(out, new[-1].results[0])
            rewriter.erase_op(out.owner)
        rewriter.replace(op, new, [new[-1].results[0]])
        self.stats.nodes_added += len(new) - 1

    def _output(self, op: Operation) -> tuple[SSAValue, quant.UniformQuantType | None]:
        """The value the quantized op computes (its result, or the result of a Relu that only reads
        it, when the Relu's type clamps at its zero point) and that value's type."""
        users = list(op.result.uses)
        if len(users) == 1 and isinstance(relu := users[0].operation, graph.ReluOp):
            t = self.activations.get(self.keys.get(relu.result))
            if t is not None and t.zero_point_values[0] == t.bounds[0]:
                return relu.result, t
        return op.result, self.activations.get(self.keys.get(op.result))

    @staticmethod
    def _quantized(op, xq, w, bias, result_type, input_types, out_type) -> Operation:
        if isinstance(op, graph.MatMulOp):
            return quant.MatMulOp(xq, w, result_type, input_types=input_types, type=out_type)
        if isinstance(op, graph.GemmOp):
            return quant.GemmOp(xq, w, bias, result_type, input_types=input_types, type=out_type)
        return quant.ConvOp(xq, w, bias, result_type, input_types=input_types, type=out_type, group=op.groups,
                            **{n: op.ints(n) for n in ("strides", "dilations", "pads")})


class QuantizeStaticAdd(QuantizeStaticLayer):
    """A float32 Add of two calibrated values (a residual Add) -> quant.add of their codes, so a
    ResNet block stays int8 from one convolution to the next."""

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if not isinstance(op, graph.AddOp) or graph.activation_of(op) is not None \
                or "Add" in self.exclude or node_name(op) in self.exclude:
            return
        out, out_type = self._output(op)
        types = [self._type(v) for v in (op.lhs, op.rhs)]
        if out_type is None or None in types:
            return
        new: list[Operation] = []
        codes = []
        for v, t in zip((op.lhs, op.rhs), types):
            if (dq := defining(v, quant.DequantizeOp)) is not None:
                codes.append(dq.input)
            else:
                new.append(q := quant.QuantizeOp(v, _storage_type(v.type, t), type=t))
                codes.append(q.result)
        add = quant.AddOp(*codes, _storage_type(op.result.type, out_type), input_types=types, type=out_type)
        new += [add, dq := quant.DequantizeOp(add.result, op.result.type, type=out_type)]
        if out is not op.result:  # the Relu the output clamp computes
            rewriter.replace_all_uses_with(out, dq.result)
            rewriter.erase_op(out.owner)
        rewriter.replace(op, new, [dq.result])
        self.stats.nodes_added += len(new) - 1

    def _type(self, v: SSAValue) -> quant.UniformQuantType | None:
        """A float operand's per-tensor type: its dequantize's, or its calibrated one."""
        dq = defining(v, quant.DequantizeOp)
        t = dq.type if dq is not None else self.activations.get(self.keys.get(v))
        return None if t is None or t.per_axis else t


class CancelRequantize(RewritePattern):
    """quantize<t>(dequantize<t>(q)) -> q: a value quantized before its producer was."""

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if isinstance(op, quant.QuantizeOp) and (dq := defining(op.input, quant.DequantizeOp)) is not None \
                and dq.type == op.type:
            rewriter.replace(op, [], [dq.input])


class SinkDequantize(RewritePattern):
    """op(dequantize<t>(q)) -> dequantize<t>(op(q)) for the ops of CODE_EXACT_OPS."""

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if not isinstance(op, CODE_EXACT_OPS) or (dq := defining(op.operands[0], quant.DequantizeOp)) is None:
            return
        if dq.type.per_axis or graph.dtype_of(op.result.type) is not DType.FLOAT32:
            return
        moved = type(op).create(operands=[dq.input, *op.operands[1:]],
                                result_types=[_storage_type(op.result.type, dq.type)],
                                properties=dict(op.properties), attributes=dict(op.attributes))
        rewriter.replace(op, [moved, out := quant.DequantizeOp(moved.results[0], op.result.type, type=dq.type)],
                         [out.result])


@dataclass
class DequantizeInEpilogue(RewritePattern):
    """dequantize(quant.matmul / gemm(xq, w, bias)) whose codes nothing else reads ->
    cast<f32>(quant.matmul_integer(xq, w, x_zp, 0)) * (x_scale x w_scale) + bias: the product
    rescaled to float32 where it is made instead of rounded to the result's 8-bit grid. The
    activation is uint8 (the integer GEMM's A)."""

    weights: WeightTable
    stats: PassStats

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if not isinstance(op, quant.DequantizeOp) or not op.input.has_one_use():
            return
        layer = op.input.owner
        if not isinstance(layer, (quant.MatMulOp, quant.GemmOp)) \
                or isinstance(layer, quant.GemmOp) and layer.trans_b.value.data:
            return
        x, w = layer.quantized_operands
        x_type, w_type = layer.input_types.data[:2]
        bias = layer.bias if isinstance(layer, quant.GemmOp) else None
        bias_codes = None if bias is None else constant_array(bias, self.weights)
        if x_type.kind is not quant.Storage.U8 or x_type.per_axis or w_type.kind is not quant.Storage.I8 \
                or any(w_type.zero_point_values) or constant_array(w, self.weights) is None \
                or bias is not None and bias_codes is None:
            return
        hint = node_name(layer) or layer.name.replace(".", "_")
        scales = np.float32(x_type.scale_values[0]) * np.array(w_type.scale_values, np.float32)
        new = [x_zp := make_constant(np.array(x_type.zero_point_values[0], np.uint8), f"{hint}_zero_point",
                                     self.weights, 1),
               w_zp := make_constant(np.zeros((), np.int8), f"{hint}_weight_zero_point", self.weights, 1),
               product := quant.MatMulIntegerOp(x, w, x_zp.result, w_zp.result, TensorType(graph.element_type(DType.INT32), op.result.type.get_shape())),
               wide := gm.CastOp(product.result, op.result.type, to=DType.FLOAT32.value),
               scale := make_constant(scales if w_type.per_axis else scales.reshape(()), f"{hint}_scale",
                                      self.weights, 1),
               y := graph.MulOp(wide.result, scale.result, op.result.type)]
        if bias_codes is not None:
            new.append(b := make_constant(bias_codes.astype(np.float32) * scales, f"{hint}_bias", self.weights, 1))
            new.append(y := graph.AddOp(y.result, b.result, op.result.type))
        rewriter.replace(op, new, [y.result])
        rewriter.erase_op(layer)
        self.stats.nodes_added += len(new) - 2


@register_pass
@dataclass(frozen=True)
class QuantizeStaticInt8(GraphPass):
    name = "quantize-static-int8"

    activations: tuple[str, ...] = ()
    activation_storage: str = "u8"
    per_channel: bool = False
    exclude: tuple[str, ...] = ()

    def rewrite(self, module: ModuleOp, weights: WeightTable, stats: PassStats) -> bool:
        types = decode_activations(self.activations, self.activation_storage)
        keys = value_keys(graph.entry_function(module))
        changed = apply_patterns(module, [
            QuantizeStaticLayer(types, keys, frozenset(self.exclude), self.per_channel, weights, stats),
            QuantizeStaticAdd(types, keys, frozenset(self.exclude), self.per_channel, weights, stats),
            CancelRequantize(), SinkDequantize()])
        apply_patterns(module, [DequantizeInEpilogue(weights, stats)])
        stats.initializers_removed += weights.prune(referenced_weights(module))
        return changed
