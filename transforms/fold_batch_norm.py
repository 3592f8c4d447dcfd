"""`fold-batch-norm`: inference BatchNormalization disappears into constants.

With s = scale / sqrt(var + eps) per channel, BN(x) = x * s + (beta - mean * s).
After a graph.conv with constant weight (and bias) whose result feeds only the BN,
that affine map folds into the convolution: W' = W * s per output channel and
b' = (b - mean) * s + beta. Any other BN with constant parameters becomes a
`graph.mul_add` with [C, 1, ...] constants, so a following Relu fuses into it.
The folded tensors are new `graph.weight`s; eliminate-dead-code drops the
old ones once nothing refers to them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from xdsl.dialects.builtin import ModuleOp
from xdsl.pattern_rewriter import PatternRewriter, RewritePattern, op_type_rewrite_pattern

from pyflame_rt.dialects import graph, graph_fused
from pyflame_rt.dialects import graph_nn as nn
from pyflame_rt.dialects.weights import WeightTable
from pyflame_rt.transforms.graph_pass import (
    GraphPass, PassStats, apply_patterns, constant_array, defining, make_constant, single_use)
from pyflame_rt.transforms.registry import register_pass


def affine_params(bn: nn.BatchNormOp, weights: WeightTable) -> tuple[np.ndarray, np.ndarray] | None:
    """(s, t) with BN(x) = x * s + t per channel, in float64; None unless all four are constants."""
    params = [constant_array(v, weights) for v in (bn.scale, bn.bias, bn.mean, bn.var)]
    if any(p is None for p in params):
        return None
    scale, beta, mean, var = (p.astype(np.float64).reshape(-1) for p in params)
    s = scale / np.sqrt(var + bn.epsilon.value.data)
    return s, beta - mean * s


def folded_name(v, suffix: str) -> str:
    owner = v.owner
    name = owner.weight_name if isinstance(owner, graph.ConstantOp) else None
    return f"{name or v.name_hint or 'conv'}_{suffix}"


@dataclass
class FoldIntoConv(RewritePattern):
    """conv(x, W, b) -> BN  ==>  conv(x, W * s, (b - mean) * s + beta)."""

    weights: WeightTable
    stats: PassStats

    @op_type_rewrite_pattern
    def match_and_rewrite(self, bn: nn.BatchNormOp, rewriter: PatternRewriter) -> None:
        conv = defining(bn.input, nn.ConvOp)
        if (conv is None or conv.residual is not None or conv.activation is not None
                or not single_use(bn.input) or bn.result.type != conv.result.type):
            return
        w = constant_array(conv.weight, self.weights)
        b = constant_array(conv.bias, self.weights) if conv.bias is not None else 0.0
        affine = affine_params(bn, self.weights)
        if w is None or b is None or affine is None:
            return
        s, t = affine
        dt = w.dtype
        w_op = make_constant((w * s.reshape((-1,) + (1,) * (w.ndim - 1))).astype(dt),
                             folded_name(conv.weight, "bn"), self.weights, inline_elements=0)
        b_hint = folded_name(conv.bias, "bn") if conv.bias is not None else folded_name(conv.weight, "bn_bias")
        b_op = make_constant((np.asarray(b, np.float64) * s + t).astype(dt), b_hint, self.weights, inline_elements=0)
        new = conv.rebuilt(weight=w_op.result, bias=b_op.result, result_type=bn.result.type)
        rewriter.replace(bn, [w_op, b_op, new], [new.result])
        rewriter.erase(conv)
        self.stats.nodes_fused += 1


@dataclass
class BatchNormToMulAdd(RewritePattern):
    """BN with constant parameters (not after a foldable conv) -> mul_add(x, s, t), s and t [C, 1, ...]
    (a one-for-one replacement: the PassManager's node counts record it)."""

    weights: WeightTable

    @op_type_rewrite_pattern
    def match_and_rewrite(self, bn: nn.BatchNormOp, rewriter: PatternRewriter) -> None:
        affine = affine_params(bn, self.weights)
        if affine is None:
            return
        dt = graph.dtype_of(bn.input.type).numpy
        shape = (-1,) + (1,) * (bn.input.type.get_num_dims() - 2)
        s_op, t_op = (make_constant(p.astype(dt).reshape(shape), folded_name(bn.scale, f"bn_{what}"),
                                    self.weights, inline_elements=0)
                      for p, what in zip(affine, ("mul", "add")))
        new = graph_fused.MulAddOp(bn.input, s_op.result, t_op.result, bn.result.type)
        rewriter.replace(bn, [s_op, t_op, new], [new.result])


@register_pass
@dataclass(frozen=True)
class FoldBatchNorm(GraphPass):
    """BatchNorm after a single-use constant Conv -> folded into its weights; other BN -> mul_add."""

    name = "fold-batch-norm"

    def rewrite(self, module: ModuleOp, weights: WeightTable, stats: PassStats) -> bool:
        return apply_patterns(module, [FoldIntoConv(weights, stats), BatchNormToMulAdd(weights)])
