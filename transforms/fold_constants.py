"""`fold-constants`: nodes whose operands are all constants become constants.

Values come from the reference evaluator (`pyflame_rt.dialects.reference`), the same numpy
semantics the conformance tests check. A folded result with at most
`inline-elements` elements (shape vectors, scalars) is written inline as a dense
value, so later folds and importer-style consumers can read it from the IR;
larger ones become new weights (`graph.constant @<name>_folded`).
Limits: results larger than `max-bytes` are not folded; with
`fold-expensive=false` MatMul/Gemm/Conv-like nodes are left alone; `exclude`
lists op names ("graph.matmul" or "matmul") never to fold.

A `graph.bind_dims` of a constant (sizes computed from constants only) binds static sizes: they
replace its dims wherever the function names them (`BindConstantDims`), so nothing is left to bind
at run time; a refused validity flag or a negative size is a ShapeMismatchError at compile time.
"""
from __future__ import annotations

from dataclasses import dataclass
from math import prod

from xdsl.dialects import func
from xdsl.dialects.builtin import DYNAMIC_INDEX, ArrayAttr, DictionaryAttr, ModuleOp, StringAttr
from xdsl.ir import Attribute, Operation
from xdsl.pattern_rewriter import PatternRewriter, RewritePattern, op_type_rewrite_pattern
from xdsl.traits import MemoryWriteEffect

from pyflame_rt.dialects import graph
from pyflame_rt.dialects.graph_tensor import BindDimsOp
from pyflame_rt.dialects.symbolic import parse_dim
from pyflame_rt.dialects.weights import WeightTable
from pyflame_rt.errors import PyFlameRTError, ShapeMismatchError
from pyflame_rt.dialects.reference import evaluate_op, has_reference
from pyflame_rt.transforms.graph_pass import GraphPass, PassStats, apply_patterns, constant_array, make_constant
from pyflame_rt.transforms.registry import register_pass

# more than linear work in their output size: folding them may cost real compile time
EXPENSIVE_OPS = frozenset({"graph.matmul", "graph.gemm", "graph.conv", "graph.conv_transpose",
                           "graph.einsum"})


@dataclass
class FoldToConstant(RewritePattern):
    weights: WeightTable
    stats: PassStats
    config: "FoldConstants"

    def foldable(self, op: Operation) -> bool:
        short = op.name.split(".", 1)[-1]
        c = self.config
        return (isinstance(op, graph.GraphOp) and not isinstance(op, graph.ConstantOp)
                and not op.has_trait(MemoryWriteEffect)  # a binding is not a value
                and has_reference(op) and op.name not in c.exclude and short not in c.exclude
                and (c.fold_expensive or op.name not in EXPENSIVE_OPS)
                and all(DYNAMIC_INDEX not in r.type.get_shape() for r in op.results))

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if not self.foldable(op):
            return
        inputs = [constant_array(v, self.weights) for v in op.operands]
        if any(x is None for x in inputs):
            return
        if sum(_nbytes(r.type) for r in op.results) > self.config.max_bytes:
            return
        try:
            outs = evaluate_op(op, inputs)
        except (PyFlameRTError, ArithmeticError, ValueError):
            return  # leave it for run time, where the same error surfaces with context
        hint = f"{op.results[0].name_hint or op.name.split('.', 1)[-1]}_folded"
        consts = [make_constant(o, hint, self.weights, self.config.inline_elements) for o in outs]
        rewriter.replace(op, consts, [c.result for c in consts])
        self.stats.constants_folded += 1


@dataclass
class BindConstantDims(RewritePattern):
    """graph.bind_dims of a constant: its values replace its dims in the function's dim texts (op
    properties, the entry's graph.dims) and the op goes, its result being its input. Left for run
    time where a dim is a term of a sum symbol (`past+n`), which has no text for a partial value."""

    weights: WeightTable
    stats: PassStats

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: BindDimsOp, rewriter: PatternRewriter) -> None:
        arr = constant_array(op.input, self.weights)
        if arr is None:
            return
        values = dict(zip(op.dim_names(), (int(v) for v in arr.reshape(-1))))
        _check_bound(op, values)
        fn = op.parent_op()
        while not isinstance(fn, func.FuncOp):
            fn = fn.parent_op()
        if not _substitute_dims(fn, values, skip=op):
            return
        rewriter.replace(op, [], [op.input])
        self.stats.constants_folded += 1


def _check_bound(op: BindDimsOp, values: dict[str, int]) -> None:
    """What the run checks of bound values: the validity flag is 1, no size is negative."""
    flag = op.dim_names()[0]
    if op.refusal is not None and values[flag] != 1:
        raise ShapeMismatchError(f"{graph.node_label(op)}: {op.refusal.data} (constant values)")
    for dim, value in values.items():
        if value < 0:
            raise ShapeMismatchError(f"{graph.node_label(op)}: the size '{dim}' computed from constants is {value}")


def _substitute_dims(fn: func.FuncOp, values: dict[str, int], skip: Operation) -> bool:
    """Replace the dims `values` binds in every dim text of `fn` but `skip`'s; False (and nothing
    changed) where one is a term of a sum symbol."""
    props = [(op.properties, key, _substituted(attr, values))
             for op in fn.walk() if op is not skip for key, attr in op.properties.items()]
    io = {name: _substituted_io(attrs, values)
          for name in ("arg_attrs", "res_attrs") if (attrs := getattr(fn, name)) is not None}
    if any(attr is None for *_, attr in props) or any(attrs is None for attrs in io.values()):
        return False
    for table, key, attr in props:
        table[key] = attr
    for name, attrs in io.items():
        setattr(fn, name, attrs)
    return True


def _substituted(attr: Attribute, values: dict[str, int]) -> Attribute | None:
    """`attr` with the bound dims replaced in its dim texts (itself when it names none; None where
    one is a term of a sum symbol)."""
    if isinstance(attr, ArrayAttr):
        items = [_substituted(a, values) for a in attr.data]
        if any(a is None for a in items):
            return None
        return attr if all(a is b for a, b in zip(items, attr.data)) else ArrayAttr(items)
    if not isinstance(attr, StringAttr):
        return attr
    factors = attr.data.split("*")
    if not any(f in values for f in factors):
        return None if any(t in values for f in factors for t in f.split("+")) else attr
    return StringAttr(str(parse_dim("*".join(str(values.get(f, f)) for f in factors))))


def _substituted_io(attrs: ArrayAttr, values: dict[str, int]) -> ArrayAttr | None:
    """An entry's argument or result attributes with the bound dims replaced in their graph.dims
    (None where one is a term of a sum symbol)."""
    out = []
    for d in attrs.data:
        dims = d.data.get(graph.ARG_DIMS)
        new = dims if dims is None else _substituted(dims, values)
        if dims is not None and new is None:
            return None
        out.append(d if new is dims else DictionaryAttr({**d.data, graph.ARG_DIMS: new}))
    return ArrayAttr(out)


def _nbytes(t) -> int:
    return prod(t.get_shape()) * graph.dtype_of(t).itemsize  # Python ints: no int64 wrap-around


@register_pass
@dataclass(frozen=True)
class FoldConstants(GraphPass):
    """Evaluate nodes whose inputs are all constants (results become inline values or weights)."""

    name = "fold-constants"
    max_bytes: int = 64 << 20
    fold_expensive: bool = True
    exclude: tuple[str, ...] = ()
    inline_elements: int = 16

    def rewrite(self, module: ModuleOp, weights: WeightTable, stats: PassStats) -> bool:
        return apply_patterns(module, [BindConstantDims(weights, stats), FoldToConstant(weights, stats, self)])
