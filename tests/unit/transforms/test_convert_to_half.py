"""`convert-to-fp16` / `convert-to-bf16` on imported graphs: which ops narrow, how weights are
stored, where the Casts stand (the IR shapes are in tests/filecheck/convert-to-half)."""
import ml_dtypes
import numpy as np
import pytest
from onnx import helper

from conftest import make_model
from pyflame_rt.dialects import graph, graph_math as gm
from pyflame_rt.dialects.weights import WeightTable
from pyflame_rt.dtype import DType
from pyflame_rt.importers.onnx import from_onnx
from pyflame_rt.transforms.convert_to_half import ConvertToBF16, ConvertToFP16
from pyflame_rt.transforms.graph_pass import PassStats
from pyflame_rt.transforms.registry import all_passes


def _shared_weight_model(rng):
    """The same weight read by two MatMuls."""
    w = rng.standard_normal((4, 4)).astype(np.float32)
    return make_model([helper.make_node("MatMul", ["x", "w"], ["a"], name="keep"),
                       helper.make_node("MatMul", ["a", "w"], ["y"], name="narrow")],
                      [("x", ["batch", 4])], [("y", ["batch", 4])], {"w": w}), w


def test_passes_are_registered():
    assert {"convert-to-fp16", "convert-to-bf16"} <= set(all_passes())


def test_a_weight_one_excluded_op_reads_stays_float32_beside_its_half_copy(rng):
    model, w = _shared_weight_model(rng)
    module = from_onnx(model).module
    stats = PassStats()
    ConvertToBF16(exclude=("keep",)).rewrite(module, WeightTable.of(module), stats)
    weights = WeightTable.of(module)
    assert sorted(weights) == ["w", "w_bfloat16"]
    assert weights["w_bfloat16"].dtype == ml_dtypes.bfloat16
    np.testing.assert_array_equal(weights["w_bfloat16"], w.astype(ml_dtypes.bfloat16))
    assert (stats.initializers_added, stats.initializers_removed) == (1, 0)
    matmuls = {op.attributes[graph.NODE_NAME].data: op for op in module.walk() if isinstance(op, graph.MatMulOp)}
    assert graph.dtype_of(matmuls["keep"].result.type) is DType.FLOAT32
    assert graph.dtype_of(matmuls["narrow"].result.type) is DType.BFLOAT16


def test_one_half_copy_per_weight_and_casts_only_at_the_float32_boundary(rng):
    model, _ = _shared_weight_model(rng)
    module = from_onnx(model).module
    stats = PassStats()
    ConvertToFP16().rewrite(module, WeightTable.of(module), stats)
    assert list(WeightTable.of(module)) == ["w_float16"]  # the float32 original is dropped
    assert stats.initializers_removed == 1
    casts = [(graph.dtype_of(c.input.type), graph.dtype_of(c.result.type))
             for c in module.walk() if isinstance(c, gm.CastOp)]
    assert casts == [(DType.FLOAT32, DType.FLOAT16), (DType.FLOAT16, DType.FLOAT32)]  # input, output
    module.verify()


@pytest.mark.parametrize("pass_, half", [(ConvertToFP16, DType.FLOAT16), (ConvertToBF16, DType.BFLOAT16)])
def test_finite_weights_saturate_at_the_half_types_largest(pass_, half):
    # transformers' extended attention mask: (1 - mask) * float32 min; rounded, min is -inf in both
    # half types, and 0 x -inf (an unmasked position) would be NaN
    lowest = np.finfo(np.float32).min
    model = make_model([helper.make_node("Mul", ["x", "m"], ["y"])], [("x", [3])], [("y", [3])],
                       {"m": np.array([lowest, -lowest, -np.inf], np.float32)})
    module = from_onnx(model).module
    pass_().rewrite(module, WeightTable.of(module), PassStats())
    limit = ml_dtypes.finfo(half.numpy).max
    stored = WeightTable.of(module)[f"m_{half.value}"]
    np.testing.assert_array_equal(stored.astype(np.float32), np.array([-limit, limit, -np.inf], np.float32))
