"""Operator variants the conformance suite feeds (compiled to native code, vs onnxruntime): normalization
parameters fed at run time, Gemm alpha / beta with run-time operands, int8 / uint8 MaxPool."""
import numpy as np
import pytest
from onnx import helper

from conftest import assert_close, make_model, ort_run
from pyflame_rt import InferenceSession
from pyflame_rt.errors import UnsupportedOperatorError


def _x(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def _compare(model, feed):
    for got, want in zip(InferenceSession(model.SerializeToString()).run(None, feed), ort_run(model, feed)):
        assert_close(got, want)


@pytest.mark.parametrize("fed", ["stmv", "sv"])
def test_batch_norm_parameters_fed_at_run_time(fed, rng):
    """All four parameters graph inputs, or two of them (the others constants): read by the kernel."""
    c = 5
    params = {"s": _x(rng, c), "t": _x(rng, c), "m": _x(rng, c), "v": rng.uniform(0.5, 2.0, c).astype(np.float32)}
    node = helper.make_node("BatchNormalization", ["x", *"stmv"], ["y"], epsilon=1e-3)
    model = make_model([node], [("x", ["n", c, 4, 7])] + [(k, [c]) for k in fed], [("y", [None] * 4)],
                       {k: v for k, v in params.items() if k not in fed})
    _compare(model, {"x": _x(rng, 2, c, 4, 7), **{k: params[k] for k in fed}})


def test_instance_norm_parameters_fed_at_run_time(rng):
    node = helper.make_node("InstanceNormalization", ["x", "s", "t"], ["y"], epsilon=1e-2)
    model = make_model([node], [("x", [2, 3, 5, 6]), ("s", [3]), ("t", [3])], [("y", [None] * 4)])
    _compare(model, {"x": _x(rng, 2, 3, 5, 6), "s": _x(rng, 3), "t": _x(rng, 3)})


@pytest.mark.parametrize("attrs,c_shape", [
    (dict(alpha=0.5), None),
    (dict(alpha=0.25, beta=0.35, transA=1, transB=1), (1, 4)),
    (dict(beta=0.5), (3, 4)),
    (dict(alpha=2.0, beta=-1.5), (3, 4)),
])
def test_gemm_alpha_beta_with_run_time_operands(attrs, c_shape, rng):
    """B (and C) graph inputs: alpha scales the product after the GEMM, beta scales C as it is added."""
    a_shape = (5, 3) if attrs.get("transA") else (3, 5)
    b_shape = (4, 5) if attrs.get("transB") else (5, 4)
    inputs = [("a", list(a_shape)), ("b", list(b_shape))] + ([("c", list(c_shape))] if c_shape else [])
    node = helper.make_node("Gemm", [name for name, _ in inputs], ["y"], **attrs)
    model = make_model([node], inputs, [("y", [None, None])])
    _compare(model, {name: _x(rng, *shape) for name, shape in inputs})


@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
@pytest.mark.parametrize("attrs", [
    dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2]),
    dict(kernel_shape=[2, 3], ceil_mode=1, strides=[2, 2], dilations=[1, 2]),
])
def test_max_pool_small_integers(dtype, attrs, rng):
    """Pooled exactly through float32 copies: the full value range, extremes included."""
    info = np.iinfo(dtype)
    x = rng.integers(info.min, info.max, (2, 3, 7, 9), endpoint=True).astype(dtype)
    x[0, 0, :2, :2] = info.min
    node = helper.make_node("MaxPool", ["x"], ["y"], **attrs)
    model = make_model([node], [("x", list(x.shape), dtype)], [("y", [None] * 4, dtype)])
    got, = InferenceSession(model.SerializeToString()).run(None, {"x": x})
    want, = ort_run(model, {"x": x})
    assert got.dtype == want.dtype and np.array_equal(got, want)


def test_max_pool_int32_is_refused_by_name(rng):
    node = helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[2, 2])
    model = make_model([node], [("x", [1, 1, 4, 4], np.int32)], [("y", [None] * 4, np.int32)])
    with pytest.raises(UnsupportedOperatorError, match="float32 only, not int32"):
        InferenceSession(model.SerializeToString())


@pytest.mark.parametrize("like_dtype", [np.float64, np.int32])
def test_cast_like(like_dtype, rng):
    """CastLike takes the second input's element type (a graph input whose values are not read)."""
    x = (rng.standard_normal((3, 4)) * 10).astype(np.float32)
    node = helper.make_node("CastLike", ["x", "like"], ["y"])
    model = make_model([node], [("x", [3, 4]), ("like", [1], like_dtype)], [("y", [3, 4], like_dtype)], opset=19)
    feed = {"x": x, "like": np.zeros(1, like_dtype)}
    got, = InferenceSession(model.SerializeToString()).run(None, feed)
    want, = ort_run(model, feed)
    assert got.dtype == want.dtype and np.array_equal(got, want)
