"""Numerics at the edges, against onnxruntime: NaN through fused epilogues, clamps and pooling,
integer division by zero, Exp near overflow and in the subnormals, cancellation-free LayerNorm /
InstanceNorm statistics, and the special values of Pow and Log (compiled and constant-folded)."""
import numpy as np
import pytest
from onnx import helper

from conftest import make_model, ort_run
from pyflame_rt import InferenceSession, OptLevel, SessionOptions, opt
from pyflame_rt.importers.onnx import from_onnx
from pyflame_rt.compiler import CompileOptions, compile_model
from pyflame_rt.errors import InputError
from pyflame_rt.executable import Executable
from pyflame_rt.transforms.graph_pass import node_census

NAN, INF = np.nan, np.inf


def _run(model, feeds, level=OptLevel.ALL):
    session = InferenceSession(model.SerializeToString(), SessionOptions(optimization_level=level))
    return session, session.run(None, feeds)


def assert_same(got, want, rtol=1e-6, atol=0.0):
    """Equal NaN positions, infinities and zero signs; finite values close."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape and got.dtype == want.dtype
    assert np.array_equal(np.isnan(got), np.isnan(want)), (got, want)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)
    zeros = want == 0
    assert np.array_equal(np.signbit(got[zeros]), np.signbit(want[zeros])), (got, want)


# ---------------------------------------------------------------- NaN in fused epilogues

def _assert_fused_and_like_onnxruntime(model, feeds):
    """The fused IR compiled as it is (NCHW: im2col GEMM, window kernels) and the optimized model
    (channels-last convolutions): no activation left unfused, outputs as onnxruntime's."""
    fused = from_onnx(model)
    opt.fuse_operators(fused)
    assert not {"graph.relu", "graph.clip"} & set(node_census(fused.module)), node_census(fused.module)
    compiled = compile_model(fused, CompileOptions(opt_level=OptLevel.NONE))
    nchw, nhwc = Executable(compiled, 1), InferenceSession(model.SerializeToString())
    for kernels in (compiled.header["kernels"], nhwc.header["kernels"]):
        assert not any(k.startswith(("ew_relu", "ew_clip")) for k in kernels), kernels
    want = ort_run(model, feeds)
    assert all(np.isnan(w).any() for w in want)
    for got in (nchw.run(list(feeds.values())), nhwc.run(None, feeds)):
        for g, w in zip(got, want):
            assert_same(g, w, rtol=1e-5, atol=1e-5 * np.abs(w[np.isfinite(w)]).max())


def _clip_06():
    return {"lo": np.array(0, np.float32), "hi": np.array(6, np.float32)}


def _image_with_nan(rng, shape):
    x = rng.standard_normal(shape).astype(np.float32)
    x[0, 1, 2, 3] = NAN
    x[-1, :, 0, 0] = -INF  # -inf times a weight: NaN or +-inf, then Relu / Clip of those
    return x


def test_nan_propagates_through_fused_window_epilogues(rng):
    """Depthwise Conv + Clip(0, 6) and depthwise Conv + bias + Relu (window kernels)."""
    c = 4
    inits = {"wd": rng.standard_normal((c, 1, 3, 3), np.float32), "we": rng.standard_normal((c, 1, 3, 3), np.float32),
             "be": rng.standard_normal(c, np.float32), **_clip_06()}
    nodes = [helper.make_node("Conv", ["x", "wd"], ["c1"], pads=[1, 1, 1, 1], group=c),
             helper.make_node("Clip", ["c1", "lo", "hi"], ["y1"]),
             helper.make_node("Conv", ["x", "we", "be"], ["c2"], group=c), helper.make_node("Relu", ["c2"], ["y2"])]
    model = make_model(nodes, [("x", ["N", c, 6, 7])], [("y1", ["N", c, 6, 7]), ("y2", ["N", c, 4, 5])],
                       inits, opset=13)
    _assert_fused_and_like_onnxruntime(model, {"x": _image_with_nan(rng, (2, c, 6, 7))})


@pytest.mark.slow
def test_nan_propagates_through_fused_gemm_epilogues(rng):
    """Conv + Relu, Conv + Clip(0, 6), Gemm + Relu, Add + Relu (GEMM and elementwise kernels)."""
    c, m = 4, 6
    inits = {"w1": rng.standard_normal((m, c, 3, 3), np.float32), "b1": rng.standard_normal(m, np.float32),
             "w2": rng.standard_normal((m, c, 1, 1), np.float32), "wg": rng.standard_normal((8, 5), np.float32),
             "bg": rng.standard_normal(5, np.float32), **_clip_06()}
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["y1"]),
             helper.make_node("Conv", ["x", "w2"], ["c2"]), helper.make_node("Clip", ["c2", "lo", "hi"], ["y2"]),
             helper.make_node("Gemm", ["g", "wg", "bg"], ["c3"]), helper.make_node("Relu", ["c3"], ["y3"]),
             helper.make_node("Add", ["g", "g2"], ["c4"]), helper.make_node("Relu", ["c4"], ["y4"])]
    model = make_model(nodes, [("x", ["N", c, 6, 7]), ("g", ["N", 8]), ("g2", ["N", 8])],
                       [("y1", ["N", m, 6, 7]), ("y2", ["N", m, 6, 7]), ("y3", ["N", 5]), ("y4", ["N", 8])],
                       inits, opset=13)
    feeds = {"x": _image_with_nan(rng, (2, c, 6, 7)), "g": rng.standard_normal((2, 8), np.float32),
             "g2": rng.standard_normal((2, 8), np.float32)}
    feeds["g"][0, 3] = NAN
    feeds["g2"][1, 5] = NAN
    _assert_fused_and_like_onnxruntime(model, feeds)


@pytest.mark.slow
def test_one_nan_pixel_makes_every_logit_nan(rng):
    """A MobileNetV2-like stem: Conv + BN + Clip(0, 6), depthwise Conv + Clip(0, 6), pointwise Conv,
    GlobalAveragePool, Gemm. One NaN pixel spreads to every logit, as in onnxruntime."""
    inits = {"w1": rng.standard_normal((8, 3, 3, 3), np.float32) / 3, "s": rng.random(8, np.float32) + 0.5,
             "b": rng.standard_normal(8, np.float32), "m": rng.standard_normal(8, np.float32),
             "v": rng.random(8, np.float32) + 0.5, "wd": rng.standard_normal((8, 1, 3, 3), np.float32),
             "wp": rng.standard_normal((16, 8, 1, 1), np.float32), "wf": rng.standard_normal((10, 16), np.float32),
             "bf": rng.standard_normal(10, np.float32), **_clip_06()}
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1], strides=[2, 2]),
             helper.make_node("BatchNormalization", ["c1", "s", "b", "m", "v"], ["n1"]),
             helper.make_node("Clip", ["n1", "lo", "hi"], ["a1"]),
             helper.make_node("Conv", ["a1", "wd"], ["c2"], pads=[1, 1, 1, 1], group=8),
             helper.make_node("Clip", ["c2", "lo", "hi"], ["a2"]),
             helper.make_node("Conv", ["a2", "wp"], ["c3"]),
             helper.make_node("GlobalAveragePool", ["c3"], ["p"]), helper.make_node("Flatten", ["p"], ["f"]),
             helper.make_node("Gemm", ["f", "wf", "bf"], ["logits"], transB=1)]
    model = make_model(nodes, [("x", [1, 3, 16, 16])], [("logits", [1, 10])], inits, opset=13)
    x = rng.standard_normal((1, 3, 16, 16), np.float32)
    x[0, 0, 7, 9] = NAN
    want = ort_run(model, {"x": x})[0]
    assert np.isnan(want).all()
    session, (got,) = _run(model, {"x": x})
    assert np.isnan(got).all(), got  # was 10 finite logits
    assert "clip" not in session.header["op_summary"] and "relu6" in " ".join(session.header["kernels"])


def test_standalone_activations_keep_nan_and_negative_zero():
    x = np.array([NAN, -1, -0.0, 0, 2, 7, -INF, INF], np.float32)
    cases = [("Relu", {}, {}), ("Clip", {}, {"lo": 0.0, "hi": 6.0}), ("Clip", {}, {"lo": -0.5, "hi": 0.5}),
             ("LeakyRelu", {"alpha": 0.1}, {}), ("HardSigmoid", {}, {}), ("HardSwish", {}, {}),
             ("Elu", {}, {}), ("Selu", {}, {}), ("Celu", {}, {}), ("Softplus", {}, {}), ("Sigmoid", {}, {}),
             ("Erf", {}, {}), ("Max", {}, {"k": 1.0}), ("Min", {}, {"k": 1.0}), ("Exp", {}, {}), ("Log", {}, {})]
    nodes, outputs, inits = [], [], {}
    for i, (kind, attrs, consts) in enumerate(cases):
        names = {k: f"{k}{i}" for k in consts}
        inits.update({names[k]: np.array(v, np.float32) for k, v in consts.items()})
        nodes.append(helper.make_node(kind, ["x", *names.values()], [f"y{i}"], **attrs))
        outputs.append((f"y{i}", [8]))
    model = make_model(nodes, [("x", [8])], outputs, inits, opset=17)
    want = ort_run(model, {"x": x})
    _, got = _run(model, {"x": x})
    for (kind, _, _), g, w in zip(cases, got, want):
        np.testing.assert_array_equal(np.isnan(g), np.isnan(w), err_msg=kind)
        if kind in ("Relu", "Clip"):  # max / min of -0: onnxruntime keeps the -0
            assert_same(g, w)


# ---------------------------------------------------------------- pooling

def _pool_model(kind, shape, out_shape, **attrs):
    return make_model([helper.make_node(kind, ["x"], ["y"], **attrs)], [("x", shape)], [("y", out_shape)], opset=13)


def _window_max(x, k):
    n, c, h, w = x.shape
    return x.reshape(n, c, h // k, k, w // k, k).max(axis=(3, 5))  # numpy's max propagates NaN


def test_max_pools_propagate_nan(rng):
    """onnxruntime's pools return NaN only for some positions of the NaN in a window (the last one,
    as placed here); a NaN anywhere in a window gives NaN here, as numpy's max does."""
    x = rng.standard_normal((1, 3, 8, 8), np.float32)
    x[0, 0, 1, 1] = NAN   # last element of its 2x2 window and of no other: onnxruntime propagates it
    x[0, 1, 7, 7] = NAN   # last element of plane 1 (GlobalMaxPool)
    x[0, 2, 4, 4] = NAN   # first element of its window: onnxruntime drops it
    models = {"max": _pool_model("MaxPool", [1, 3, 8, 8], [1, 3, 4, 4], kernel_shape=[2, 2], strides=[2, 2]),
              "global": _pool_model("GlobalMaxPool", [1, 3, 8, 8], [1, 3, 1, 1])}
    want = {name: ort_run(m, {"x": x})[0] for name, m in models.items()}
    assert np.isnan(want["max"][0, 0, 0, 0]) and np.isnan(want["global"][0, 1, 0, 0])
    expect = {"max": _window_max(x, 2), "global": x.max(axis=(2, 3), keepdims=True)}
    for name, model in models.items():
        _, (got,) = _run(model, {"x": x})
        np.testing.assert_array_equal(got, expect[name])  # equal_nan: NaN where the window has one
        ort_propagates = np.isnan(want[name])
        np.testing.assert_array_equal(got[ort_propagates], want[name][ort_propagates])


def test_channels_last_and_argmax_max_pools_propagate_nan(rng):
    """The NHWC window kernel (MaxPool after a Conv, optimized) and the argmax-tracking MaxPool."""
    w = rng.standard_normal((4, 4, 1, 1), np.float32)
    conv_pool = make_model([helper.make_node("Conv", ["x", "w"], ["c"]),
                            helper.make_node("MaxPool", ["c"], ["y"], kernel_shape=[3, 3], strides=[1, 1])],
                           [("x", [1, 4, 6, 6])], [("y", [1, 4, 4, 4])], {"w": w}, opset=13)
    x = rng.standard_normal((1, 4, 6, 6), np.float32)
    x[0, 2, 3, 3] = NAN  # every output channel of the conv is NaN at (3, 3)
    c = np.einsum("oc,nchw->nohw", w[:, :, 0, 0], x)
    want = np.stack([c[..., i:i + 4, j:j + 4] for i in range(3) for j in range(3)]).max(axis=0)
    session, (got,) = _run(conv_pool, {"x": x})
    assert any("nhwc" in k for k in session.header["kernels"]), session.header["kernels"]
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    assert np.isnan(got).any()

    indexed = make_model([helper.make_node("MaxPool", ["x"], ["y", "i"], kernel_shape=[2, 2], strides=[2, 2])],
                         [("x", [1, 1, 4, 4])], [("y", [1, 1, 2, 2]), ("i", [1, 1, 2, 2], np.int64)], opset=13)
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    x[0, 0, 0, 1] = NAN  # the first NaN of a window is its maximum and argmax (onnxruntime: dropped)
    x[0, 0, 3, 3] = NAN
    x[0, 0, 2, 1] = NAN
    want_y, want_i = ort_run(indexed, {"x": x})
    _, (y, i) = _run(indexed, {"x": x})
    np.testing.assert_array_equal(y[0, 0], [[NAN, 7], [NAN, NAN]])
    np.testing.assert_array_equal(i[0, 0], [[1, 7], [9, 15]])
    np.testing.assert_array_equal(i[0, 0, 0, 1], want_i[0, 0, 0, 1])  # the window without NaN


def test_reductions_and_argmax_with_nan_match_onnxruntime_where_it_propagates():
    rows = np.array([[NAN, 1, 3, 2], [1, 2, 3, 0], [NAN, NAN, 1, 1], [5, NAN, 7, 7]], np.float32)
    nodes = [helper.make_node("ReduceMax", ["x"], ["mx"], axes=[1], keepdims=0),
             helper.make_node("ReduceMin", ["x"], ["mn"], axes=[1], keepdims=0),
             helper.make_node("ArgMax", ["x"], ["am"], axis=1, keepdims=0),
             helper.make_node("ArgMin", ["x"], ["an"], axis=1, keepdims=0)]
    model = make_model(nodes, [("x", [4, 4])], [("mx", [4]), ("mn", [4]), ("am", [4], np.int64),
                                                ("an", [4], np.int64)], opset=13)
    want = ort_run(model, {"x": rows})
    _, got = _run(model, {"x": rows})
    for g, w in zip(got[:2], want[:2]):  # NaN wherever the row has one (onnxruntime: first place only)
        assert np.array_equal(np.isnan(g), np.isnan(rows).any(axis=1))
        np.testing.assert_array_equal(g[np.isnan(w)], w[np.isnan(w)])
    for g, w in zip(got[2:], want[2:]):
        np.testing.assert_array_equal(g, w)


# ---------------------------------------------------------------- integer division

def _div_model(kind, dtype, fmod=None, constants=None):
    """y = a / b or a mod b: inputs, or the `constants` (a, b) (evaluated at import time)."""
    attrs = {} if fmod is None else {"fmod": fmod}
    node = helper.make_node(kind, ["a", "b"], ["y"], **attrs)
    if constants is None:
        return make_model([node], [("a", ["n"], dtype), ("b", ["n"], dtype)], [("y", ["n"], dtype)], opset=17)
    a, b = (np.asarray(v, dtype) for v in constants)
    return make_model([node], [], [("y", list(a.shape), dtype)], {"a": a, "b": b}, opset=17)


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.int8, np.uint8])
@pytest.mark.parametrize("kind,fmod", [("Div", None), ("Mod", 0), ("Mod", 1)])
def test_integer_division_by_zero_raises_like_onnxruntime(dtype, kind, fmod):
    model = _div_model(kind, dtype, fmod)
    what = "division" if kind == "Div" else "modulo"
    session = InferenceSession(model.SerializeToString())
    for n in (3, 37):  # a scalar-tail lane and a vector lane
        a, b = np.arange(10, 10 + n).astype(dtype), np.full(n, 3, dtype)
        np.testing.assert_array_equal(session.run(None, {"a": a, "b": b})[0], ort_run(model, {"a": a, "b": b})[0])
        b[n // 2] = 0
        with pytest.raises(Exception, match=f"(?i)integer {what} by zero"):
            ort_run(model, {"a": a, "b": b})
        with pytest.raises(InputError, match=f"{kind} node \\(output 'y'\\): integer {what} by zero"):
            session.run(None, {"a": a, "b": b})


def test_constant_integer_division_is_not_folded_into_a_wrong_value():
    for kind, fmod in (("Div", None), ("Mod", 0), ("Mod", 1)):
        model = _div_model(kind, np.int32, fmod, constants=([7, 8, 9], [1, 0, 2]))
        with pytest.raises(InputError, match="integer (division|modulo) by zero"):
            InferenceSession(model.SerializeToString()).run(None, {})
    for fmod in (0, 1):  # fmod=1 takes the dividend's sign
        model = _div_model("Mod", np.int64, fmod, constants=([-7, 8, -9, 9], [3, -3, 5, -5]))
        got = InferenceSession(model.SerializeToString()).run(None, {})[0]
        np.testing.assert_array_equal(got, ort_run(model, {})[0])


@pytest.mark.parametrize("dtype", [np.int32, np.int8, np.int64])
def test_int_min_divided_by_minus_one_wraps(dtype):
    """No trap: the quotient wraps to INT_MIN (onnxruntime: int32 / int8 wrap, int64 raises SIGFPE)
    and the remainder is 0."""
    low = np.iinfo(dtype).min
    a, b = np.array([low, low, -7, 7], dtype), np.array([-1, -1, 2, -2], dtype)
    for kind, fmod, want in (("Div", None, [low, low, -3, -3]), ("Mod", 0, [0, 0, 1, -1]), ("Mod", 1, [0, 0, -1, 1])):
        model = _div_model(kind, dtype, fmod)
        got = InferenceSession(model.SerializeToString()).run(None, {"a": a, "b": b})[0]
        np.testing.assert_array_equal(got, np.array(want, dtype))
        if dtype is not np.int64:
            np.testing.assert_array_equal(got, ort_run(model, {"a": a, "b": b})[0])


# ---------------------------------------------------------------- Exp and what uses it

def _ulps(got, want64):
    spacing = np.spacing(np.abs(want64.astype(np.float32))).astype(np.float64)
    return np.abs(got.astype(np.float64) - want64) / spacing


def test_exp_is_accurate_up_to_overflow_and_in_the_subnormals():
    x = np.concatenate([np.linspace(88.0, 89.0, 2001), np.linspace(-104.5, -87.0, 2001), [-INF, INF, NAN],
                        np.float32([88.72283, 88.72284, 88.38, 88.7, -103.97, -103.28])]).astype(np.float32)
    nodes = [helper.make_node("Exp", ["x"], ["e"]), helper.make_node("Neg", ["x"], ["m"]),
             helper.make_node("Sigmoid", ["m"], ["s"]), helper.make_node("Softmax", ["r"], ["p"], axis=1),
             helper.make_node("Pow", ["ten", "y"], ["t"])]
    rows = np.stack([np.zeros_like(x), np.where(np.isfinite(x), -np.abs(x), -INF)], axis=1)
    y = np.linspace(38.0, 38.6, 601).astype(np.float32)  # 10**y: e**88.38 and above
    model = make_model(nodes, [("x", [len(x)]), ("r", [len(x), 2]), ("y", [len(y)])],
                       [("e", [len(x)]), ("s", [len(x)]), ("p", [len(x), 2]), ("t", [len(y)])],
                       {"ten": np.array(10, np.float32)}, opset=13)
    feeds = {"x": x, "r": rows, "y": y}
    e, s, p, t = _run(model, feeds)[1]
    want_e, want_s, want_p, want_t = ort_run(model, feeds)
    exact = np.exp(x.astype(np.float64))
    normal = np.isfinite(exact) & (exact >= np.finfo(np.float32).tiny) & (exact < np.finfo(np.float32).max)
    assert _ulps(e[normal], exact[normal]).max() <= 2
    subnormal = exact < np.finfo(np.float32).tiny
    assert np.abs(e[subnormal] - exact[subnormal]).max() <= np.finfo(np.float32).smallest_subnormal
    np.testing.assert_array_equal(np.isinf(e), np.isinf(want_e))  # inf exactly where onnxruntime overflows
    assert_same(e, want_e, rtol=3e-7, atol=np.finfo(np.float32).smallest_subnormal)
    assert_same(s, want_s, rtol=3e-7, atol=np.finfo(np.float32).tiny)  # onnxruntime: no subnormals
    np.testing.assert_allclose(p, want_p, rtol=1e-6, atol=np.finfo(np.float32).tiny)  # flushes subnormals
    assert_same(t, want_t, rtol=1e-5)  # exp(y log 10): was up to 29% off


def test_float64_exp_near_overflow():
    x = np.concatenate([np.linspace(709.0, 710.0, 501), np.linspace(-746, -707, 501)])
    model = make_model([helper.make_node("Exp", ["x"], ["y"])], [("x", [len(x)], np.float64)],
                       [("y", [len(x)], np.float64)], opset=13)
    got = _run(model, {"x": x})[1][0]
    want = np.exp(x)
    normal = (want >= np.finfo(np.float64).tiny) & np.isfinite(want)
    np.testing.assert_allclose(got[normal], want[normal], rtol=4e-16)
    np.testing.assert_array_equal(np.isinf(got), np.isinf(want))
    assert np.abs(got[~normal & np.isfinite(want)] - want[~normal & np.isfinite(want)]).max() <= 5e-324



@pytest.mark.parametrize("n", [3, 20])  # a scalar row and a vectorised one
def test_log_sum_exp_of_infinite_elements_matches_onnxruntime(n, rng):
    """ReduceLogSumExp shifted every element by the row's max: inf - inf gave NaN for a row holding
    +inf (onnxruntime: inf) or made of -inf (onnxruntime: -inf). Found by the fuzzer."""
    model = make_model([helper.make_node("ReduceLogSumExp", ["x"], ["y"], keepdims=0, axes=[1])],
                       [("x", [4, "n"])], [("y", [4])], opset=13)
    x = rng.standard_normal((4, n)).astype(np.float32)
    x[0, 1], x[1, :], x[2, 0], x[3, 2] = np.inf, -np.inf, np.nan, 1e30
    got = InferenceSession(model.SerializeToString()).run(None, {"x": x})[0]
    np.testing.assert_array_equal(got, ort_run(model, {"x": x})[0])  # [inf, -inf, nan, 1e30]


# ---------------------------------------------------------------- normalization statistics

def test_layer_norm_of_a_constant_row_is_its_bias(rng):
    """The LayerNormalization op and the decomposed form fuse-layer-norm recognizes."""
    d = 768
    bias = rng.standard_normal(d, np.float32)
    ln = helper.make_node("LayerNormalization", ["x", "s", "b"], ["y1"], axis=-1, epsilon=1e-5)
    decomposed = [helper.make_node("ReduceMean", ["x"], ["mu"], axes=[-1]), helper.make_node("Sub", ["x", "mu"], ["dx"]),
                  helper.make_node("Pow", ["dx", "two"], ["sq"]), helper.make_node("ReduceMean", ["sq"], ["var"], axes=[-1]),
                  helper.make_node("Add", ["var", "eps"], ["ve"]), helper.make_node("Sqrt", ["ve"], ["sd"]),
                  helper.make_node("Div", ["dx", "sd"], ["nx"]), helper.make_node("Mul", ["nx", "s"], ["sx"]),
                  helper.make_node("Add", ["sx", "b"], ["y2"])]
    inits = {"s": np.ones(d, np.float32), "b": bias, "two": np.array(2, np.float32), "eps": np.array(1e-5, np.float32)}
    model = make_model([ln, *decomposed], [("x", ["n", d])], [("y1", ["n", d]), ("y2", ["n", d])], inits, opset=17)
    fused = from_onnx(model)
    opt.fuse_operators(fused)
    assert node_census(fused.module).get("graph.layer_norm") == 2
    x = np.stack([np.full(d, 1e4 + 0.1), np.full(d, -3.3e5 - 0.7), rng.standard_normal(d)]).astype(np.float32)
    want = ort_run(model, {"x": x})
    _, got = _run(model, {"x": x})
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g[:2], np.broadcast_to(bias, (2, d)))  # was off by up to 0.84
        np.testing.assert_array_equal(w[:2], np.broadcast_to(bias, (2, d)))
        np.testing.assert_allclose(g[2], w[2], atol=1e-5)


def test_folded_layer_norm_of_a_constant_row_is_its_bias(rng):
    """The reference evaluator (constant folding) computes the statistics in float64."""
    bias = rng.standard_normal(768, np.float32)
    x = np.stack([np.full(768, 1e4 + 0.1), np.full(768, -3.3e5 - 0.7)]).astype(np.float32)
    model = make_model([helper.make_node("LayerNormalization", ["x", "s", "b"], ["y"], axis=-1)], [],
                       [("y", [2, 768])], {"x": x, "s": np.ones(768, np.float32), "b": bias}, opset=17)
    session, (got,) = _run(model, {})
    assert session.header["op_summary"] == {}, session.header["op_summary"]
    np.testing.assert_array_equal(got, np.broadcast_to(bias, (2, 768)))
    np.testing.assert_array_equal(got, ort_run(model, {})[0])


def test_instance_and_group_norm_of_a_constant_plane_is_the_bias(rng):
    """onnxruntime's InstanceNormalization is itself off here (0.75), so the oracle is exact math."""
    bias = rng.standard_normal(4, np.float32)
    nodes = [helper.make_node("InstanceNormalization", ["x", "s", "b"], ["y1"]),
             helper.make_node("GroupNormalization", ["x", "s", "b"], ["y2"], num_groups=2)]
    model = make_model(nodes, [("x", [1, 4, 17, 13])], [("y1", [1, 4, 17, 13]), ("y2", [1, 4, 17, 13])],
                       {"s": np.ones(4, np.float32), "b": bias}, opset=21)
    x = np.full((1, 4, 17, 13), 1e4 + 0.1, np.float32)
    for got in _run(model, {"x": x})[1]:
        np.testing.assert_array_equal(got, np.broadcast_to(bias.reshape(1, 4, 1, 1), x.shape))


# ---------------------------------------------------------------- Pow and Log special values

POW_CASES = [(1, NAN), (1, INF), (1, -INF), (-1, INF), (-1, -INF), (0, -1), (0, -2), (-0.0, -1), (-0.0, -3),
             (-0.0, 3), (-0.0, 0.5), (-2, 0.5), (-8, 1 / 3), (NAN, 0), (INF, -1), (-INF, 3), (-INF, 2),
             (-INF, 0.5), (-INF, -0.5), (-INF, -3), (2, INF), (0.5, INF), (2, -INF), (0.5, -INF), (-0.5, INF),
             (0, NAN), (3, NAN), (2, 200), (-2, 201), (1e-40, 2), (-1e-45, 3), (-1, 1e10), (-3, 3), (4, 0.5)]
LOG_CASES = [1e-45, 1e-40, 1.1e-38, 5e-39, 0, -0.0, -1, 1, INF, -INF, NAN, 3e38]


def _pow_log_model(constant: bool):
    base, exponent = (np.array(v, np.float32) for v in zip(*POW_CASES))
    nodes = [helper.make_node("Pow", ["a", "b"], ["p"]), helper.make_node("Log", ["l"], ["q"])]
    inputs = [("a", [len(base)]), ("b", [len(base)]), ("l", [len(LOG_CASES)])]
    values = {"a": base, "b": exponent, "l": np.array(LOG_CASES, np.float32)}
    outputs = [("p", [len(base)]), ("q", [len(LOG_CASES)])]
    if constant:  # folded by fold-constants through the reference evaluator
        return make_model(nodes, [], outputs, values, opset=13), {}
    return make_model(nodes, inputs, outputs, opset=13), values


@pytest.mark.parametrize("constant", [False, True], ids=["compiled", "folded"])
def test_pow_and_log_special_values_match_onnxruntime(constant):
    model, feeds = _pow_log_model(constant)
    want = ort_run(model, feeds)
    session, got = _run(model, feeds)
    if constant:
        assert session.header["op_summary"] == {}, session.header["op_summary"]
    for g, w in zip(got, want):
        assert_same(g, w, rtol=3e-7)
