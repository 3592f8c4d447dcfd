"""BatchNorm (inference), InstanceNorm, LRN -> per-plane kernels (kernels/channel.py), float32 or float64."""
from __future__ import annotations

import numpy as np
from xdsl.pattern_rewriter import PatternRewriter, op_type_rewrite_pattern

from pyflame_rt.dialects import graph_nn as nn
from pyflame_rt.dialects.symbolic import Dim, dim_mul, numel
from pyflame_rt.dtype import DType
from pyflame_rt.errors import UnsupportedOperatorError
from pyflame_rt.targets.cpu.kernels.channel import PLANE_FIELDS, PlaneSpec, plane_kernel
from pyflame_rt.targets.cpu.lowerings.pattern import GraphToKernelPattern


def emit_plane(L, op, mode: str, x, out, n: Dim, c: Dim, p: Dim, *, s=None, t=None, aux=None, lrn=(0, 0),
               stats=(None, None), activation: str = "none") -> None:
    """A plane kernel over n * c planes of p elements; s, t, aux and the stats: the buffers of the
    modes that read or write them."""
    dtype = _plane_dtype(L, op)
    spec = PlaneSpec(mode, L.target.vector_width * 4 // dtype.itemsize, activation, dtype)
    name = L.kernel(spec.name, lambda: plane_kernel(spec))
    buffers = {"s": s, "t": t, "aux": aux, "mean": stats[0], "var": stats[1]}
    f = {"x": x, "out": out, "c": c, "p": p, "lrn_pre": lrn[0], "lrn_post": lrn[1],
         **{k: L.null_buffer if b is None else b for k, b in buffers.items()}}
    L.call(name, [f[k] for k in PLANE_FIELDS], dim_mul(n, c), work_per_item=p)


def _plane_dtype(L, op) -> DType:
    """The plane kernel's type: the op's, float32 or float64."""
    dtype = L.dtype(op.results[0])
    if dtype not in (DType.FLOAT32, DType.FLOAT64):
        raise UnsupportedOperatorError(f"the CPU backend runs {op.name} on float32 and float64 only, not {dtype.value}")
    return dtype


def _channel_param(L, op, v, what: str):
    """A per-channel parameter's storage: a constant becomes a weight of the op's type, a run-time tensor
    of that type is read in place."""
    dtype = _plane_dtype(L, op)
    arr = L.const_value(v)
    if arr is not None:
        return L.add_weight(what, arr.astype(dtype.numpy))
    if L.dtype(v) is not dtype:
        raise UnsupportedOperatorError(f"the CPU backend needs a {dtype.value} {what}, got {L.dtype(v).value}")
    return L.loc(v)


def _epsilon(L, op):
    return L.add_weight("norm_eps", np.array([op.epsilon.value.data], _plane_dtype(L, op).numpy))


class LowerBatchNorm(GraphToKernelPattern):
    """Constant parameters fold into one scale and shift at compile time; otherwise the kernel reads
    them at run time."""

    float32_only = (nn.BatchNormOp,)

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: nn.BatchNormOp, rewriter: PatternRewriter) -> None:
        self.convert(op, rewriter)

    def lower(self, L, op: nn.BatchNormOp) -> None:
        shape = L.shapes[op.input]
        params = (op.scale, op.bias, op.mean, op.var)
        plane = (L.loc(op.input), L.result_loc(op.result), shape[0], shape[1], numel(shape[2:]))
        consts = [L.const_value(v) for v in params]
        if all(a is not None for a in consts):
            scale, bias, mean, var = (a.astype(np.float64) for a in consts)
            s = scale / np.sqrt(var + op.epsilon.value.data)
            t = bias - mean * s
            dtype = _plane_dtype(L, op).numpy
            emit_plane(L, op, "affine", *plane, s=L.add_weight("bn_scale", s.astype(dtype)),
                       t=L.add_weight("bn_shift", t.astype(dtype)))
            return
        s, t, mean, var = (_channel_param(L, op, v, f"BatchNormalization {w}")
                           for v, w in zip(params, ("scale", "bias", "mean", "var")))
        emit_plane(L, op, "batch_norm", *plane, s=s, t=t, stats=(mean, var), aux=_epsilon(L, op))


class LowerInstanceNorm(GraphToKernelPattern):
    float32_only = (nn.InstanceNormOp,)

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: nn.InstanceNormOp, rewriter: PatternRewriter) -> None:
        self.convert(op, rewriter)

    def lower(self, L, op: nn.InstanceNormOp) -> None:
        shape = L.shapes[op.input]
        emit_plane(L, op, "instance_norm", L.loc(op.input), L.result_loc(op.result), shape[0], shape[1],
                   numel(shape[2:]), s=_channel_param(L, op, op.scale, "InstanceNormalization scale"),
                   t=_channel_param(L, op, op.bias, "InstanceNormalization bias"), aux=_epsilon(L, op))


class LowerLRN(GraphToKernelPattern):
    float32_only = (nn.LRNOp,)

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: nn.LRNOp, rewriter: PatternRewriter) -> None:
        self.convert(op, rewriter)

    def lower(self, L, op: nn.LRNOp) -> None:
        shape = L.shapes[op.input]
        size = op.size.value.data
        consts = np.array([op.bias.value.data, op.alpha.value.data / size, -op.beta.value.data],
                          _plane_dtype(L, op).numpy)
        emit_plane(L, op, "lrn", L.loc(op.input), L.result_loc(op.result), shape[0], shape[1], numel(shape[2:]),
                   aux=L.add_weight("lrn_consts", consts), lrn=((size - 1) // 2, size - 1 - (size - 1) // 2))


PATTERNS = (LowerBatchNorm, LowerInstanceNorm, LowerLRN)
