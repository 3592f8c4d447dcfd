"""fold-constants on sizes: dims bound from tensors computed from constants only become static
sizes (graph.bind_dims of a constant), against onnxruntime; invalid constant values are refused
at compile time with the reason."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

import pyflame_rt
from pyflame_rt.errors import ShapeMismatchError

from conftest import assert_close, make_model, ort_run


def _floats(values) -> np.ndarray:
    return np.array(values, np.float32)


def _shape_from_floats(values) -> list:
    """Nodes computing the int64 tensor `s` from float constants (the importer does not evaluate
    them: the run-time shape path binds their values)."""
    return [helper.make_node("Constant", [], ["f"], value=helper.make_tensor("v", TensorProto.FLOAT, [len(values)],
                                                                             values)),
            helper.make_node("Mul", ["f", "one"], ["g"]),
            helper.make_node("Cast", ["g"], ["s"], to=TensorProto.INT64)]


def _check(model, feeds):
    sess = pyflame_rt.InferenceSession(model.SerializeToString())
    got, want = sess.run(None, feeds), ort_run(model, feeds)
    for g, w in zip(got, want):
        assert g.shape == w.shape
        assert_close(g, w)
    return sess


def test_a_reshape_to_a_shape_computed_from_constants_is_static(rng):
    model = make_model([*_shape_from_floats([2.0, -1.0]), helper.make_node("Reshape", ["x", "s"], ["y"])],
                       [("x", [6])], [("y", ["p", "q"])], [("one", _floats([1.0]))])
    sess = _check(model, {"x": rng.standard_normal(6).astype(np.float32)})
    assert sess.get_outputs()[0].shape == [2, 3]  # no dim left to bind at run time


def test_a_slice_to_ends_computed_from_constants_is_static(rng):
    model = make_model([*_shape_from_floats([3.0]), helper.make_node("Slice", ["x", "st", "s"], ["y"])],
                       [("x", ["n", 5])], [("y", ["n", "k"])],
                       [("one", _floats([1.0])), ("st", np.array([1], np.int64)),
                        ("axes", np.array([1], np.int64))])
    model.graph.node[-1].input.append("axes")
    sess = _check(model, {"x": rng.standard_normal((2, 5)).astype(np.float32)})
    assert sess.get_outputs()[0].shape == ["n", 2]


def test_invalid_constant_values_are_refused_at_compile_time():
    model = make_model([*_shape_from_floats([-1.0, -1.0]), helper.make_node("Reshape", ["x", "s"], ["y"])],
                       [("x", [6])], [("y", ["p", "q"])], [("one", _floats([1.0]))])
    with pytest.raises(ShapeMismatchError, match="the shape has two -1.*constant values"):
        pyflame_rt.InferenceSession(model.SerializeToString())
