"""Sizes derived at run time from a small integer tensor the import cannot evaluate.

A shape-determining operand (Reduce / Squeeze / Unsqueeze axes, a Reshape shape, a CumSum axis,
Slice starts, Pad pads, ...) that is a graph input or computed from tensor values does not give
the result's dims directly: they follow from its values and the input's shape (an axis selects
which dims are kept, a 0 copies a dim, -1 is inferred). `ShapeArithmetic` emits that arithmetic as
ordinary graph ops on int64 tensors of static shape (the input's shape enters as a
`graph.dim_values` of its symbolic dims), then `bind` binds the elements of the computed tensor to
new dims (`graph.bind_dims`: the run binds them once the tensor is computed, value_dims.py /
stepped_run.py) and returns them as SymDims, for the shapes of the ops that follow.

Invalid values (an axis out of range or repeated, two -1 in a Reshape shape) are caught by
`bind`'s `valid` flag and its reason `why`: it binds a dim `..._valid` that is 0 when they are,
required to be 1 by a shape assumption whose text is the reason, so the ShapeMismatchError raised
before any kernel that depends on the dims runs says what is wrong. The element-count relations
the ops after it rely on (a Reshape to the derived dims) are shape assumptions too, checked once
the dims are bound. A flag and dims computed from constants only become static at compile time
(fold-constants): an invalid flag is then a compile-time ShapeMismatchError with the reason.

Usage, inside a converter:

    sa = ShapeArithmetic(ctx)
    axes = sa.operand(1)                           # the node's input 1 as int64 [k]
    ins = sa.dims(ctx.shape(ctx.input(0)))         # the input's dims as int64 [rank]
    kept = sa.where(sa.eq(...), 1, ins)            # numpy-broadcasting arithmetic, ints are constants
    dims = sa.bind(kept, "kept", valid=ok, why="axes out of range or repeated")  # -> [SymDim, ...]
    ctx.emit(graph.ReshapeOp, [x], shape=dims)
"""
from __future__ import annotations

from typing import Sequence, Union

import numpy as np
from xdsl.ir import SSAValue

from pyflame_rt.dialects import graph, graph_math as gm, graph_nn as nn, graph_reduce as gr
from pyflame_rt.dialects.graph_tensor import BindDimsOp, DimValuesOp
from pyflame_rt.dialects.symbolic import Dim, SymDim
from pyflame_rt.dtype import DType
from pyflame_rt.importers.onnx.converters import _NodeContext

Operand = Union[SSAValue, int, Sequence[int]]  # an int64 (or bool) tensor, or constant ints


def known_only_at_run_time(ctx: _NodeContext, i: int) -> bool:
    """Whether the node's input i is present, has elements and is not known at import: a graph
    input, or computed from tensor values (an empty one, such as empty axes, is known: empty)."""
    v = ctx.input(i)
    return v is not None and ctx.const_input(i) is None and 0 not in ctx.shape(v)


class ShapeArithmetic:
    """Int64 arithmetic on small tensors, emitted as graph ops of the node `ctx` converts. Operands
    are tensors or Python ints / int lists (made int64 constants); shapes broadcast as in numpy."""

    def __init__(self, ctx: _NodeContext):
        self.ctx = ctx

    # ------------------------------------------------------------ values
    def const(self, values: int | Sequence[int]) -> SSAValue:
        arr = np.asarray(values, dtype=np.int64)
        return self.ctx.importer.add_constant(f"{self._base()}_c", arr)

    def dims(self, dims: Sequence[Dim]) -> SSAValue:
        """The dims (ints or symbolic) as an int64 tensor [len(dims)]."""
        op = DimValuesOp(list(dims), (len(dims),), DType.INT64)
        self.ctx.importer.builder.insert(op)
        self.ctx.importer.shapes[op.result] = (len(dims),)
        return op.result

    def operand(self, i: int) -> SSAValue:
        """The node's input i, an integer tensor of static shape, as int64 [size] (a scalar: [1])."""
        v = self.ctx.input(i)
        shape = self.ctx.shape(v)
        if not all(isinstance(d, int) for d in shape):
            raise self.ctx.fail(f"input {i} sets sizes and must have a static shape, got {list(map(str, shape))}")
        v = self.cast(v)
        return v if len(shape) == 1 else self.reshape(v, [int(np.prod(shape))])

    def size(self, v: SSAValue) -> int:
        """The element count of a 1-D operand."""
        return int(np.prod(self.ctx.shape(v)))

    # -------------------------------------------------------- arithmetic
    def add(self, a: Operand, b: Operand) -> SSAValue:
        return self._binary(graph.AddOp, a, b)

    def sub(self, a: Operand, b: Operand) -> SSAValue:
        return self._binary(graph.SubOp, a, b)

    def mul(self, a: Operand, b: Operand) -> SSAValue:
        return self._binary(graph.MulOp, a, b)

    def div(self, a: Operand, b: Operand) -> SSAValue:
        """a / b rounded toward zero; a divisor below 1 counts as 1 (no division by zero at run time)."""
        return self._binary(graph.DivOp, a, self.max(b, 1))

    def max(self, a: Operand, b: Operand) -> SSAValue:
        return self._binary(gm.MaxOp, a, b)

    def min(self, a: Operand, b: Operand) -> SSAValue:
        return self._binary(gm.MinOp, a, b)

    def eq(self, a: Operand, b: Operand) -> SSAValue:
        return self._binary(gm.EqualOp, a, b)

    def lt(self, a: Operand, b: Operand) -> SSAValue:
        return self._binary(gm.LessOp, a, b)

    def where(self, cond: SSAValue, a: Operand, b: Operand) -> SSAValue:
        return self._one(gm.WhereOp, [cond, self._tensor(a), self._tensor(b)])

    def cast(self, v: SSAValue) -> SSAValue:
        """v as int64 (bool: 0 / 1)."""
        if graph.dtype_of(v.type) is DType.INT64:
            return v
        return self._one(gm.CastOp, [v], to=DType.INT64.value)

    def reduce(self, kind: str, v: Operand, axes: Sequence[int] = (), keepdims: bool = False) -> SSAValue:
        """The static reduction `kind` ("sum", "prod", "max", "min") of v (a bool counts 0 / 1)."""
        return self._one(gr.ReduceOp, [self.cast(self._tensor(v))], kind=kind, axes=list(axes), keepdims=keepdims)

    def cumsum(self, v: Operand) -> SSAValue:
        """The inclusive running sum of a 1-D v (a bool counts 0 / 1)."""
        return self._one(gr.CumSumOp, [self.cast(self._tensor(v))], axis=0)

    def reshape(self, v: Operand, shape: Sequence[int]) -> SSAValue:
        return self._one(graph.ReshapeOp, [self._tensor(v)], shape=list(shape))

    def concat(self, parts: Sequence[Operand], axis: int = 0) -> SSAValue:
        return self._one(nn.ConcatOp, [self._tensor(p) for p in parts], axis=axis)

    def lookup(self, keys: Operand, values: Operand, queries: Operand) -> SSAValue:
        """For each query q (1-D), the sum of the values whose key equals q: the value at the position
        with that key when keys are distinct, 0 when none has it. keys and values are 1-D, one size."""
        keys, values, queries = map(self._tensor, (keys, values, queries))
        hit = self.eq(self.reshape(queries, [self.size(queries), 1]), self.reshape(keys, [1, self.size(keys)]))
        return self.reduce("sum", self.mul(self.cast(hit), self.reshape(values, [1, self.size(values)])), [1])

    def both(self, a: SSAValue, b: SSAValue) -> SSAValue:
        """The logical and of two bool tensors."""
        return self._binary(gm.AndOp, a, b)

    def unselected(self, values: Operand, counts: SSAValue, n: int) -> SSAValue:
        """The n values at the positions whose count is 0, in order (1-D, one size with counts):
        the dims a Squeeze or a Reduce without keepdims keeps."""
        free = self.eq(counts, 0)
        keys = self.where(free, self.cumsum(free), -1)
        return self.lookup(keys, values, list(range(1, n + 1)))

    def spread(self, values: Operand, counts: SSAValue) -> SSAValue:
        """1 at the positions whose count is not 0, the values in order at the others: the dims an
        Unsqueeze makes (counts over the result's axes)."""
        free = self.eq(counts, 0)
        values = self._tensor(values)
        picked = self.lookup(list(range(1, self.size(values) + 1)), values, self.cumsum(free))
        return self.where(free, picked, 1)

    def axis_counts(self, axes: SSAValue, rank: int) -> SSAValue:
        """How many of the 1-D `axes` (negative ones count from the end) name each axis of a tensor of
        rank `rank`, as int64 [rank]. The axes are valid (in range, none repeated) exactly when every
        count is 0 or 1 and they add up to the number of axes (`axes_valid`)."""
        normal = self.where(self.lt(axes, 0), self.add(axes, rank), axes)
        return self.reduce("sum", self.eq(self.reshape(normal, [self.size(axes), 1]),
                                          self.const([list(range(rank))])), [0])

    def axes_valid(self, counts: SSAValue, n_axes: int) -> SSAValue:
        """Whether the axes `axis_counts` counted are valid: a bool scalar."""
        return self.eq(self.reduce("sum", self.min(counts, 1)), n_axes)

    # ----------------------------------------------------------- binding
    def bind(self, v: SSAValue | None, what: str, valid: SSAValue | None = None, why: str = "") -> list[SymDim]:
        """Bind the elements of the 1-D int64 v (None: no elements) to new dims named
        `<node output>_<what>_<i>` (run-time dims, bound once v is computed) and return them. With
        the bool scalar `valid`, a dim `<node output>_<what>_valid` is bound first, 1, or 0 where
        `valid` is false: the run then fails with a ShapeMismatchError that gives `why` (what is
        wrong with the values), before any kernel that depends on the dims."""
        base = self._base()
        n = self.size(v) if v is not None else 0
        names = [self.ctx.importer.new_dim(f"{base}_{what}_{i}") for i in range(n)]
        dims = [SymDim.of(name) for name in names]
        refusal = None
        if valid is not None:
            if not why:
                raise ValueError("a validity flag needs the reason it refuses the values for")
            flag = self.cast(self.reshape(valid, [1]))
            v = self.concat([flag, v]) if names else flag
            names.insert(0, self.ctx.importer.new_dim(f"{base}_{what}_valid"))
            refusal = why
        if names:
            op = BindDimsOp(v, names, refusal)
            self.ctx.importer.builder.insert(op)
            # under the node's label: the refusal's shape assumption names the ONNX node
            self.ctx.importer.shapes[op.result] = op.infer_shapes([self.ctx.shape(v)])[0]
        return dims

    # ----------------------------------------------------------- helpers
    def _base(self) -> str:
        node = self.ctx.node
        return node.output[0] or node.name or node.op_type

    def _tensor(self, v: Operand) -> SSAValue:
        return v if isinstance(v, SSAValue) else self.const(v)

    def _binary(self, op_cls, a: Operand, b: Operand) -> SSAValue:
        return self._one(op_cls, [self._tensor(a), self._tensor(b)])

    def _one(self, op_cls, operands: list[SSAValue], **props) -> SSAValue:
        return self.ctx.emit(op_cls, operands, **props)[0]
