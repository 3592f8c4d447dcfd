"""Cast / CastLike of a small constant is folded at import with the compiled Cast's semantics: Pad's
constant_value given as CastLike(constant, x) (the expanded ONNX Attention functions) compiles, and a
folded cast gives the same values as the compiled Cast kernel on the same input."""
import numpy as np
import pytest
from onnx import TensorProto, helper

from conftest import assert_close, make_model, ort_run
from pyflame_rt import InferenceSession
from pyflame_rt.importers.onnx import from_onnx
from pyflame_rt.dialects import graph_math as gm
from pyflame_rt.dtype import DType

# float -> int out of range and NaN saturate (NaN -> 0), like llvm.fptosi.sat; double rounding of
# float64 -> float16 through float32 (the kernel's compute type) is kept too
SOURCE = np.array([-np.inf, np.nan, -3.7, -0.5, 0.0, 2.5, 255.9, 300.0, 70000.0, 1e30, np.inf,
                   1.0 + 2.0 ** -11 + 2.0 ** -40])


@pytest.mark.parametrize("to", [TensorProto.INT32, TensorProto.UINT8, TensorProto.INT64, TensorProto.INT8,
                                TensorProto.BOOL, TensorProto.FLOAT16, TensorProto.BFLOAT16,
                                TensorProto.FLOAT])
def test_folded_cast_equals_compiled_cast(to):
    """One model casts the values as a constant (folded at import) and as an input (the kernel)."""
    n = len(SOURCE)
    out_dtype = DType.from_onnx(to).numpy
    model = make_model(
        [helper.make_node("Constant", [], ["c"], value=helper.make_tensor("c", TensorProto.DOUBLE, [n], SOURCE)),
         helper.make_node("Cast", ["c"], ["folded"], to=to), helper.make_node("Cast", ["x"], ["compiled"], to=to)],
        [("x", [n], np.float64)], [("folded", [n], out_dtype), ("compiled", [n], out_dtype)])
    assert sum(isinstance(op, gm.CastOp) for op in from_onnx(model).main.walk()) == 1  # the input's only
    folded, compiled = InferenceSession(model).run(None, {"x": SOURCE})
    assert folded.dtype == compiled.dtype == out_dtype
    np.testing.assert_array_equal(folded.view(np.uint8), compiled.view(np.uint8))


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_pad_value_from_castlike_matches_onnxruntime(rng, dtype):
    """The expanded Attention's AttnBias: Pad(bias, pads, CastLike(-inf, bias))."""
    model = make_model(
        [helper.make_node("Constant", [], ["neg_inf"], value=helper.make_tensor("v", TensorProto.FLOAT, [],
                                                                                [-np.inf])),
         helper.make_node("CastLike", ["neg_inf", "x"], ["fill"]),
         helper.make_node("Pad", ["x", "pads", "fill"], ["y"])],
        [("x", [2, 3, 4], dtype)], [("y", [2, 3, 6], dtype)],
        initializers={"pads": np.array([0, 0, 0, 0, 0, 2], np.int64)}, opset=21)
    x = rng.standard_normal((2, 3, 4)).astype(dtype)
    (ours,), (ref,) = InferenceSession(model).run(None, {"x": x}), ort_run(model, {"x": x})
    np.testing.assert_array_equal(ours, ref)


def test_large_constant_cast_stays_a_graph_op(rng):
    """Only small constants are cast at import; a weight-sized Cast is left to fold-constants."""
    w = rng.standard_normal(4096).astype(np.float32)
    model = make_model([helper.make_node("Cast", ["w"], ["h"], to=TensorProto.FLOAT16),
                        helper.make_node("Add", ["x", "h"], ["y"])],
                       [("x", [4096], np.float16)], [("y", [4096], np.float16)], initializers={"w": w})
    assert any(isinstance(op, gm.CastOp) for op in from_onnx(model).main.walk())
    x = rng.standard_normal(4096).astype(np.float16)
    assert_close(InferenceSession(model).run(None, {"x": x})[0], ort_run(model, {"x": x})[0], rtol=1e-3)
