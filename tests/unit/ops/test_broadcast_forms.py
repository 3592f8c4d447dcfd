"""Broadcasting forms compiled to native code vs onnxruntime: MatMul batch dims that broadcast
against each other, and PRelu's slope before (per channel) and since opset 7 (numpy broadcasting)."""
import numpy as np
import pytest
from onnx import helper

from conftest import assert_close, make_model, ort_run
from pyflame_rt import InferenceSession


def _x(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def _compare(model, feed):
    for got, want in zip(InferenceSession(model.SerializeToString()).run(None, feed), ort_run(model, feed)):
        assert_close(got, want)


@pytest.mark.parametrize("a_shape,b_shape", [
    ((2, 1, 3, 4), (1, 5, 4, 6)),
    ((3, 1, 2, 7), (4, 7, 5)),
    ((5, 3, 4), (2, 1, 4, 3)),
    ((2, 3, 1, 2, 3), (3, 4, 3, 2)),
    ((4,), (3, 4, 5)),  # the neighbours of the broadcast path: one side without batch dims
    ((2, 3, 4), (4,)),
])
@pytest.mark.parametrize("b_const", [False, True])
@pytest.mark.slow
def test_matmul_batch_dims_broadcast_both_ways(a_shape, b_shape, b_const, rng):
    b = _x(rng, *b_shape)
    node = helper.make_node("MatMul", ["a", "b"], ["y"])
    inputs = [("a", list(a_shape))] + ([] if b_const else [("b", list(b_shape))])
    out_rank = max(len(a_shape), len(b_shape)) - (len(a_shape) == 1) - (len(b_shape) == 1)
    model = make_model([node], inputs, [("y", [None] * out_rank)], {"b": b} if b_const else {})
    _compare(model, {"a": _x(rng, *a_shape), **({} if b_const else {"b": b})})


def test_matmul_broadcast_with_dynamic_batch(rng):
    node = helper.make_node("MatMul", ["a", "b"], ["y"])
    model = make_model([node], [("a", ["N", 1, 3, 4]), ("b", [1, 2, 4, 5])], [("y", ["N", 2, 3, 5])])
    sess = InferenceSession(model.SerializeToString())
    for n in (1, 3):
        feed = {"a": _x(rng, n, 1, 3, 4), "b": _x(rng, 1, 2, 4, 5)}
        assert_close(sess.run(None, feed)[0], ort_run(model, feed)[0])


@pytest.mark.parametrize("x_shape", [(2, 3, 4), (2, 3, 4, 5), (2, 3, 2, 3, 4)])
def test_prelu_opset6_slope_is_per_channel(x_shape, rng):
    """Opset 6: a [C] slope applies along axis 1 (torch's PReLU export); compared with an explicit
    [C, 1, ...] slope at opset 9, which means the same."""
    slope = _x(rng, 3)
    x = _x(rng, *x_shape)
    old = make_model([helper.make_node("PRelu", ["x", "s"], ["y"])], [("x", list(x_shape))], [("y", list(x_shape))],
                     {"s": slope}, opset=6)
    got = InferenceSession(old.SerializeToString()).run(None, {"x": x})[0]
    same = make_model([helper.make_node("PRelu", ["x", "s"], ["y"])], [("x", list(x_shape))],
                      [("y", list(x_shape))], {"s": slope.reshape((3,) + (1,) * (len(x_shape) - 2))}, opset=9)
    assert_close(got, ort_run(same, {"x": x})[0])


@pytest.mark.parametrize("slope_shape", [(5,), (1,), (3, 1, 1), (4, 5)])
def test_prelu_opset9_slope_broadcasts_from_the_right(slope_shape, rng):
    node = helper.make_node("PRelu", ["x", "s"], ["y"])
    model = make_model([node], [("x", [2, 3, 4, 5])], [("y", [2, 3, 4, 5])], {"s": _x(rng, *slope_shape)}, opset=9)
    _compare(model, {"x": _x(rng, 2, 3, 4, 5)})
