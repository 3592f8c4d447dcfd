"""Scan of opset 8 (a batch axis) as two nested Loops, against onnxruntime."""
import numpy as np
import pytest
from onnx import TensorProto, helper

from conftest import assert_close, make_model, ort_run
from pyflame_rt import InferenceSession
from pyflame_rt.errors import UnsupportedOperatorError
from pyflame_rt.importers.onnx import from_onnx

F = TensorProto.FLOAT


def _vi(name, shape):
    return helper.make_tensor_value_info(name, F, shape)


def _scan(inputs, batch, **attrs):
    """s' = s + a_t * b_t (b read from its end where reversed), scan output s' * 2."""
    body = helper.make_graph([helper.make_node("Mul", ["a_t", "b_t"], ["ab"]),
                              helper.make_node("Add", ["s", "ab"], ["s_out"]),
                              helper.make_node("Add", ["s_out", "s_out"], ["twice"])],
                             "body", [_vi("s", [2]), _vi("a_t", [2]), _vi("b_t", [2])],
                             [_vi("s_out", [2]), _vi("twice", [2])])
    return make_model([helper.make_node("Scan", inputs, ["s", "ys"], num_scan_inputs=2, body=body, **attrs)],
                      [("s0", [batch, 2]), ("a", [batch, 3, 2]), ("b", [batch, 3, 2])],
                      [("s", [batch, 2]), ("ys", [batch, 3, 2])], opset=8)


def _check(model, batches):
    sess = InferenceSession(model.SerializeToString())
    rng = np.random.default_rng(0)
    for batch in batches:
        feed = {"s0": rng.standard_normal((batch, 2)).astype(np.float32),
                "a": rng.standard_normal((batch, 3, 2)).astype(np.float32),
                "b": rng.standard_normal((batch, 3, 2)).astype(np.float32)}
        for got, expected in zip(sess.run(None, feed), ort_run(model, feed)):
            assert got.shape == expected.shape
            assert_close(got, expected)


def test_an_opset_8_scan_runs_every_batch_element_with_a_reversed_input():
    _check(_scan(["", "s0", "a", "b"], 2, directions=[0, 1]), [2])


def test_an_opset_8_scan_over_a_dynamic_batch():
    _check(_scan(["", "s0", "a", "b"], "batch"), [1, 3])


def test_an_opset_8_scan_with_sequence_lens_is_refused_by_name():
    model = _scan(["lens", "s0", "a", "b"], 2)
    model.graph.input.append(helper.make_tensor_value_info("lens", TensorProto.INT32, [2]))
    with pytest.raises(UnsupportedOperatorError, match="Scan \\(opset 8\\) node 's': sequence_lens is not supported"):
        from_onnx(model)
