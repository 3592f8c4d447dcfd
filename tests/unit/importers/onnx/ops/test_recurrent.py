"""RNN / GRU / LSTM import: ONNX's activation lists, alpha / beta and defaults resolved per direction;
malformed nodes refused with specific errors (no compile needed)."""
import numpy as np
import pytest
from onnx import helper

from conftest import make_model
from pyflame_rt.dialects import graph_recurrent as gr
from pyflame_rt.errors import DTypeMismatchError, ShapeMismatchError, UnsupportedOperatorError
from pyflame_rt.importers.onnx import from_onnx


def _model(op_type="GRU", hidden=2, gates=3, r_cols=None, seq_dtype=np.int32, **attrs):
    weights = {"W": np.zeros((1, gates * hidden, 3), np.float32),
               "R": np.zeros((1, gates * hidden, r_cols or hidden), np.float32)}
    dirs = 2 if attrs.get("direction") == "bidirectional" else 1
    if dirs == 2:
        weights = {k: np.concatenate([v, v]) for k, v in weights.items()}
    node = helper.make_node(op_type, ["X", "W", "R", "", "L"], ["Y"], hidden_size=hidden, **attrs)
    return make_model([node], [("X", [4, "batch", 3]), ("L", ["batch"], seq_dtype)],
                      [("Y", [4, dirs, "batch", hidden])], initializers=weights, opset=14)


def _op(model) -> gr.RecurrentOp:
    return next(op for op in from_onnx(model).module.walk() if isinstance(op, gr.RecurrentOp))


def test_default_activations_repeat_for_both_directions():
    op = _op(_model(direction="bidirectional"))
    assert op.direction_activations(1) == [("sigmoid", 0.0, 0.0), ("tanh", 0.0, 0.0)]


def test_alpha_and_beta_go_to_the_activations_that_take_them_in_order():
    op = _op(_model(activations=["Tanh", "HardSigmoid", "LeakyRelu", "ScaledTanh"], direction="bidirectional",
                    activation_alpha=[0.5, 0.25], activation_beta=[0.75]))
    acts = [(n, round(a, 4), round(b, 4)) for d in (0, 1) for n, a, b in op.direction_activations(d)]
    # ScaledTanh ran out of alphas and betas: onnxruntime's defaults (0, 0)
    assert acts == [("tanh", 0, 0), ("hard_sigmoid", 0.5, 0.75), ("leaky_relu", 0.25, 0), ("scaled_tanh", 0, 0)]


def test_an_unknown_activation_is_refused():
    with pytest.raises(UnsupportedOperatorError, match="unknown activation 'Swish'"):
        from_onnx(_model(activations=["Sigmoid", "Swish"]))


def test_a_weight_of_the_wrong_shape_is_refused():
    with pytest.raises(ShapeMismatchError, match=r"r must be \[1, 6, 2\]"):
        from_onnx(_model(r_cols=3))


def test_sequence_lens_must_be_int32():
    with pytest.raises(DTypeMismatchError, match="sequence_lens must be int32"):
        from_onnx(_model(seq_dtype=np.int64))


def test_an_undefined_direction_is_refused():
    with pytest.raises(ShapeMismatchError, match="rnn_direction must be one of"):
        from_onnx(_model(direction="sideways"))
