"""Duplicate weights: byte-identical ones are unified, ones that agree only where the pass samples
them (dtype, shape, first and last elements) are not."""
import numpy as np
from onnx import helper

from conftest import make_model
from pyflame_rt.importers.onnx import from_onnx
from pyflame_rt.dialects import graph
from pyflame_rt.transforms.eliminate_common_subexpressions import unify_duplicate_weights


def test_only_byte_identical_weights_are_unified(rng):
    w = rng.standard_normal((4, 4)).astype(np.float32)
    middle = w.copy()
    middle[2, 1] += 1  # same dtype, shape, first and last elements
    weights = {"wa": w, "wb": middle, "wc": w.copy(), "wd": middle.copy(), "we": w.T.copy()}
    nodes = [helper.make_node("MatMul", ["x", name], [f"y_{name}"]) for name in weights]
    model = make_model(nodes, [("x", ["N", 4])], [(f"y_{name}", ["N", 4]) for name in weights], weights)
    res = from_onnx(model)
    assert unify_duplicate_weights(res.module, res.weights) == 2
    used = [op.weight_name for op in res.module.walk() if isinstance(op, graph.ConstantOp)]
    assert used == ["wa", "wb", "wa", "wb", "we"]
