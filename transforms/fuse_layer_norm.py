"""`fuse-layer-norm`: the decomposed LayerNorm exporters emit becomes one `graph.layer_norm`.

    mean = ReduceMean(x, axes)          d = x - mean
    var  = ReduceMean(d * d | d ** 2)   y = d / Sqrt(var + eps) * gamma (+ beta)

`axes` must be the trailing dims, gamma/beta constants shaped like them (or
broadcastable to them), and every intermediate value used only inside the
subgraph.
"""
from __future__ import annotations

from dataclasses import dataclass

from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import SSAValue
from xdsl.pattern_rewriter import PatternRewriter, RewritePattern, op_type_rewrite_pattern

from pyflame_rt.dialects import graph, graph_math, graph_reduce
from pyflame_rt.dialects.weights import WeightTable
from pyflame_rt.transforms.graph_pass import (
    GraphPass, PassStats, apply_patterns, constant_array, defining, only_used_by, operand_pairs,
    scalar_constant, single_use)
from pyflame_rt.transforms.registry import register_pass


@dataclass
class LayerNormMatch:
    x: SSAValue
    axis: int
    eps: float
    ops: list  # the subgraph's ops, root last


def match_normalized(n: SSAValue, weights: WeightTable) -> LayerNormMatch | None:
    """n = (x - mean(x)) / sqrt(mean((x - mean(x))^2) + eps)."""
    div = defining(n, graph.DivOp)
    sqrt = div and defining(div.rhs, graph_math.SqrtOp)
    add_eps = sqrt and defining(sqrt.input, graph.AddOp)
    if add_eps is None or graph.activation_of(add_eps) is not None:
        return None
    for var, eps_v in operand_pairs(add_eps):
        eps = scalar_constant(eps_v, weights)
        var_op = defining(var, graph_reduce.ReduceOp)
        if eps is not None and var_op is not None:
            break
    else:
        return None
    sq = var_op.input.owner
    d = div.lhs
    sub = defining(d, graph.SubOp)
    mean_op = sub and defining(sub.rhs, graph_reduce.ReduceOp)
    if mean_op is None or mean_op.input != sub.lhs or not _squares(sq, d, weights):
        return None
    x = sub.lhs
    rank = len(x.type.get_shape())
    axes = mean_op.axes_for(rank)
    for r in (mean_op, var_op):
        if r.kind.data != "mean" or not r.keepdims.value.data or r.axes_for(rank) != axes:
            return None
    if axes != tuple(range(axes[0], rank)):
        return None
    ops = [mean_op, sub, sq, var_op, add_eps, sqrt, div]
    inner = [mean_op.result, sq.results[0], var_op.result, add_eps.result, sqrt.result]
    if not all(single_use(v) for v in inner) or not only_used_by(d, {sq, div}):
        return None
    return LayerNormMatch(x, axes[0], eps, ops)


def _squares(op, d: SSAValue, weights: WeightTable) -> bool:
    if isinstance(op, graph.MulOp):
        return op.lhs == d and op.rhs == d
    return isinstance(op, graph_math.PowOp) and op.lhs == d and scalar_constant(op.rhs, weights) == 2.0


@dataclass
class FuseDecomposedLayerNorm(RewritePattern):
    weights: WeightTable
    stats: PassStats

    @op_type_rewrite_pattern
    def match_and_rewrite(self, mul: graph.MulOp, rewriter: PatternRewriter) -> None:
        """Matched at the gamma Mul; a following Add of a constant beta joins the subgraph."""
        if single_use(mul.result):
            add = next(iter(mul.result.uses)).operation
            if isinstance(add, graph.AddOp) and graph.activation_of(add) is None:
                beta = add.rhs if add.lhs == mul.result else add.lhs
                if self.fits(beta, mul.result.type) and self.try_fuse(add, mul, beta, rewriter):
                    return
        self.try_fuse(mul, mul, None, rewriter)

    def try_fuse(self, root, mul: graph.MulOp, beta: SSAValue | None, rewriter: PatternRewriter) -> bool:
        for n, gamma in operand_pairs(mul):
            m = match_normalized(n, self.weights) if single_use(n) else None
            if m is None or root.result.type != m.x.type or not self.fits(gamma, m.x.type, m.axis):
                continue
            rewriter.replace(root, graph_reduce.LayerNormOp(m.x, gamma, beta, root.result.type, axis=m.axis,
                                                            epsilon=m.eps))
            self.stats.nodes_fused += len(m.ops) + (1 if beta is not None else 0)
            return True
        return False

    def fits(self, p: SSAValue, x_type, axis: int = -1) -> bool:
        """A constant that broadcasts to the normalized dims (LayerNorm's scale/bias rule)."""
        arr = constant_array(p, self.weights)
        shape = x_type.get_shape()
        if not shape:  # a scalar has no dims to normalize
            return False
        norm = shape[axis % len(shape):]
        return arr is not None and arr.ndim <= len(norm) and all(
            a in (1, n) for a, n in zip(arr.shape[::-1], norm[::-1]))


@register_pass
@dataclass(frozen=True)
class FuseLayerNorm(GraphPass):
    """Decomposed LayerNorm (ReduceMean, Sub, Pow/Mul, ReduceMean, Add, Sqrt, Div, Mul, Add) -> graph.layer_norm."""

    name = "fuse-layer-norm"

    def rewrite(self, module: ModuleOp, weights: WeightTable, stats: PassStats) -> bool:
        return apply_patterns(module, [FuseDecomposedLayerNorm(weights, stats)])
