"""Operator variants the conformance suite feeds (compiled to native code, vs onnxruntime): normalization
parameters fed at run time."""
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
