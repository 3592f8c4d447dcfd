"""The registry of per-op numpy semantics and the interpreter that walks a graph function."""
from __future__ import annotations

from contextvars import ContextVar
from typing import Callable, Mapping, Sequence

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import DYNAMIC_INDEX, ModuleOp, StringAttr, TensorType
from xdsl.ir import Block, Operation, SSAValue
from xdsl.traits import IsTerminator

from pyflame_rt.dialects import graph, symbolic
from pyflame_rt.dialects.symbolic import Dim, SymDim
from pyflame_rt.errors import DTypeMismatchError, InputError, ShapeMismatchError, UnsupportedOperatorError

# fn(op, inputs) -> one array or a sequence of arrays (one per result); inputs follow op.operands
RefFn = Callable[[Operation, list[np.ndarray]], "np.ndarray | Sequence[np.ndarray]"]
_REFERENCES: dict[type[Operation], RefFn] = {}
# values of the dynamic dims (e.g. batch) during `evaluate`, for ops whose properties name dims
_DIMS: ContextVar[Mapping[str, int]] = ContextVar("reference_dims", default={})
# the values and weights of the block being evaluated (run_block)
_ENCLOSING: ContextVar[tuple | None] = ContextVar("reference_enclosing", default=None)


def dim_value(d: Dim) -> int:
    """A (possibly symbolic) dim's value in the current evaluation."""
    try:
        return symbolic.evaluate(d, _DIMS.get())
    except KeyError:
        raise ShapeMismatchError(f"dim {d} is not bound in this evaluation") from None


def bind_dims(values: Mapping[str, int]) -> None:
    """Bind dims from computed values (graph.bind_dims) for the rest of the current evaluation."""
    for dim, value in values.items():
        if value < 0:
            raise ShapeMismatchError(f"dim '{dim}' is bound to the negative value {value}")
    _DIMS.get().update(values)  # type: ignore[attr-defined]  # evaluate() binds a fresh dict


def reference(*op_classes: type[Operation]):
    """Register the numpy semantics of one or more graph op classes."""
    def register(fn: RefFn) -> RefFn:
        for cls in op_classes:
            _REFERENCES[cls] = fn
        return fn
    return register


def has_reference(op: Operation | type[Operation]) -> bool:
    """Whether an op (or op class) has registered semantics."""
    return (op if isinstance(op, type) else type(op)) in _REFERENCES


# graph activation kind -> fn(y, *params): the fused epilogue an op's `activation` property names
# (graph_attrs.Activation); reference/math.py registers them next to the ops they come from
ACTIVATION_REFERENCES: dict[str, Callable[..., np.ndarray]] = {}


def evaluate_op(op: Operation, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Results of one op on concrete inputs, cast to the result element types and shape-checked."""
    fn = _REFERENCES.get(type(op))
    if fn is None:
        raise UnsupportedOperatorError(f"{op.name} has no reference implementation")
    out = fn(op, list(inputs))
    outs = [out] if isinstance(out, np.ndarray) or np.isscalar(out) else list(out)
    activation = graph.activation_of(op)
    if activation is not None:  # a fused epilogue (see the fusion passes)
        fn = ACTIVATION_REFERENCES[activation.activation]
        outs = [fn(np.asarray(o), *activation.values) for o in outs]
    if len(outs) != len(op.results):
        raise ShapeMismatchError(f"{op.name}: reference gave {len(outs)} results, op has {len(op.results)}")
    return [_conform(np.asarray(o), r.type, f"{op.name} result #{k}") for k, (o, r) in
            enumerate(zip(outs, op.results))]


def _conform(arr: np.ndarray, t, what: str) -> np.ndarray:
    """Cast to the declared element type; the static dims of the declared shape must match."""
    assert isinstance(t, TensorType)
    declared = t.get_shape()
    if len(declared) != arr.ndim or any(d != DYNAMIC_INDEX and d != s for d, s in zip(declared, arr.shape)):
        raise ShapeMismatchError(f"{what}: shape {list(arr.shape)} does not match the type {t}")
    return np.asarray(arr.astype(graph.dtype_of(t).numpy, copy=False), order="C")


def evaluate(module: ModuleOp | func.FuncOp, weights: Mapping[str, np.ndarray],
             feeds: Mapping[str, np.ndarray] | Sequence[np.ndarray]) -> list[np.ndarray]:
    """Run the graph function `@main` of `module` on `feeds` (by input name, or a list in order)."""
    fn = module if isinstance(module, func.FuncOp) else graph.entry_function(module)
    env: dict[SSAValue, np.ndarray] = {}
    for arg, arr in zip(fn.args, _ordered_feeds(fn, feeds)):
        env[arg] = _conform_feed(arr, arg.type, _arg_name(fn, arg.index))
    token = _DIMS.set(_bind_dims(fn, [env[a] for a in fn.args]))
    try:
        return _run(fn, env, weights)
    finally:
        _DIMS.reset(token)


def _bind_dims(fn: func.FuncOp, arrays: list[np.ndarray]) -> dict[str, int]:
    """Dynamic dim names of the entry arguments (graph.dims) -> sizes in the feeds."""
    arg_attrs = fn.arg_attrs.data if fn.arg_attrs is not None else [None] * len(fn.args)
    bindings: dict[str, int] = {}
    for arg, attrs, arr in zip(fn.args, arg_attrs, arrays):
        named = attrs.data if attrs is not None else {}
        bound = [(d.syms[0], size) for d, size in zip(graph.io_shape(named, arg.type), arr.shape)
                 if isinstance(d, SymDim) and d.coef == 1 and len(d.syms) == 1]
        bound += list(zip(graph.value_dims(named), (int(v) for v in arr.reshape(-1))))
        for dim, size in bound:
            if bindings.setdefault(dim, size) != size:
                raise ShapeMismatchError(f"dim '{dim}' is bound to {bindings[dim]} and {size}")
    return bindings


def _run(fn: func.FuncOp, env: dict[SSAValue, np.ndarray], weights: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    return run_block(fn.body.block, env, weights)


def run_block(block: Block, env: dict[SSAValue, np.ndarray], weights: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    """The values a block's terminator passes on, its ops evaluated in `env` (the values of the
    enclosing blocks and the block's arguments), which the ops' results are added to. Ops with
    regions (graph.loop) evaluate them in `env` too (`enclosing`)."""
    token = _ENCLOSING.set((env, weights))
    try:
        for op in block.ops:
            if op.has_trait(IsTerminator) or isinstance(op, func.ReturnOp):
                return [env[v] for v in op.operands]
            if isinstance(op, graph.ConstantOp):
                env[op.result] = constant_value(op, weights)
                continue
            for res, val in zip(op.results, evaluate_op(op, [env[v] for v in op.operands])):
                env[res] = val
    finally:
        _ENCLOSING.reset(token)
    raise InputError("graph block has no terminator")


def enclosing() -> tuple[dict[SSAValue, np.ndarray], Mapping[str, np.ndarray]]:
    """The values and weights of the block being evaluated (for an op whose region reads them)."""
    current = _ENCLOSING.get()
    if current is None:
        raise UnsupportedOperatorError("an op with a region is evaluated only inside a graph function")
    return current


def constant_value(op: graph.ConstantOp, weights: Mapping[str, np.ndarray]) -> np.ndarray:
    shape = graph.static_shape(op.result.type)
    if op.weight_name is not None:
        if op.weight_name not in weights:
            raise InputError(f"weight '{op.weight_name}' is missing from the weight table")
        arr = np.asarray(weights[op.weight_name])
    else:
        arr = graph.dense_value(op.value, shape)
    return _conform(arr.reshape(shape), op.result.type, f"graph.constant @{op.weight_name}")


def _arg_name(fn: func.FuncOp, i: int) -> str:
    if fn.arg_attrs is not None:
        name = fn.arg_attrs.data[i].data.get(graph.ARG_NAME)
        if isinstance(name, StringAttr):
            return name.data
    return f"arg{i}"


def _ordered_feeds(fn: func.FuncOp, feeds) -> list[np.ndarray]:
    names = [_arg_name(fn, i) for i in range(len(fn.args))]
    if isinstance(feeds, Mapping):
        missing = [n for n in names if n not in feeds]
        if missing:
            raise InputError(f"missing input(s) {missing}; the graph's inputs are {names}")
        return [np.asarray(feeds[n]) for n in names]
    if len(feeds) != len(names):
        raise InputError(f"expected {len(names)} inputs {names}, got {len(feeds)}")
    return [np.asarray(f) for f in feeds]


def _conform_feed(arr: np.ndarray, t, name: str) -> np.ndarray:
    want = graph.dtype_of(t).numpy
    if arr.dtype != want:
        raise DTypeMismatchError(f"input '{name}' expects {want}, got {arr.dtype}")
    return _conform(arr, t, f"input '{name}'")
