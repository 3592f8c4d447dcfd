"""DynamicQuantizeLinear's range and apply kernels against onnxruntime bit for bit: a tail shorter than
a vector, several apply blocks, all-positive data (the range extended to 0)."""

import numpy as np
import pytest
from onnx import helper

from conftest import make_model, ort_run, profiled_kernels
from pyflame_rt import InferenceSession, SessionOptions
from pyflame_rt.targets.cpu.kernels.dynamic_quantize import DQ_BLOCK


@pytest.mark.parametrize("n,offset", [(37, 0.0), (2 * DQ_BLOCK + 5, 0.0), (100, 4.0)])
def test_matches_onnxruntime(n, offset, rng):
    model = make_model([helper.make_node("DynamicQuantizeLinear", ["x"], ["y", "s", "z"])], [("x", [n])],
                       [("y", [n], np.uint8), ("s", []), ("z", [], np.uint8)])
    sess = InferenceSession(model.SerializeToString(), SessionOptions(enable_profiling=True))
    x = (rng.standard_normal(n) * 3 + offset).astype(np.float32)
    for ours, ref in zip(sess.run(None, {"x": x}), ort_run(model, {"x": x})):
        np.testing.assert_array_equal(ours, ref)
    assert any(k.startswith("dynamic_quantize_apply") for k in profiled_kernels(sess))
