"""Tensor ops compiled to native code vs onnxruntime: elementwise math and activations over
dtypes, comparisons/logic, Cast, reductions, Softmax/LayerNorm, Gather, shape subgraphs."""
import numpy as np
import pytest
from onnx import helper

from conftest import assert_close, make_model, ort_run
from pyflame_rt import InferenceSession
from pyflame_rt.errors import InputError


def check(model, feeds, rtol=1e-5, exact=False):
    """Compile, run, compare every output with onnxruntime (dtype, shape and values)."""
    got = InferenceSession(model.SerializeToString()).run(None, feeds)
    want = ort_run(model, feeds)
    for g, w in zip(got, want):
        assert g.dtype == w.dtype and g.shape == w.shape, (g.dtype, w.dtype, g.shape, w.shape)
        if exact or w.dtype.kind in "biu":
            np.testing.assert_array_equal(g, w)
        else:
            assert_close(g, w, rtol)
    return got


def unary_model(op, shape, dtype=np.float32, opset=17, out_dtype=None, **attrs):
    node = helper.make_node(op, ["x"], ["y"], **attrs)
    return make_model([node], [("x", shape, dtype)], [("y", shape, out_dtype or dtype)], opset=opset)


# values spanning the interesting ranges (tiny, around 1, large), odd count for the scalar tail
_WIDE = np.concatenate([np.linspace(-12, 12, 97), [1e-7, -3e-6, 0.0, 0.6, -0.63, 30.0, -40.0]]).astype(np.float32)


@pytest.mark.parametrize("op,data", [
    ("Exp", np.clip(_WIDE, -80, 80)), ("Log", np.abs(_WIDE) * 7 + 1e-30), ("Sqrt", np.abs(_WIDE)),
    ("Tanh", _WIDE), ("Sigmoid", _WIDE), ("Erf", _WIDE), ("Neg", _WIDE), ("Abs", _WIDE),
    ("Reciprocal", _WIDE + 0.05), ("Floor", _WIDE * 3.3), ("Ceil", _WIDE * 3.3), ("Softplus", _WIDE),
    ("HardSwish", _WIDE), ("Relu", _WIDE),
])
def test_unary_float(op, data):
    check(unary_model(op, [len(data)]), {"x": data}, rtol=2e-6)


def test_fast_math_relative_accuracy():
    """exp/log/tanh/erf/sigmoid stay within ~1e-6 *elementwise* relative error of float64 math."""
    import math
    x = np.concatenate([np.linspace(-20, 20, 4001), np.geomspace(1e-6, 80, 500)]).astype(np.float32)
    nodes = [helper.make_node(o, ["x"], [o.lower()]) for o in ("Exp", "Tanh", "Erf", "Sigmoid")]
    nodes.append(helper.make_node("Log", ["ax"], ["log"]))
    nodes.insert(0, helper.make_node("Abs", ["x"], ["ax"]))
    n = [len(x)]
    model = make_model(nodes, [("x", n)], [(o, n) for o in ("exp", "tanh", "erf", "sigmoid", "log")])
    exp, tanh, erf, sig, log = InferenceSession(model.SerializeToString()).run(None, {"x": x})
    x64 = x.astype(np.float64)
    with np.errstate(divide="ignore"):
        ref = {"exp": np.exp(x64), "tanh": np.tanh(x64), "erf": np.vectorize(math.erf)(x64),
               "sigmoid": 1 / (1 + np.exp(-x64)), "log": np.log(np.abs(x64))}
    for name, got in zip(ref, (exp, tanh, erf, sig, log)):
        want = ref[name]
        ok = np.isfinite(want) & (np.abs(want) > 1e-30)
        err = np.max(np.abs(got[ok] - want[ok]) / np.abs(want[ok]))
        assert err < 1e-6, (name, err)


def test_special_values():
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, -1.0], np.float32)
    nodes = [helper.make_node(o, ["x"], [o]) for o in ("Exp", "Log", "Tanh", "Sigmoid", "Erf", "Sqrt")]
    model = make_model(nodes, [("x", [6])], [(o, [6]) for o in ("Exp", "Log", "Tanh", "Sigmoid", "Erf", "Sqrt")])
    got = InferenceSession(model.SerializeToString()).run(None, {"x": x})
    want = ort_run(model, {"x": x})
    for name, g, w in zip(("Exp", "Log", "Tanh", "Sigmoid", "Erf", "Sqrt"), got, want):
        fin = np.isfinite(w)
        assert np.array_equal(np.isnan(g), np.isnan(w)), name
        assert np.array_equal(g[~fin & ~np.isnan(w)], w[~fin & ~np.isnan(w)]), name
        np.testing.assert_allclose(g[fin], w[fin], rtol=1e-6, atol=1e-30, err_msg=name)


@pytest.mark.parametrize("op,attrs,opset", [
    ("LeakyRelu", {}, 17), ("LeakyRelu", {"alpha": 0.3}, 17), ("Elu", {"alpha": 0.7}, 17), ("Selu", {}, 17),
    ("Selu", {"alpha": 1.5, "gamma": 2.0}, 17), ("HardSigmoid", {"alpha": 0.3, "beta": 0.4}, 17),
    ("Gelu", {}, 20), ("Gelu", {"approximate": "tanh"}, 20), ("Clip", {"min": -0.5, "max": 2.0}, 9),
    ("Clip", {}, 9),
])
def test_activations(op, attrs, opset):
    check(unary_model(op, ["n"], opset=opset, **attrs), {"x": _WIDE}, rtol=2e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.int32])
@pytest.mark.parametrize("bounds", [(-2, 3), (None, 3), (-2, None)])
def test_clip_inputs(dtype, bounds):
    names = ["x"] + ["lo" if bounds[0] is not None else "", "hi" if bounds[1] is not None else ""]
    inits = {k: np.array(v, dtype) for k, v in zip(("lo", "hi"), bounds) if v is not None}
    model = make_model([helper.make_node("Clip", names, ["y"])], [("x", [3, 7], dtype)], [("y", [3, 7], dtype)],
                       inits, opset=13)
    check(model, {"x": (np.arange(21).reshape(3, 7) - 10).astype(dtype)})


def test_clip_tensor_bound_input():
    model = make_model([helper.make_node("Clip", ["x", "lo", "hi"], ["y"])],
                       [("x", [2, 9]), ("lo", []), ("hi", [])], [("y", [2, 9])], opset=13)
    check(model, {"x": np.linspace(-3, 3, 18, dtype=np.float32).reshape(2, 9),
                  "lo": np.array(-1, np.float32), "hi": np.array(0.5, np.float32)})


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.int8])
@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div", "Neg", "Abs", "Max", "Min"])
def test_integer_arithmetic(op, dtype, rng):
    a = rng.integers(-50, 50, (3, 11)).astype(dtype)
    b = rng.integers(-9, 9, (11,)).astype(dtype)
    b[b == 0] = 3
    if op in ("Neg", "Abs"):
        model = unary_model(op, [3, 11], dtype)
        check(model, {"x": a})
        return
    model = make_model([helper.make_node(op, ["a", "b"], ["y"])], [("a", [3, 11], dtype), ("b", [11], dtype)],
                       [("y", [3, 11], dtype)])
    check(model, {"a": a, "b": b})


def test_integer_division_does_not_trap():
    model = make_model([helper.make_node("Div", ["a", "b"], ["y"])], [("a", [4], np.int64), ("b", [4], np.int64)],
                       [("y", [4], np.int64)])
    session = InferenceSession(model.SerializeToString())
    a = np.array([7, -7, np.iinfo(np.int64).min, 5])
    out = session.run(None, {"a": a, "b": np.array([1, 2, -1, -2])})[0]
    assert out[1] == -3 and out[3] == -2  # truncating division like ONNX Runtime
    assert out[2] == np.iinfo(np.int64).min  # no SIGFPE: wraps
    with pytest.raises(InputError, match="integer division by zero"):  # no SIGFPE: an error
        session.run(None, {"a": a, "b": np.array([0, 2, -1, -2])})


@pytest.mark.parametrize("op", ["Sum", "Min", "Max", "Mean"])
def test_variadic(op, rng):
    shapes = [(2, 3, 5), (5,), (3, 1)]
    feeds = {f"x{i}": rng.standard_normal(s).astype(np.float32) for i, s in enumerate(shapes)}
    model = make_model([helper.make_node(op, list(feeds), ["y"])], [(k, list(v.shape)) for k, v in feeds.items()],
                       [("y", [2, 3, 5])])
    check(model, feeds)


@pytest.mark.parametrize("exponent", [2.0, 3.0, 0.5, -1.0, 1.7])
def test_pow_constant_and_negative_base(exponent, rng):
    x = rng.standard_normal((4, 9)).astype(np.float32) * 3
    if exponent % 1:
        x = np.abs(x) + 0.1
    model = make_model([helper.make_node("Pow", ["x", "e"], ["y"])], [("x", [4, 9])], [("y", [4, 9])],
                       {"e": np.array(exponent, np.float32)})
    check(model, {"x": x}, rtol=2e-6)


def test_pow_integer_exponent_tensor(rng):
    x = rng.standard_normal((3, 5)).astype(np.float32)
    e = rng.integers(0, 4, (5,)).astype(np.int64)
    model = make_model([helper.make_node("Pow", ["x", "e"], ["y"])], [("x", [3, 5]), ("e", [5], np.int64)],
                       [("y", [3, 5])], opset=15)
    check(model, {"x": x, "e": e}, rtol=2e-6)


def test_prelu_broadcast_slope(rng):
    x = rng.standard_normal((2, 4, 3, 3)).astype(np.float32)
    slope = rng.standard_normal((4, 1, 1)).astype(np.float32)
    model = make_model([helper.make_node("PRelu", ["x", "s"], ["y"])], [("x", ["N", 4, 3, 3])],
                       [("y", ["N", 4, 3, 3])], {"s": slope})
    check(model, {"x": x})


@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.int32])
@pytest.mark.parametrize("op", ["Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual"])
def test_comparisons(op, dtype, rng):
    a = rng.integers(-3, 3, (4, 13)).astype(dtype)
    b = rng.integers(-3, 3, (13,)).astype(dtype)
    model = make_model([helper.make_node(op, ["a", "b"], ["y"])], [("a", [4, 13], dtype), ("b", [13], dtype)],
                       [("y", [4, 13], np.bool_)], opset=16)
    check(model, {"a": a, "b": b})


def test_compare_nan_and_signed_zero():
    a = np.array([np.nan, 0.0, -0.0, 1.0, -np.inf, 2.0, np.nan, 3.0, -1.5], np.float32)
    b = np.array([np.nan, -0.0, 0.0, np.nan, -np.inf, 1.0, 1.0, 3.0, -1.0], np.float32)
    ops = ["Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual"]
    model = make_model([helper.make_node(o, ["a", "b"], [o]) for o in ops], [("a", [9]), ("b", [9])],
                       [(o, [9], np.bool_) for o in ops], opset=16)
    check(model, {"a": a, "b": b})


def test_logic_and_where(rng):
    nodes = [helper.make_node("And", ["p", "q"], ["and"]), helper.make_node("Or", ["p", "q"], ["or"]),
             helper.make_node("Xor", ["p", "q"], ["xor"]), helper.make_node("Not", ["p"], ["not"]),
             helper.make_node("Where", ["p", "x", "y"], ["w"])]
    model = make_model(nodes, [("p", [3, 17], np.bool_), ("q", [17], np.bool_), ("x", [3, 17]), ("y", [1])],
                       [("and", [3, 17], np.bool_), ("or", [3, 17], np.bool_), ("xor", [3, 17], np.bool_),
                        ("not", [3, 17], np.bool_), ("w", [3, 17])])
    check(model, {"p": rng.random((3, 17)) > 0.5, "q": rng.random(17) > 0.5,
                  "x": rng.standard_normal((3, 17)).astype(np.float32), "y": np.array([-7.0], np.float32)})


def test_where_int64():
    model = make_model([helper.make_node("Where", ["c", "x", "y"], ["w"])],
                       [("c", [2, 5], np.bool_), ("x", [2, 5], np.int64), ("y", [5], np.int64)],
                       [("w", [2, 5], np.int64)])
    check(model, {"c": np.arange(10).reshape(2, 5) % 3 == 0, "x": np.arange(10).reshape(2, 5) * 10**12,
                  "y": -np.arange(5)})


@pytest.mark.parametrize("src,dst", [
    (np.float32, np.int64), (np.float32, np.int32), (np.float32, np.bool_), (np.float32, np.float16),
    (np.int64, np.float32), (np.int32, np.int64), (np.int64, np.int32), (np.bool_, np.float32),
    (np.bool_, np.int64), (np.int64, np.bool_), (np.float16, np.float32), (np.uint8, np.float32),
    (np.int8, np.int64),
])
def test_cast(src, dst):
    raw = np.array([-3.7, -1.0, -0.5, 0.0, 0.4, 1.0, 2.5, 100.9, 7.0, -120.2, 3.0], np.float64)
    if np.dtype(src).kind == "u":
        raw = np.abs(raw)
    x = raw.astype(src)
    model = unary_model("Cast", [11], src, out_dtype=dst, to=helper.np_dtype_to_tensor_dtype(np.dtype(dst)))
    check(model, {"x": x}, exact=True)


def test_float16_storage(rng):
    x = rng.standard_normal((5, 33)).astype(np.float16)
    nodes = [helper.make_node("Mul", ["x", "x"], ["m"]), helper.make_node("Tanh", ["m"], ["y"])]
    model = make_model(nodes, [("x", [5, 33], np.float16)], [("y", [5, 33], np.float16)])
    check(model, {"x": x}, rtol=1e-3)


# ---------------------------------------------------------------- reductions

_REDUCE_OPS = ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL2", "ReduceL1",
               "ReduceSumSquare", "ReduceLogSumExp"]


def _reduce_model(op, shape, axes, keepdims, opset, dtype=np.float32, noop=None):
    as_input = opset >= (13 if op == "ReduceSum" else 18)
    attrs = {"keepdims": keepdims}
    if noop is not None:
        attrs["noop_with_empty_axes"] = noop
    inits = {}
    if axes is not None and as_input:
        inits["axes"] = np.array(axes, np.int64)
    elif axes is not None:
        attrs["axes"] = axes
    node = helper.make_node(op, ["x"] + (["axes"] if inits else []), ["y"], **attrs)
    out = np.zeros(shape)
    if axes != []:
        out = np.sum(out, axis=None if axes is None else tuple(axes), keepdims=bool(keepdims))
    if axes == [] and not noop:
        out = np.sum(out, keepdims=bool(keepdims))
    return make_model([node], [("x", list(shape), dtype)], [("y", list(np.shape(out)), dtype)], inits, opset=opset)


@pytest.mark.parametrize("op", _REDUCE_OPS)
@pytest.mark.parametrize("axes,keepdims,opset", [
    ([-1], 1, 13), ([1], 0, 18), ([0, 2], 1, 11), (None, 0, 18), ([1, 2], 0, 13),
])
def test_reduce(op, axes, keepdims, opset, rng):
    shape = (3, 10, 37)  # axis 1: strided rows of 10, 4 vectors of rows and a tail of 5
    if op in ("ReduceMean", "ReduceL2", "ReduceL1", "ReduceSumSquare", "ReduceLogSumExp") and axes == [0, 2]:
        axes = [1, 2]  # non-adjacent axes are supported for sum/max/min/prod only
    x = rng.uniform(0.5, 1.5, shape).astype(np.float32)
    check(_reduce_model(op, shape, axes, keepdims, opset), {"x": x}, rtol=2e-6)


@pytest.mark.parametrize("op", ["ReduceMean", "ReduceL2", "ReduceLogSumExp"])
@pytest.mark.parametrize("axes,keepdims", [([0, 2], 1), ([0, 2, 3], 0), ([1, 3], 1)])
def test_reduce_non_adjacent_axes(op, axes, keepdims, rng):
    """Reductions that do not compose axis group by axis group move the reduced axes last first."""
    x = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    check(_reduce_model(op, (2, 3, 4, 5), axes, keepdims, 13), {"x": x}, rtol=1e-5)


@pytest.mark.parametrize("noop", [0, 1])
def test_reduce_empty_axes(noop, rng):
    x = rng.standard_normal((2, 5)).astype(np.float32)
    check(_reduce_model("ReduceSum", (2, 5), [], 1, 13, noop=noop), {"x": x})


@pytest.mark.parametrize("dtype", [np.int64, np.int32])
@pytest.mark.parametrize("op", ["ReduceSum", "ReduceMax", "ReduceMin"])
@pytest.mark.parametrize("axis", [1, 0])
def test_reduce_integers(op, dtype, axis, rng):
    """axis 0: 19 strided rows of 11, two vectors of adjacent rows (one per lane) and 3 rows one by one."""
    x = rng.integers(-100, 100, (11, 19)).astype(dtype)
    check(_reduce_model(op, (11, 19), [axis], 0, 13, dtype=dtype), {"x": x})


@pytest.mark.parametrize("op", ["ArgMax", "ArgMin"])
@pytest.mark.parametrize("axis,keepdims,last", [(1, 1, 0), (-1, 0, 0), (0, 1, 1), (2, 0, 1)])
def test_arg_reduce(op, axis, keepdims, last, rng):
    x = rng.integers(0, 4, (3, 5, 6)).astype(np.float32)  # many ties
    out = np.argmax(x, axis=axis, keepdims=bool(keepdims)).shape
    model = make_model([helper.make_node(op, ["x"], ["y"], axis=axis, keepdims=keepdims, select_last_index=last)],
                       [("x", [3, 5, 6])], [("y", list(out), np.int64)], opset=13)
    check(model, {"x": x})


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize("axis,opset", [(-1, 13), (1, 13), (0, 13), (1, 11), (2, 11), (None, 11), (None, 13)])
def test_softmax(op, axis, opset, rng):
    x = (rng.standard_normal((2, 3, 21)) * 5).astype(np.float32)
    attrs = {} if axis is None else {"axis": axis}
    model = make_model([helper.make_node(op, ["x"], ["y"], **attrs)], [("x", ["b", 3, 21])], [("y", ["b", 3, 21])],
                       opset=opset)
    check(model, {"x": x}, rtol=2e-6)


def test_softmax_large_magnitudes():
    x = np.array([[1000.0, 1001.0, -1000.0, 0.0, 999.5, 3.0, 2.0, 1.0, 0.5]], np.float32)
    model = make_model([helper.make_node("Softmax", ["x"], ["y"])], [("x", [1, 9])], [("y", [1, 9])])
    check(model, {"x": x}, rtol=2e-6)


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
def test_softmax_non_finite_rows_match_onnxruntime(op):
    """A NaN or +inf element makes its whole row NaN, an all -inf row is NaN, a -inf element is
    0 (-inf for LogSoftmax); the row max may skip NaNs without changing that."""
    row = np.arange(12, dtype=np.float32)
    x = np.stack([row, row, row, row, np.full(12, -np.inf, np.float32)])
    x[0, 2], x[1, 2], x[2, 2], x[3, 11] = np.nan, np.inf, -np.inf, np.nan
    model = make_model([helper.make_node(op, ["x"], ["y"])], [("x", [5, 12])], [("y", [5, 12])])
    got = InferenceSession(model.SerializeToString()).run(None, {"x": x})[0]
    want = ort_run(model, {"x": x})[0]
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got[2], want[2], rtol=2e-6)


@pytest.mark.parametrize("axis,bias", [(-1, True), (-1, False), (1, True)])
def test_layer_norm(axis, bias, rng):
    shape = (2, 3, 40)
    x = (rng.standard_normal(shape) * 3 + 1).astype(np.float32)
    norm = shape[axis:]
    inits = {"s": rng.standard_normal(norm).astype(np.float32)}
    if bias:
        inits["b"] = rng.standard_normal(norm).astype(np.float32)
    node = helper.make_node("LayerNormalization", ["x", "s"] + (["b"] if bias else []), ["y"], axis=axis,
                            epsilon=1e-3)
    model = make_model([node], [("x", ["n", 3, 40])], [("y", ["n", 3, 40])], inits, opset=17)
    check(model, {"x": x}, rtol=2e-6)


def test_layer_norm_runtime_scale(rng):
    node = helper.make_node("LayerNormalization", ["x", "s", "b"], ["y"])
    model = make_model([node], [("x", [4, 13]), ("s", [13]), ("b", [13])], [("y", [4, 13])], opset=17)
    check(model, {"x": rng.standard_normal((4, 13)).astype(np.float32),
                  "s": rng.standard_normal(13).astype(np.float32), "b": rng.standard_normal(13).astype(np.float32)})


# ------------------------------------------------------- gather, shapes, tensors


@pytest.mark.parametrize("axis,idx_shape", [(0, [5]), (0, [2, 3]), (1, [4]), (-1, []), (2, [3, 1])])
@pytest.mark.parametrize("idx_dtype", [np.int64, np.int32])
def test_gather(axis, idx_shape, idx_dtype, rng):
    data = rng.standard_normal((6, 7, 9)).astype(np.float32)
    size = data.shape[axis]
    idx = rng.integers(-size, size, idx_shape).astype(idx_dtype)
    out = np.take(data, idx, axis=axis).shape
    model = make_model([helper.make_node("Gather", ["d", "i"], ["y"], axis=axis)],
                       [("d", [6, 7, 9]), ("i", idx_shape, idx_dtype)], [("y", list(out))], opset=13)
    check(model, {"d": data, "i": idx})


def test_gather_embedding_int64_ids_dynamic(rng):
    table = rng.standard_normal((50, 16)).astype(np.float32)
    model = make_model([helper.make_node("Gather", ["w", "ids"], ["y"])],
                       [("ids", ["batch", "seq"], np.int64)], [("y", ["batch", "seq", 16])], {"w": table})
    sess = InferenceSession(model.SerializeToString())
    for b, s in ((2, 5), (3, 11)):
        ids = rng.integers(0, 50, (b, s))
        np.testing.assert_array_equal(sess.run(None, {"ids": ids})[0], table[ids])


@pytest.mark.parametrize("bad", [50, -51, 10**12])
def test_gather_out_of_range_index_raises(bad):
    from pyflame_rt.errors import InputError
    table = np.arange(100, dtype=np.float32).reshape(50, 2)
    model = make_model([helper.make_node("Gather", ["w", "ids"], ["y"])], [("ids", [3], np.int64)],
                       [("y", [3, 2])], {"w": table})
    sess = InferenceSession(model.SerializeToString())
    with pytest.raises(InputError, match="outside \\[-50, 50\\)"):
        sess.run(None, {"ids": np.array([1, bad, 2])})
    np.testing.assert_array_equal(sess.run(None, {"ids": np.array([1, -1, 2])})[0], table[[1, -1, 2]])


def _shape_chain_model(opset=13):
    """x[b, s, 12] -> Reshape(x, [b, s, 3, 4]) with the target computed from Shape like torch exports,
    plus the shape and a Gather'd dim returned as int64 outputs (materialized from symbolic dims)."""
    c = lambda name, v: helper.make_node("Constant", [], [name], value=helper.make_tensor(  # noqa: E731
        name, 7, [len(v)] if isinstance(v, list) else [], v if isinstance(v, list) else [v]))
    nodes = [
        helper.make_node("Shape", ["x"], ["shape"]), c("i0", 0), c("i1", 1),
        helper.make_node("Gather", ["shape", "i0"], ["b"], axis=0),
        helper.make_node("Gather", ["shape", "i1"], ["s"], axis=0),
        c("ax", [0]), helper.make_node("Unsqueeze", ["b", "ax"], ["b1"]),
        helper.make_node("Unsqueeze", ["s", "ax"], ["s1"]), c("tail", [3, 4]),
        helper.make_node("Concat", ["b1", "s1", "tail"], ["target"], axis=0),
        helper.make_node("Reshape", ["x", "target"], ["y"]),
        helper.make_node("Mul", ["b", "s"], ["bs"]), c("m1", [-1]),
        helper.make_node("Unsqueeze", ["bs", "ax"], ["bs1"]),
        helper.make_node("Concat", ["bs1", "m1"], ["flat_t"], axis=0),
        helper.make_node("Reshape", ["x", "flat_t"], ["flat"]),
    ]
    return make_model(nodes, [("x", ["b", "s", 12])],
                      [("y", ["b", "s", 3, 4]), ("flat", ["bs", 12]), ("shape", [3], np.int64), ("s", [], np.int64)],
                      opset=opset)


def test_shape_subgraph_reshape_is_symbolic(rng):
    from pyflame_rt.importers.onnx import from_onnx
    from pyflame_rt.dialects import graph_tensor as gt
    model = _shape_chain_model()
    ops = [op.name for op in from_onnx(model).main.walk()]
    assert "graph.gather" not in ops and ops.count("graph.reshape") == 2  # shape ops evaluated at import
    assert any(op == gt.DimValuesOp.name for op in ops)  # the int64 outputs are materialized
    sess = InferenceSession(model.SerializeToString())
    for b, s in ((2, 3), (1, 7)):
        x = rng.standard_normal((b, s, 12)).astype(np.float32)
        y, flat, shape, s_out = sess.run(None, {"x": x})
        want = ort_run(model, {"x": x})
        np.testing.assert_array_equal(y, want[0])
        np.testing.assert_array_equal(flat, want[1])
        np.testing.assert_array_equal(shape, want[2])
        assert s_out.shape == () and s_out == s


def test_expand_constant_of_shape_range_from_shapes(rng):
    c = lambda name, v: helper.make_node("Constant", [], [name], value=helper.make_tensor(  # noqa: E731
        name, 7, [], [v]))
    nodes = [
        helper.make_node("Shape", ["x"], ["shape"]), c("i1", 1), c("zero", 0), c("one", 1),
        helper.make_node("Gather", ["shape", "i1"], ["s"], axis=0),
        helper.make_node("Range", ["zero", "s", "one"], ["pos"]),
        helper.make_node("ConstantOfShape", ["shape"], ["ones"],
                         value=helper.make_tensor("v", 1, [1], [1.5])),
        helper.make_node("Expand", ["row", "shape"], ["expanded"]),
        helper.make_node("Add", ["ones", "expanded"], ["y"]),
    ]
    model = make_model(nodes, [("x", ["b", "s", 4])], [("y", ["b", "s", 4]), ("pos", ["s"], np.int64)],
                       {"row": np.arange(4, dtype=np.float32)})
    sess = InferenceSession(model.SerializeToString())
    for b, s in ((2, 3), (4, 9)):
        x = np.zeros((b, s, 4), np.float32)
        got, want = sess.run(None, {"x": x}), ort_run(model, {"x": x})
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("start,limit,delta,dtype", [(0, 10, 1, np.int64), (2, -7, -3, np.int32),
                                                     (0.5, 3.0, 0.25, np.float32)])
def test_range_constant(start, limit, delta, dtype):
    inits = {k: np.array(v, dtype) for k, v in zip(("a", "b", "c"), (start, limit, delta))}
    n = len(np.arange(start, limit, delta))
    model = make_model([helper.make_node("Range", ["a", "b", "c"], ["y"])], [], [("y", [n], dtype)], inits, opset=11)
    model.graph.ClearField("input")
    check(model, {})


@pytest.mark.parametrize("stash_type", [1, 10])
def test_range_float16_stash_type(stash_type):
    """Opset 27's stash_type: float16 elements computed in float32 (1); float16 accumulation refused."""
    from onnx.reference import ReferenceEvaluator
    from pyflame_rt.errors import UnsupportedOperatorError

    inits = {k: np.array(v, np.float16) for k, v in zip(("a", "b", "c"), (1000.0, 1100.0, 0.3))}
    n = len(np.arange(1000.0, 1100.0, np.float16(0.3)))
    model = make_model([helper.make_node("Range", ["a", "b", "c"], ["y"], stash_type=stash_type)], [],
                       [("y", [n], np.float16)], inits, opset=27)
    if stash_type != 1:
        with pytest.raises(UnsupportedOperatorError, match="stash_type"):
            InferenceSession(model.SerializeToString())
        return
    (got,) = InferenceSession(model.SerializeToString()).run(None, {})
    np.testing.assert_array_equal(got, ReferenceEvaluator(model).run(None, {})[0])


@pytest.mark.parametrize("upper", [0, 1])
@pytest.mark.parametrize("k", [-2, 0, 1, 5])
def test_trilu(upper, k, rng):
    x = rng.standard_normal((2, 5, 11)).astype(np.float32)
    model = make_model([helper.make_node("Trilu", ["x", "k"], ["y"], upper=upper)], [("x", [2, 5, 11])],
                       [("y", [2, 5, 11])], {"k": np.array(k, np.int64)}, opset=14)
    check(model, {"x": x})


def test_trilu_bool_causal_mask():
    model = make_model([helper.make_node("Trilu", ["x"], ["y"], upper=1)], [("x", [6, 6], np.bool_)],
                       [("y", [6, 6], np.bool_)], opset=14)
    check(model, {"x": np.ones((6, 6), bool)})


@pytest.mark.parametrize("eq,shapes", [
    ("ij,jk->ik", [(3, 4), (4, 5)]),
    ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
    ("bqhd,bkhd->bhqk", [(2, 5, 3, 4), (2, 6, 3, 4)]),
    ("bhqk,bkhd->bqhd", [(2, 3, 5, 6), (2, 6, 3, 4)]),
    ("ij->ji", [(3, 7)]),
    ("bij->bj", [(2, 3, 7)]),
    ("...ij,...jk->...ik", [(2, 3, 4), (2, 4, 5)]),
    ("ij,kj", [(3, 4), (5, 4)]),
    ("ii->i", [(5, 5)]), ("ii", [(4, 4)]), ("...ii->...i", [(2, 3, 4, 4)]), ("bjib->ij", [(3, 2, 4, 3)]),
])
def test_einsum(eq, shapes, rng):
    feeds = {f"x{i}": rng.standard_normal(s).astype(np.float32) for i, s in enumerate(shapes)}
    out = np.einsum(eq, *feeds.values()).shape
    model = make_model([helper.make_node("Einsum", list(feeds), ["y"], equation=eq)],
                       [(k, list(v.shape)) for k, v in feeds.items()], [("y", list(out))], opset=12)
    check(model, feeds)


@pytest.mark.parametrize("axis,exclusive,reverse", [(0, 0, 0), (1, 1, 0), (-1, 0, 1), (2, 1, 1)])
@pytest.mark.parametrize("dtype", [np.float32, np.int64])
def test_cumsum(axis, exclusive, reverse, dtype, rng):
    x = rng.integers(-5, 5, (3, 4, 6)).astype(dtype)
    model = make_model([helper.make_node("CumSum", ["x", "a"], ["y"], exclusive=exclusive, reverse=reverse)],
                       [("x", [3, 4, 6], dtype)], [("y", [3, 4, 6], dtype)], {"a": np.array(axis, np.int64)}, opset=14)
    check(model, {"x": x})


@pytest.mark.parametrize("axis,exclusive,reverse", [(0, 0, 0), (1, 1, 0), (-1, 0, 1), (2, 1, 1)])
@pytest.mark.parametrize("dtype", [np.float32, np.int32])
@pytest.mark.parametrize("folded", [False, True])
def test_cumprod(axis, exclusive, reverse, dtype, folded, rng):
    """Opset 26, newer than onnxruntime's: checked with onnx's reference implementation, compiled
    and (a constant input) folded at compile time by the graph dialect's reference semantics."""
    from onnx.reference import ReferenceEvaluator

    x = rng.integers(-3, 4, (3, 4, 6)).astype(dtype)
    node = helper.make_node("CumProd", ["x", "a"], ["y"], exclusive=exclusive, reverse=reverse)
    inits = {"a": np.array(axis, np.int64), **({"x": x} if folded else {})}
    model = make_model([node], [] if folded else [("x", [3, 4, 6], dtype)], [("y", [3, 4, 6], dtype)], inits,
                       opset=26)
    feeds = {} if folded else {"x": x}
    (got,) = InferenceSession(model.SerializeToString()).run(None, feeds)
    np.testing.assert_array_equal(got, ReferenceEvaluator(model).run(None, feeds)[0])


def test_bitcast_as_output_and_as_a_view(rng):
    """Opset 26 (newer than onnxruntime's): the same bytes, read as int32 for the graph output (a
    copy) and as float64 -> int64 feeding an Add (an alias)."""
    from onnx import TensorProto

    x, d = rng.standard_normal((3, 5)).astype(np.float32), rng.standard_normal((2, 4))
    nodes = [helper.make_node("BitCast", ["x"], ["bits"], to=TensorProto.INT32),
             helper.make_node("BitCast", ["d"], ["d_bits"], to=TensorProto.INT64),
             helper.make_node("Add", ["d_bits", "one"], ["next"])]
    model = make_model(nodes, [("x", ["n", 5]), ("d", [2, 4], np.float64)],
                       [("bits", ["n", 5], np.int32), ("next", [2, 4], np.int64)], {"one": np.array(1, np.int64)},
                       opset=26)
    bits, nxt = InferenceSession(model.SerializeToString()).run(None, {"x": x, "d": d})
    np.testing.assert_array_equal(bits, x.view(np.int32))
    np.testing.assert_array_equal(nxt, d.view(np.int64) + 1)


@pytest.mark.parametrize("axis,k,largest", [(-1, 3, 1), (-1, 1, 0), (1, 4, 1), (0, 2, 0), (-1, 9, 1)])
def test_topk(axis, k, largest, rng):
    x = rng.integers(0, 6, (3, 4, 9)).astype(np.float32)  # ties: indices must keep their order
    shape = list(x.shape)
    shape[axis] = k
    node = helper.make_node("TopK", ["x", "k"], ["v", "i"], axis=axis, largest=largest)
    model = make_model([node], [("x", ["n", 4, 9])], [("v", shape), ("i", shape, np.int64)],
                       {"k": np.array([k], np.int64)}, opset=11)
    check(model, {"x": x})


def test_layer_norm_mean_and_inv_std_dev_outputs(rng):
    node = helper.make_node("LayerNormalization", ["x", "s", "b"], ["y", "mean", "isd"], axis=1)
    model = make_model([node], [("x", [3, 4, 5])], [("y", [3, 4, 5]), ("mean", [3, 1, 1]), ("isd", [3, 1, 1])],
                       {"s": rng.standard_normal((4, 5)).astype(np.float32),
                        "b": rng.standard_normal((4, 5)).astype(np.float32)}, opset=17)
    check(model, {"x": rng.standard_normal((3, 4, 5)).astype(np.float32)}, rtol=2e-6)


def test_einsum_scalar_operand():
    model = make_model([helper.make_node("Einsum", ["x"], ["y"], equation="->")], [("x", [])], [("y", [])], opset=12)
    check(model, {"x": np.array(2.5, np.float32)})


@pytest.mark.parametrize("attrs", [dict(axis=1), dict(axis=-2), {}])
def test_compress_sizes_by_the_condition(attrs):
    """Compress: the count of true conditions is a dim bound while the model runs (NonZero)."""
    m = make_model([helper.make_node("Compress", ["x", "c"], ["y"], **attrs)], [("x", ["n", 3]), ("c", [3], np.bool_)],
                   [("y", [None, None] if attrs else [None])])
    sess = InferenceSession(m.SerializeToString())
    for c in ([True, False, True], [False] * 3, [True] * 3):
        feeds = {"x": np.arange(12, dtype=np.float32).reshape(4, 3), "c": np.array(c)}
        got, want = sess.run(None, feeds)[0], ort_run(m, feeds)[0]
        assert got.shape == want.shape and np.array_equal(got, want)
    if attrs.get("axis") == -2:  # a condition past the axis selects positions the input does not have
        with pytest.raises(InputError, match="Gather"):
            sess.run(None, {"x": np.ones((2, 3), np.float32), "c": np.array([False, False, True])})
