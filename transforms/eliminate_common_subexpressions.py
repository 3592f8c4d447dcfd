"""`eliminate-common-subexpressions`: one node per (op, operands, attributes, properties).

xDSL's CSE driver does the matching (op name, operands, result types, attributes
and properties all compared). Before it runs, constants whose weights hold
byte-identical arrays are made to refer to one weight (tied or duplicated
initializers), so CSE merges them and everything computed from them.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

from xdsl.dialects.builtin import ModuleOp, SymbolRefAttr
from xdsl.transforms.common_subexpression_elimination import cse

from pyflame_rt.dialects import graph
from pyflame_rt.dialects.weights import WeightTable
from pyflame_rt.transforms.graph_pass import GraphPass, PassStats
from pyflame_rt.transforms.registry import register_pass


def unify_duplicate_weights(module: ModuleOp, weights: WeightTable) -> int:
    """Point constants at the first weight with identical dtype, shape and bytes; returns how many moved.
    Only weights that agree in dtype, shape and their first and last elements are hashed."""
    unhashed: dict[tuple, str] = {}  # sample -> the one weight seen with it (not hashed)
    by_digest: dict[tuple, dict[bytes, str]] = {}  # sample -> digest -> the first weight with it
    moved = 0
    for op in module.walk():
        if not isinstance(op, graph.ConstantOp) or op.weight_name not in weights:
            continue
        name = op.weight_name
        sample = _sample(weights[name])
        if sample not in by_digest:
            first = unhashed.setdefault(sample, name)
            if first == name:
                continue
            by_digest[sample] = {_digest(weights[unhashed.pop(sample)]): first}
        kept = by_digest[sample].setdefault(_digest(weights[name]), name)
        if kept != name:
            op.weight = SymbolRefAttr(kept)
            moved += 1
    return moved


def _sample(arr) -> tuple:
    """Equal for identical arrays: dtype, shape, the first and last elements' bytes."""
    flat = arr.reshape(-1)
    return arr.dtype.str, arr.shape, flat[:4].tobytes(), flat[-4:].tobytes()


def _digest(arr) -> bytes:
    return hashlib.blake2b(arr.tobytes(), digest_size=16).digest()


@register_pass
@dataclass(frozen=True)
class EliminateCommonSubexpressions(GraphPass):
    """Merge nodes computing the same thing (op, operands, attributes, properties compared)."""

    name = "eliminate-common-subexpressions"

    def rewrite(self, module: ModuleOp, weights: WeightTable, stats: PassStats) -> bool:
        moved = unify_duplicate_weights(module, weights)
        ops_before = sum(1 for _ in module.walk())
        # node names differ between otherwise identical ops: CSE compares without them, and an op it
        # keeps keeps its own name
        names = {op: op.attributes.pop(graph.NODE_NAME) for op in module.walk() if graph.NODE_NAME in op.attributes}
        cse(module)
        for op, name in names.items():
            if op.parent is not None:
                op.attributes[graph.NODE_NAME] = name
        return moved > 0 or sum(1 for _ in module.walk()) != ops_before
