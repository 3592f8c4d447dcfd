"""The reference semantics of the quant ops against onnxruntime."""
import numpy as np
from onnx import helper

from conftest import make_model, ort_run
from pyflame_rt.dialects import quant
from pyflame_rt.dialects.reference import evaluate, has_reference
from pyflame_rt.importers.onnx.importer import from_onnx


def test_every_quant_op_has_a_reference():
    assert not [op.name for op in quant.QUANT_OPS if not has_reference(op)]


def test_qdq_and_qlinear_ops_match_onnxruntime(rng):
    w = rng.integers(-100, 100, (3, 2, 3, 3)).astype(np.int8)
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
             helper.make_node("QLinearConv", ["q", "s", "z", "w", "ws", "wz", "s2", "z", "b"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("DequantizeLinear", ["c", "s2", "z"], ["y"])]
    model = make_model(nodes, [("x", [1, 2, 5, 5])], [("y", [1, 3, 5, 5])],
                       {"s": np.array(0.05, np.float32), "z": np.array(128, np.uint8), "w": w,
                        "ws": np.array([0.01, 0.02, 0.03], np.float32), "wz": np.zeros(3, np.int8),
                        "s2": np.array(0.2, np.float32), "b": rng.integers(-300, 300, 3).astype(np.int32)})
    feeds = {"x": rng.standard_normal((1, 2, 5, 5)).astype(np.float32)}
    res = from_onnx(model)
    np.testing.assert_allclose(evaluate(res.module, res.weights, feeds)[0], ort_run(model, feeds)[0], atol=0.2001)


def test_dynamic_and_integer_ops_match_onnxruntime_exactly(rng):
    nodes = [helper.make_node("DynamicQuantizeLinear", ["x"], ["q", "s", "z"]),
             helper.make_node("MatMulInteger", ["q", "w", "z"], ["y"])]
    model = make_model(nodes, [("x", [3, 8])], [("q", [3, 8], np.uint8), ("s", []), ("z", [], np.uint8),
                                                ("y", [3, 5], np.int32)],
                       {"w": rng.integers(-128, 128, (8, 5)).astype(np.int8)})
    feeds = {"x": (rng.standard_normal((3, 8)) * 2).astype(np.float32)}
    res = from_onnx(model)
    for got, want in zip(evaluate(res.module, res.weights, feeds), ort_run(model, feeds)):
        np.testing.assert_array_equal(got, want)


def test_matmul_integer_to_float_matches_the_chain_it_fuses(rng):
    """quantize_dynamic's chain (DynamicQuantizeLinear, MatMulInteger, Cast, the scale Muls, + bias)
    fused into quant.matmul_integer_to_float evaluates as onnxruntime runs the chain."""
    from pyflame_rt.opt import CPUTarget, PassManager

    nodes = [helper.make_node("DynamicQuantizeLinear", ["x"], ["q", "s", "z"]),
             helper.make_node("MatMulInteger", ["q", "w", "z", "wz"], ["p"]),
             helper.make_node("Cast", ["p"], ["f"], to=1),
             helper.make_node("Mul", ["s", "ws"], ["r"]),
             helper.make_node("Mul", ["f", "r"], ["m"]),
             helper.make_node("Add", ["m", "b"], ["y"])]
    model = make_model(nodes, [("x", [3, 8])], [("y", [3, 5])],
                       {"w": rng.integers(-128, 128, (8, 5)).astype(np.int8), "wz": np.zeros(5, np.int8),
                        "ws": (rng.random(5) * 0.01).astype(np.float32), "b": rng.standard_normal(5).astype(np.float32)})
    feeds = {"x": (rng.standard_normal((3, 8)) * 2).astype(np.float32)}
    res = from_onnx(model)
    PassManager(["fuse-matmul-integer-to-float"], target=CPUTarget.host()).run(res)
    assert any(op.name == "quant.matmul_integer_to_float" for op in res.module.walk())
    np.testing.assert_allclose(evaluate(res.module, res.weights, feeds)[0], ort_run(model, feeds)[0], rtol=1e-5, atol=1e-6)
