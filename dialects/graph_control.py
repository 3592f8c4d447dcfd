"""Control flow at the graph level: `graph.loop`, an ONNX Loop whose trip count or condition is
known only at run time (or a Scan over a dynamic axis), and `graph.if`, an If whose condition is;
their regions read the enclosing function's values.

(An If or Loop known at import, and a Scan over a static axis, are converted in place by the
importer: importers/onnx/ops/control.py.)
"""
from __future__ import annotations

from typing import Callable, Sequence

from xdsl.dialects.builtin import ArrayAttr, StringAttr, TensorType
from xdsl.ir import Block, Region, SSAValue
from xdsl.irdl import (
    AttrSizedOperandSegments, IRDLOperation, irdl_op_definition, operand_def, opt_prop_def, prop_def, region_def,
    traits_def, var_operand_def, var_result_def,
)
from xdsl.traits import IsTerminator, Pure
from xdsl.utils.exceptions import VerifyException

from pyflame_rt.dialects.graph import GraphOp, dtype_of, tensor_type
from pyflame_rt.dialects.graph_tensor import attr_dims, dims_attr
from pyflame_rt.dialects.symbolic import Dim, Shape, parse_dim
from pyflame_rt.dtype import DType


@irdl_op_definition
class YieldOp(IRDLOperation):
    """The end of a loop body: the values the next iteration (and the loop's results) take."""

    name = "graph.yield"
    values = var_operand_def(TensorType)
    traits = traits_def(IsTerminator(), Pure())
    assembly_format = "($values^ `:` type($values))? attr-dict"

    def __init__(self, *values: SSAValue):
        super().__init__(operands=[list(values)])


@irdl_op_definition
class LoopOp(GraphOp):
    """Runs its body while the iteration number is below `trips` and the condition holds.

    The body's arguments are the iteration number (tensor<i64>), the condition (tensor<i1>) and
    the loop-carried values; it yields the next condition, the carried values (of the types they
    came in with) and one slice per scan output. The results are the carried values after the
    last iteration and the scan outputs: the slices stacked along a new axis 0 of `count`, the
    number of iterations run, a dim the run binds after the loop."""

    name = "graph.loop"
    cond = var_operand_def(TensorType)  # the initial condition: none, or one bool element
    carried = var_operand_def(TensorType)
    outs = var_result_def(TensorType)
    trips = prop_def(StringAttr)  # a dim: the most iterations
    count = prop_def(StringAttr)  # the dim bound to the iterations run; `trips` if it never exits early
    body = region_def("single_block")
    irdl_options = (*GraphOp.irdl_options, AttrSizedOperandSegments(as_property=True))

    def __init__(self, cond: SSAValue | None, carried: Sequence[SSAValue], result_types: Sequence[TensorType],
                 trips: Dim, count: str, body: Region):
        super().__init__(operands=[[cond] if cond is not None else [], list(carried)], result_types=[list(result_types)],
                         properties={"trips": StringAttr(str(trips)), "count": StringAttr(count)}, regions=[body])

    @staticmethod
    def body_block(carried: Sequence[SSAValue]) -> Block:
        """A body's block: the iteration number, the condition, then one argument per carried value."""
        return Block(arg_types=[tensor_type((), DType.INT64), tensor_type((), DType.BOOL), *(v.type for v in carried)])

    @property
    def trip_dim(self) -> Dim:
        return parse_dim(self.trips.data)

    @property
    def yielded(self) -> Sequence[SSAValue]:
        return self.body.block.last_op.operands

    def infer_body_shapes(self, shapes: dict, infer_block: Callable[[Block, dict], None]) -> list[Shape]:
        """The shapes of the body's values (into `shapes`) and of the results."""
        block = self.body.block
        shapes[block.args[0]] = shapes[block.args[1]] = ()
        for arg, v in zip(block.args[2:], self.carried):
            shapes[arg] = shapes[v]
        infer_block(block, shapes)
        n = len(self.carried)
        return [*(shapes[v] for v in self.carried),
                *((parse_dim(self.count.data), *shapes[v]) for v in self.yielded[1 + n:])]

    def infer_shapes(self, shapes):
        raise VerifyException("graph.loop: its result shapes come from its body (infer_body_shapes)")

    def verify_(self) -> None:
        n = len(self.carried)
        yielded = self.yielded
        args = self.body.block.args
        if len(args) != n + 2 or len(yielded) != len(self.outs) + 1 or len(self.cond) > 1:
            raise VerifyException(f"graph.loop: {n} carried values, {len(args)} body arguments, {len(yielded)} "
                                  f"yielded values and {len(self.outs)} results do not match")
        if dtype_of(yielded[0].type) is not DType.BOOL or any(dtype_of(c.type) is not DType.BOOL for c in self.cond):
            raise VerifyException("graph.loop: its conditions must be bool")
        for k, (v, arg, out, res) in enumerate(zip(self.carried, args[2:], yielded[1:], self.outs)):
            if not v.type == arg.type == out.type == res.type:
                raise VerifyException(f"graph.loop: carried value {k} is {v.type} in, {arg.type} in the body, "
                                      f"{out.type} out and {res.type} as a result")
        for k, (s, res) in enumerate(zip(yielded[1 + n:], self.outs[n:])):
            if dtype_of(s.type) is not dtype_of(res.type) or len(res.type.get_shape()) != len(s.type.get_shape()) + 1:
                raise VerifyException(f"graph.loop: scan output {k} is {res.type}, its slices {s.type}")


@irdl_op_definition
class IfOp(GraphOp):
    """ONNX If with a condition known only at run time: runs its then region when `cond` (one bool)
    holds, else its else region; the results are what the region run yields. Both regions yield
    values of the result types, or, with `dims`, of the results' element types and ranks: the
    results' shapes are then `dims` (one list per result), dims the run binds before the op from
    the branch the condition selects, and each result's storage holds the larger branch's."""

    name = "graph.if"
    cond = operand_def(TensorType)
    outs = var_result_def(TensorType)
    dims = opt_prop_def(ArrayAttr[ArrayAttr[StringAttr]])
    then_region = region_def("single_block")
    else_region = region_def("single_block")

    def __init__(self, cond: SSAValue, result_types: Sequence[TensorType], then_region: Region, else_region: Region,
                 dims: Sequence[Shape] | None = None):
        properties = {} if dims is None else {"dims": ArrayAttr([dims_attr(d) for d in dims])}
        super().__init__(operands=[cond], result_types=[list(result_types)], regions=[then_region, else_region],
                         properties=properties)

    def infer_body_shapes(self, shapes: dict, infer_block: Callable[[Block, dict], None]) -> list[Shape]:
        for region in self.regions:
            infer_block(region.block, shapes)
        if self.dims is not None:
            return [attr_dims(d) for d in self.dims.data]
        return [shapes[v] for v in self.then_region.block.last_op.operands]

    def infer_shapes(self, shapes):
        raise VerifyException("graph.if: its result shapes come from its regions (infer_body_shapes)")

    def verify_(self) -> None:
        if dtype_of(self.cond.type) is not DType.BOOL or self.cond.type.get_shape() != ():
            raise VerifyException(f"graph.if: the condition must be one bool, got {self.cond.type}")
        results = [r.type for r in self.outs]
        if self.dims is not None and [len(d.data) for d in self.dims.data] != [len(t.get_shape()) for t in results]:
            raise VerifyException(f"graph.if: its result shapes {self.dims} do not fit its results {results}")
        for part, region in (("then", self.then_region), ("else", self.else_region)):
            yielded = [v.type for v in region.block.last_op.operands]
            if not (yielded == results or self.dims is not None and [_rank_and_dtype(t) for t in yielded]
                    == [_rank_and_dtype(t) for t in results]):
                raise VerifyException(f"graph.if: the {part} region yields {yielded}, the results are {results}")


def _rank_and_dtype(t: TensorType) -> tuple[int, DType]:
    return len(t.get_shape()), dtype_of(t)


CONTROL_OPS = [LoopOp, IfOp, YieldOp]
