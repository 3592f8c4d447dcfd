"""float64 tensors compiled to native code vs onnxruntime: arithmetic, comparisons, reductions, data
movement and casts run in double precision, as do the exact unary ops (Sqrt, Floor, Reciprocal, ...)
and the activations built on exp; MatMul runs the register-blocked GEMM in double precision (Gemm
too: tests/unit/targets/cpu/lowerings/test_linalg.py); exp (Exp, Softmax) has a double-precision
polynomial (log, tanh, erf, Pow and the trigonometric functions: .../kernels/test_fast_math.py)."""
import numpy as np
import pytest
from onnx import TensorProto, helper

from conftest import make_model, ort_run
from pyflame_rt import InferenceSession
from pyflame_rt.errors import UnsupportedOperatorError

UNARY = ["Neg", "Abs", "Relu", "Identity"]
BINARY = ["Add", "Sub", "Mul", "Div", "Max", "Min"]


def _feeds(rng):
    x = rng.uniform(0.1, 3.0, (3, 4, 5))  # positive: Sqrt / Log / Pow stay real
    y = rng.uniform(0.5, 2.0, (4, 5))
    return {"x": x, "y": y}


def test_float64_ops_match_onnxruntime(rng):
    nodes, outputs = [], []
    for op in UNARY:
        nodes.append(helper.make_node(op, ["x"], [op]))
        outputs.append((op, [3, 4, 5], np.float64))
    for op in BINARY:
        nodes.append(helper.make_node(op, ["x", "y"], [op]))
        outputs.append((op, [3, 4, 5], np.float64))
    more = [
        (helper.make_node("ReduceSum", ["x", "axes"], ["rsum"], keepdims=0), ("rsum", [3, 5], np.float64)),
        (helper.make_node("ReduceMean", ["x"], ["rmean"], axes=[1]), ("rmean", [3, 1, 5], np.float64)),
        (helper.make_node("ReduceMax", ["x"], ["rmax"], axes=[2], keepdims=0), ("rmax", [3, 4], np.float64)),
        (helper.make_node("Transpose", ["x"], ["tr"], perm=[2, 0, 1]), ("tr", [5, 3, 4], np.float64)),
        (helper.make_node("Concat", ["x", "x"], ["cat"], axis=1), ("cat", [3, 8, 5], np.float64)),
        (helper.make_node("Gather", ["x", "idx"], ["gather"], axis=1), ("gather", [3, 2, 5], np.float64)),
        (helper.make_node("Cast", ["x"], ["to32"], to=TensorProto.FLOAT), ("to32", [3, 4, 5], np.float32)),
        (helper.make_node("Less", ["x", "y"], ["less"]), ("less", [3, 4, 5], np.bool_)),
        (helper.make_node("Where", ["less", "x", "y"], ["where"]), ("where", [3, 4, 5], np.float64)),
    ]
    nodes += [n for n, _ in more]
    outputs += [o for _, o in more]
    inits = {"axes": np.array([1], np.int64), "idx": np.array([3, 0], np.int64)}
    model = make_model(nodes, [("x", [3, 4, 5], np.float64), ("y", [4, 5], np.float64)], outputs, inits, opset=17)
    feeds = _feeds(rng)
    got = InferenceSession(model.SerializeToString()).run(None, feeds)
    want = ort_run(model, feeds)
    for (name, _, _), g, w in zip(outputs, got, want):
        assert g.dtype == w.dtype, name
        if w.dtype == np.float64:
            np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-12, err_msg=name)
        else:
            np.testing.assert_array_equal(g, w, err_msg=name)


@pytest.mark.parametrize("a_shape,b_shape", [((5, 7), (7, 11)), ((2, 3, 5, 9), (9, 13)), ((9,), (3, 9, 4)),
                                             ((2, 1, 3, 4), (1, 5, 4, 6))])
def test_float64_matmul_runs_in_double_precision(rng, a_shape, b_shape):
    """The GEMM's F64 panels: batched, broadcast and 1-D forms, a last panel of few columns (11, 13);
    exact to double precision (a float32 GEMM would be ~1e-7 off)."""
    a, b = rng.standard_normal(a_shape), rng.standard_normal(b_shape)
    out_shape = list(np.matmul(a, b).shape)
    model = make_model([helper.make_node("MatMul", ["a", "b"], ["y"])],
                       [("a", list(a_shape), np.float64), ("b", list(b_shape), np.float64)],
                       [("y", out_shape, np.float64)])
    (ours,) = InferenceSession(model).run(None, {"a": a, "b": b})
    assert ours.dtype == np.float64
    np.testing.assert_allclose(ours, np.matmul(a, b), rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(ours, ort_run(model, {"a": a, "b": b})[0], rtol=1e-12, atol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("eq, shapes", [("bqhd,bkhd->bhqk", [(2, 5, 3, 4), (2, 6, 3, 4)]),
                                        ("ij,kj", [(30, 40), (50, 40)])])
def test_float64_einsum_runs_in_double_precision(eq, shapes, rng):
    """Two-operand Einsum: permuting copies, then the float64 GEMM."""
    feeds = {f"x{i}": rng.standard_normal(s) for i, s in enumerate(shapes)}
    want = np.einsum(eq, *feeds.values())
    model = make_model([helper.make_node("Einsum", list(feeds), ["y"], equation=eq)],
                       [(k, list(v.shape), np.float64) for k, v in feeds.items()], [("y", list(want.shape), np.float64)],
                       opset=12)
    (got,) = InferenceSession(model).run(None, feeds)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-13)


def test_float64_exp_and_softmax_in_double_precision(rng):
    """exp's float64 constants and degree-13 polynomial: ~1 ulp against numpy from underflow (0) to
    overflow (inf), NaN kept; Softmax over rows with a wide spread, and a vector tail (11 columns)."""
    x = np.concatenate([rng.uniform(-700, 700, 40), rng.uniform(-3, 3, 40),
                        [0.0, -0.0, 1e-300, -745.2, -800.0, 709.0, 710.0, np.inf, -np.inf, np.nan]])
    x = np.pad(x, (0, 99 - x.size)).reshape(9, 11)
    model = make_model([helper.make_node("Exp", ["x"], ["e"]), helper.make_node("Softmax", ["x"], ["s"])],
                       [("x", [9, 11], np.float64)], [("e", [9, 11], np.float64), ("s", [9, 11], np.float64)],
                       opset=13)
    e, sm = InferenceSession(model).run(None, {"x": x})
    assert e.dtype == sm.dtype == np.float64
    with np.errstate(over="ignore", invalid="ignore"):
        want_e = np.exp(x)
        z = np.exp(x - np.nanmax(x, axis=-1, keepdims=True))
        want_s = z / z.sum(axis=-1, keepdims=True)
    finite = np.isfinite(want_e) & (np.abs(x) < 709.43)
    np.testing.assert_allclose(e[finite], want_e[finite], rtol=4e-16 * 8, atol=0)
    assert np.isposinf(e[x == 710.0]).all() and (e[x == -800.0] == 0).all() and np.isnan(e[np.isnan(x)]).all()
    rows = ~np.isnan(x).any(axis=-1) & ~np.isinf(x).any(axis=-1)
    np.testing.assert_allclose(sm[rows], want_s[rows], rtol=1e-14, atol=1e-300)


def _f32(v):  # ONNX float attributes are float32
    return float(np.float32(v))


def _elu(x, alpha):
    return np.where(x > 0, x, alpha * np.expm1(x))


DOUBLE_UNARY = {  # op: (attributes, numpy reference)
    "Sqrt": ({}, np.sqrt), "Floor": ({}, np.floor), "Ceil": ({}, np.ceil), "Reciprocal": ({}, lambda x: 1 / x),
    "Round": ({}, np.round), "Softsign": ({}, lambda x: x / (1 + np.abs(x))),
    "Sigmoid": ({}, lambda x: 1 / (1 + np.exp(-x))),
    "LeakyRelu": ({"alpha": 0.3}, lambda x: np.where(x > 0, x, _f32(0.3) * x)),
    "Elu": ({"alpha": 0.7}, lambda x: _elu(x, _f32(0.7))),
    "Selu": ({}, lambda x: _f32(1.0507009873554804934193349852946) * _elu(x, _f32(1.6732632423543772848170429916717))),
    "HardSigmoid": ({}, lambda x: np.clip(_f32(0.2) * x + 0.5, 0, 1)),
    "HardSwish": ({}, lambda x: x * np.clip(x / 6 + 0.5, 0, 1)),
    "ThresholdedRelu": ({"alpha": 0.5}, lambda x: np.where(x > 0.5, x, 0.0)),
    "Shrink": ({"lambd": 0.5}, lambda x: np.where(np.abs(x) > 0.5, x, 0.0)),
    "IsNaN": ({}, np.isnan), "IsInf": ({}, np.isinf),
}


@pytest.mark.slow  # 17 kernels to compile
def test_float64_unary_ops_run_in_double_precision(rng):
    """To an ulp or two of numpy (fused multiply-adds, exp); a float32 kernel would be ~1e-7 off
    (onnxruntime has no float64 kernels for several of them)."""
    x = np.concatenate([rng.uniform(-6, 6, 40), [0.0, -0.0, 0.5, 1.5, 2.5, -2.5, 1e-300, 3.0, -3.0, np.inf, np.nan]])
    nodes = [helper.make_node(op, ["x"], [op], **attrs) for op, (attrs, _) in DOUBLE_UNARY.items()]
    nodes.append(helper.make_node("Mean", ["x", "x"], ["Mean"]))
    outputs = [(op, [x.size], np.bool_ if op.startswith("Is") else np.float64) for op in DOUBLE_UNARY]
    model = make_model(nodes, [("x", [x.size], np.float64)], outputs + [("Mean", [x.size], np.float64)], opset=22)
    got = dict(zip([o[0] for o in outputs] + ["Mean"], InferenceSession(model.SerializeToString()).run(None, {"x": x})))
    np.testing.assert_array_equal(got.pop("Mean"), x)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        for name, (_, fn) in DOUBLE_UNARY.items():
            want = fn(x)
            assert got[name].dtype == want.dtype, name
            np.testing.assert_allclose(got[name], want, rtol=1e-15, atol=1e-15, err_msg=name)
