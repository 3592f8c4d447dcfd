"""Hypothesis strategies for fuzz models: small ONNX graphs over many op types with dynamic dims.

A strategy draws a `ModelCase`: the model, and per input what its feeds are made of (shape with
symbolic dims, dtype, role). Dims that the op ties to something else (a MatMul's K against a
constant weight, a Concat's non-axis dims, a LayerNorm's last dim against its scale) get their
own symbol, with the value that makes them consistent as a `hint`: feeds use the hint most of the
time (a valid feed) and another value otherwise (a mismatched size onnxruntime rejects).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from hypothesis import strategies as st
from onnx import helper, numpy_helper

OPSET = 17


@dataclass
class Input:
    name: str
    shape: list  # int or symbol name per dim
    dtype: str = "float32"
    role: str = "data"  # data | indices (int64 into `of`'s axis) | cond (bool) | divisor (ints with zeros)
    of: tuple = ()  # indices: (input name, axis)


@dataclass
class ModelCase:
    model: bytes
    inputs: list[Input]
    ops: list[str]
    hints: dict = field(default_factory=dict)  # symbol -> the value that makes a feed valid
    float_to_int: bool = False  # a float -> integer Cast: NaN / out-of-range values are undefined


def _vi(name, dtype="float32", shape=None):
    return helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(np.dtype(dtype)), shape)


def _model(nodes, inputs: list[Input], outputs, consts=(), hints=None, float_to_int=False) -> ModelCase:
    """outputs: names of float32 outputs or (name, dtype); their shapes are left to inference."""
    outs = [_vi(*((o, "float32") if isinstance(o, str) else o), shape=None) for o in outputs]
    graph = helper.make_graph(nodes, "fuzz", [_vi(i.name, i.dtype, i.shape) for i in inputs], outs,
                              [numpy_helper.from_array(np.asarray(v), k) for k, v in dict(consts).items()])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    m.ir_version = 8
    m = onnx.shape_inference.infer_shapes(m)  # the outputs' shapes (the checker wants one)
    return ModelCase(m.SerializeToString(), inputs, sorted({n.op_type for n in nodes}), dict(hints or {}),
                     float_to_int)


SYMS = ("a", "b", "c")
small = st.integers(1, 5)


@st.composite
def dim(draw):
    """A symbol (fed any size, zero included) or a static size."""
    return draw(st.one_of(st.sampled_from(SYMS), st.integers(1, 5)))


@st.composite
def shape(draw, min_rank=1, max_rank=4):
    return [draw(dim()) for _ in range(draw(st.integers(min_rank, max_rank)))]


def weights(rng_seed: int, *shape_) -> np.ndarray:
    return np.random.default_rng(rng_seed).standard_normal(shape_).astype(np.float32)


# ------------------------------------------------------------------ families
UNARY = ["Relu", "Sigmoid", "Tanh", "Exp", "Log", "Sqrt", "Abs", "Neg", "Floor", "Ceil", "Erf", "Reciprocal",
         "Softplus", "Sign", "Round", "Softsign", "HardSwish"]
UNARY_ATTR = {"LeakyRelu": {"alpha": 0.1}, "Elu": {"alpha": 0.7}, "HardSigmoid": {"alpha": 0.3, "beta": 0.4},
              "Selu": {}, "Celu": {"alpha": 1.5}, "ThresholdedRelu": {"alpha": 0.5}}


@st.composite
def unary(draw, op=None):
    op = op or draw(st.sampled_from(UNARY + list(UNARY_ATTR)))
    x = Input("x", draw(shape()))
    return _model([helper.make_node(op, ["x"], ["y"], **UNARY_ATTR.get(op, {}))], [x], ["y"])


BINARY = ["Add", "Sub", "Mul", "Div", "Pow", "Max", "Min"]
COMPARE = ["Equal", "Greater", "Less", "GreaterOrEqual", "LessOrEqual"]


@st.composite
def broadcast_pair(draw):
    """Two shapes that broadcast when their symbols agree: y is a suffix of x, dims kept, set to 1
    or given another symbol (a mismatch unless fed the same size)."""
    xs = draw(shape())
    ys = []
    for d in xs[len(xs) - draw(st.integers(1, len(xs))):]:
        ys.append(draw(st.sampled_from([d, d, 1, "c" if d != "c" else "b"])))
    return (xs, ys) if draw(st.booleans()) else (ys, xs)


@st.composite
def binary(draw, op=None):
    op = op or draw(st.sampled_from(BINARY + COMPARE))
    xs, ys = draw(broadcast_pair())
    out = ("y", "bool") if op in COMPARE else "y"
    return _model([helper.make_node(op, ["x", "z"], ["y"])], [Input("x", xs), Input("z", ys)], [out])


@st.composite
def integer_division(draw, op=None):
    op, dtype = op or draw(st.sampled_from(["Div", "Mod"])), draw(st.sampled_from(["int32", "int64"]))
    xs = draw(shape(max_rank=2))
    return _model([helper.make_node(op, ["x", "z"], ["y"])],
                  [Input("x", xs, dtype), Input("z", list(xs), dtype, role="divisor")], [("y", dtype)])


@st.composite
def where(draw):
    xs, ys = draw(broadcast_pair())
    return _model([helper.make_node("Where", ["cond", "x", "z"], ["y"])],
                  [Input("cond", list(xs), "bool", role="cond"), Input("x", xs), Input("z", ys)], ["y"])


@st.composite
def cast(draw):
    src, dst = draw(st.sampled_from([("float32", "int32"), ("float32", "int64"), ("float32", "float16"),
                                     ("float32", "bool"), ("int64", "float32"), ("int32", "int64"),
                                     ("float32", "float64"), ("bool", "float32")]))
    x = Input("x", draw(shape()), src)
    to = helper.np_dtype_to_tensor_dtype(np.dtype(dst))
    return _model([helper.make_node("Cast", ["x"], ["y"], to=to)], [x], [("y", dst)],
                  float_to_int=src.startswith("float") and dst.startswith(("int", "bool")))


@st.composite
def clip(draw):
    lo, hi = sorted(draw(st.lists(st.floats(-3, 3, width=32), min_size=2, max_size=2)))
    return _model([helper.make_node("Clip", ["x", "lo", "hi"], ["y"])], [Input("x", draw(shape()))], ["y"],
                  {"lo": np.float32(lo), "hi": np.float32(hi)})


@st.composite
def matmul(draw):
    """x[..., m, k] @ W[K, N] (constant; k a symbol hinted K) or @ z[k2, n] (an input)."""
    k, n = draw(small), draw(small)
    batch = draw(st.lists(dim(), max_size=2))
    xs = [*batch, draw(dim()), draw(st.sampled_from(["k", k]))]
    act = draw(st.sampled_from([None, None, "Relu", "Sigmoid", "Tanh"]))
    nodes = [helper.make_node("MatMul", ["x", "w"], ["m" if act else "y"])]
    if act:
        nodes.append(helper.make_node(act, ["m"], ["y"]))
    if draw(st.booleans()):
        return _model(nodes, [Input("x", xs)], ["y"], {"w": weights(k * n, k, n)}, hints={"k": k})
    return _model(nodes, [Input("x", xs), Input("w", [draw(st.sampled_from(["k", "b", k])), draw(dim())])], ["y"],
                  hints={"k": k})


@st.composite
def gemm(draw):
    k, n, trans_b = draw(small), draw(small), draw(st.booleans())
    w = weights(k + 7 * n, *((n, k) if trans_b else (k, n)))
    bias = draw(st.sampled_from([None, (n,), (1,), (1, n)]))
    consts = {"w": w} | ({"bias": weights(3, *bias)} if bias else {})
    node = helper.make_node("Gemm", ["x", "w", *(["bias"] if bias else [])], ["g"], transB=int(trans_b),
                            alpha=draw(st.sampled_from([1.0, 0.5])), beta=draw(st.sampled_from([1.0, 2.0])))
    act = draw(st.sampled_from(["Relu", "Sigmoid", None]))
    nodes = [node] + ([helper.make_node(act, ["g"], ["y"])] if act else [helper.make_node("Identity", ["g"], ["y"])])
    return _model(nodes, [Input("x", [draw(dim()), "k"])], ["y"], consts, hints={"k": k})


@st.composite
def conv(draw):
    c, groups = draw(st.sampled_from([(1, 1), (2, 1), (2, 2), (3, 1), (4, 2)]))
    out, k = groups * draw(st.integers(1, 2)), draw(st.integers(1, 3))
    pads = draw(st.sampled_from([[0, 0, 0, 0], [1, 1, 1, 1], [0, 1, 1, 0]]))
    stride, dilation = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    consts = {"w": weights(out + c, out, c // groups, k, k)}
    ins = ["x", "w"]
    if draw(st.booleans()):
        consts["bias"], ins = weights(5, out), ins + ["bias"]
    xs = [draw(dim()), draw(st.sampled_from(["c", c])), draw(st.sampled_from(["a", "b", 5, 6])), draw(
        st.sampled_from(["a", "b", 4, 7]))]
    nodes = [helper.make_node("Conv", ins, ["cv"], pads=pads, strides=[stride, stride],
                              dilations=[dilation, dilation], group=groups)]
    act = draw(st.sampled_from(["Relu", "Clip", None]))
    if act == "Clip":
        consts |= {"lo": np.float32(0), "hi": np.float32(6)}
        nodes.append(helper.make_node("Clip", ["cv", "lo", "hi"], ["y"]))
    else:
        nodes.append(helper.make_node(act or "Identity", ["cv"], ["y"]))
    return _model(nodes, [Input("x", xs)], ["y"], consts, hints={"c": c})


POOLS = ["MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool"]


@st.composite
def pool(draw, op=None):
    op = op or draw(st.sampled_from(POOLS))
    attrs = {}
    if not op.startswith("Global"):
        k = draw(st.integers(1, 3))
        attrs = {"kernel_shape": [k, k], "strides": [draw(st.integers(1, 2))] * 2,
                 "pads": draw(st.sampled_from([[0, 0, 0, 0], [1, 1, 1, 1]])) if k > 1 else [0, 0, 0, 0],
                 "ceil_mode": int(draw(st.booleans()))}
        if op == "AveragePool":
            attrs["count_include_pad"] = int(draw(st.booleans()))
    xs = [draw(dim()), draw(dim()), draw(st.sampled_from(["a", "b", 3, 6])), draw(st.sampled_from(["a", "c", 4]))]
    return _model([helper.make_node(op, ["x"], ["y"], **attrs)], [Input("x", xs)], ["y"])


@st.composite
def reshape(draw):
    """x[a, 3] or x[a, b] -> a constant target with -1 / 0 entries."""
    xs = draw(st.sampled_from([["a", 3], ["a", "b"], [2, "a", 2], ["a", 6]]))
    target = draw(st.sampled_from([[2, 3], [-1, 3], [0, -1], [-1], [3, 2, -1], [6], [0, 3]]))
    hint = {"a": 2, "b": 3} if xs != [2, "a", 2] else {"a": 3}
    return _model([helper.make_node("Reshape", ["x", "shape"], ["y"])], [Input("x", xs)], ["y"],
                  {"shape": np.array(target, np.int64)}, hints=hint)


@st.composite
def flatten(draw):
    xs = draw(shape(min_rank=1))
    return _model([helper.make_node("Flatten", ["x"], ["y"], axis=draw(st.integers(0, len(xs))))],
                  [Input("x", xs)], ["y"])


@st.composite
def transpose(draw):
    xs = draw(shape(min_rank=2))
    perm = draw(st.permutations(range(len(xs))))
    return _model([helper.make_node("Transpose", ["x"], ["y"], perm=list(perm))], [Input("x", xs)], ["y"])


@st.composite
def concat(draw):
    rank = draw(st.integers(1, 3))
    axis = draw(st.integers(-rank, rank - 1))
    ins = []
    for i in range(draw(st.integers(2, 3))):
        # non-axis dims: the shared symbol a / b, another symbol, or a static size
        dims = [draw(st.sampled_from(["a", "b", 2, "c"])) if d != axis % rank else draw(dim()) for d in range(rank)]
        ins.append(Input(f"x{i}", dims))
    return _model([helper.make_node("Concat", [i.name for i in ins], ["y"], axis=axis)], ins, ["y"])


@st.composite
def slice_(draw):
    xs = draw(shape(min_rank=1, max_rank=3))
    axes = sorted(draw(st.sets(st.integers(0, len(xs) - 1), min_size=1)))
    starts = [draw(st.integers(-6, 6)) for _ in axes]
    ends = [draw(st.sampled_from([-1, 2, 5, 2 ** 62, -(2 ** 62), 0])) for _ in axes]
    steps = [draw(st.sampled_from([1, 1, 2, -1, -2])) for _ in axes]
    consts = {"s": np.array(starts, np.int64), "e": np.array(ends, np.int64),
              "ax": np.array(axes, np.int64), "st": np.array(steps, np.int64)}
    return _model([helper.make_node("Slice", ["x", "s", "e", "ax", "st"], ["y"])], [Input("x", xs)], ["y"], consts)


@st.composite
def gather(draw):
    xs = draw(shape(min_rank=1, max_rank=3))
    axis = draw(st.integers(0, len(xs) - 1))
    idx = Input("i", draw(st.sampled_from([["b"], [2], ["c", 2], []])), "int64", role="indices", of=("x", axis))
    return _model([helper.make_node("Gather", ["x", "i"], ["y"], axis=axis)], [Input("x", xs), idx], ["y"])


@st.composite
def split(draw):
    sizes = draw(st.lists(st.integers(1, 3), min_size=2, max_size=3))
    xs = [draw(dim()), "s"]
    outs = [f"y{i}" for i in range(len(sizes))]
    return _model([helper.make_node("Split", ["x", "sp"], outs, axis=1)], [Input("x", xs)], outs,
                  {"sp": np.array(sizes, np.int64)}, hints={"s": sum(sizes)})


@st.composite
def squeeze(draw):
    xs = [draw(dim()), draw(st.sampled_from([1, "c"])), draw(dim())]
    return _model([helper.make_node("Squeeze", ["x", "ax"], ["y"])], [Input("x", xs)], ["y"],
                  {"ax": np.array([1], np.int64)}, hints={"c": 1})


@st.composite
def unsqueeze(draw):
    xs = draw(shape(max_rank=3))
    axes = sorted(draw(st.sets(st.integers(-len(xs) - 1, len(xs)), min_size=1, max_size=1)))
    return _model([helper.make_node("Unsqueeze", ["x", "ax"], ["y"])], [Input("x", xs)], ["y"],
                  {"ax": np.array(axes, np.int64)})


@st.composite
def expand(draw):
    xs = [draw(st.sampled_from(["a", 1])), draw(st.sampled_from(["b", 1, 3]))]
    target = draw(st.sampled_from([[2, 3], [4, 1, 3], [1, 1], [3]]))
    return _model([helper.make_node("Expand", ["x", "shape"], ["y"])], [Input("x", xs)], ["y"],
                  {"shape": np.array(target, np.int64)}, hints={"a": 1, "b": 3})


@st.composite
def tile(draw):
    xs = draw(shape(max_rank=3))
    reps = [draw(st.integers(0, 3)) for _ in xs]
    return _model([helper.make_node("Tile", ["x", "r"], ["y"])], [Input("x", xs)], ["y"],
                  {"r": np.array(reps, np.int64)})


@st.composite
def pad(draw):
    xs = draw(shape(min_rank=1, max_rank=3))
    mode = draw(st.sampled_from(["constant", "reflect", "edge"]))
    lo = [draw(st.integers(0 if mode != "constant" else -1, 2)) for _ in xs]
    hi = [draw(st.integers(0 if mode != "constant" else -1, 2)) for _ in xs]
    return _model([helper.make_node("Pad", ["x", "p"], ["y"], mode=mode)], [Input("x", xs)], ["y"],
                  {"p": np.array(lo + hi, np.int64)})


REDUCE = ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceSumSquare", "ReduceLogSumExp",
          "ArgMax", "ArgMin"]


@st.composite
def reduce(draw, op=None):
    op = op or draw(st.sampled_from(REDUCE))
    xs = draw(shape())
    keep = int(draw(st.booleans()))
    if op.startswith("Arg"):
        node = helper.make_node(op, ["x"], ["y"], axis=draw(st.integers(-len(xs), len(xs) - 1)), keepdims=keep)
        return _model([node], [Input("x", xs)], [("y", "int64")])
    axes = sorted(draw(st.sets(st.integers(0, len(xs) - 1), min_size=1)))
    if op == "ReduceSum":
        return _model([helper.make_node(op, ["x", "ax"], ["y"], keepdims=keep)], [Input("x", xs)], ["y"],
                      {"ax": np.array(axes, np.int64)})
    return _model([helper.make_node(op, ["x"], ["y"], axes=axes, keepdims=keep)], [Input("x", xs)], ["y"])


SOFTMAX = ["Softmax", "LogSoftmax", "Hardmax"]


@st.composite
def softmax(draw, op=None):
    op = op or draw(st.sampled_from(SOFTMAX))
    xs = draw(shape())
    return _model([helper.make_node(op, ["x"], ["y"], axis=draw(st.integers(-len(xs), len(xs) - 1)))],
                  [Input("x", xs)], ["y"])


NORMALIZATIONS = ["LayerNormalization", "BatchNormalization", "InstanceNormalization"]


@st.composite
def normalization(draw, op=None):
    op = op or draw(st.sampled_from(NORMALIZATIONS))
    d = draw(st.integers(1, 4))
    if op == "LayerNormalization":
        xs = [*draw(st.lists(dim(), max_size=2)), draw(st.sampled_from(["c", d]))]
        return _model([helper.make_node(op, ["x", "g", "be"], ["y"], axis=-1, epsilon=1e-5)], [Input("x", xs)],
                      ["y"], {"g": weights(d, d), "be": weights(d + 1, d)}, hints={"c": d})
    xs = [draw(dim()), draw(st.sampled_from(["c", d])), *draw(st.lists(dim(), min_size=1, max_size=2))]
    consts = {"g": weights(d, d), "be": weights(d + 1, d)}
    names = ["x", "g", "be"]
    if op == "BatchNormalization":
        consts |= {"mu": weights(d + 2, d), "var": np.abs(weights(d + 3, d)) + 0.5}
        names += ["mu", "var"]
    return _model([helper.make_node(op, names, ["y"], epsilon=1e-5)], [Input("x", xs)], ["y"], consts, hints={"c": d})


@st.composite
def residual_chain(draw):
    """Add(x, z) -> activation -> Mul by a constant: elementwise chains the optimizer fuses."""
    xs, ys = draw(broadcast_pair())
    act = draw(st.sampled_from(["Relu", "Sigmoid", "Tanh", "Exp"]))
    nodes = [helper.make_node("Add", ["x", "z"], ["s"]), helper.make_node(act, ["s"], ["t"]),
             helper.make_node("Mul", ["t", "two"], ["y"])]
    return _model(nodes, [Input("x", xs), Input("z", ys)], ["y"], {"two": np.float32(2)})


FAMILIES = {
    "unary": unary, "binary": binary, "integer_division": integer_division, "where": where, "cast": cast,
    "clip": clip, "matmul": matmul, "gemm": gemm, "conv": conv, "pool": pool, "reshape": reshape,
    "flatten": flatten, "transpose": transpose, "concat": concat, "slice": slice_, "gather": gather,
    "split": split, "squeeze": squeeze, "unsqueeze": unsqueeze, "expand": expand, "tile": tile, "pad": pad,
    "reduce": reduce, "softmax": softmax, "normalization": normalization, "residual_chain": residual_chain,
}
# the op types of the families that pick one of several: every op type gets its own models
FAMILY_OPS = {"unary": UNARY + list(UNARY_ATTR), "binary": BINARY + COMPARE, "integer_division": ["Div", "Mod"],
              "pool": POOLS, "reduce": REDUCE, "softmax": SOFTMAX, "normalization": NORMALIZATIONS}
# GEMM and convolution kernels take seconds to compile: fewer of those models
HEAVY = {"matmul", "gemm", "conv"}


def strategies() -> dict[str, tuple[st.SearchStrategy, float]]:
    """name -> (model strategy, weight): one per family, or per op type of a family that has
    several; heavy families weigh half."""
    out = {}
    for family, make in FAMILIES.items():
        weight = 0.5 if family in HEAVY else 1.0
        for op in FAMILY_OPS.get(family, [None]):
            out[f"{family}:{op}" if op else family] = (make(op=op) if op else make(), weight)
    return out
