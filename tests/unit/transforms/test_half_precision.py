"""float16 / bfloat16 MatMul, Gemm, Conv and pools: `legalize-half-precision` runs them in float32 between
graph Casts (widen, compute, round to nearest even once), compiled at every optimization level and
compared with onnxruntime (float16) or a float32-computed reference (bfloat16, which onnxruntime's
CPU provider has no MatMul / Conv kernels for)."""
import ml_dtypes
import numpy as np
import pytest
from onnx import helper

from conftest import assert_close, make_model, ort_run
from pyflame_rt import InferenceSession, SessionOptions
from pyflame_rt.importers.onnx import from_onnx
from pyflame_rt.dialects import graph_math as gm
from pyflame_rt.opt import CPUTarget, PassManager

BF16 = ml_dtypes.bfloat16


def _run(model, feeds, level=None):
    opts = SessionOptions()
    if level is not None:
        opts.optimization_level = level
    return InferenceSession(model, opts).run(None, feeds)


@pytest.mark.slow
@pytest.mark.parametrize("level", [0, 2])
def test_float16_matmul_gemm_conv_match_onnxruntime(rng, level):
    """Level 0 runs no optimizer pass: the legalization runs whatever the level."""
    h = np.float16
    model = make_model(
        [helper.make_node("MatMul", ["a", "b"], ["mm"]),
         helper.make_node("Gemm", ["a2", "b2", "c2"], ["gemm"], alpha=0.5, beta=2.0, transB=1),
         helper.make_node("Conv", ["x", "w", "cb"], ["conv"], pads=[1, 1, 1, 1]),
         helper.make_node("Conv", ["x", "wd"], ["dw"], group=3),
         helper.make_node("Relu", ["conv"], ["r"])],
        [("a", ["n", 7, 33], h), ("b", [33, 19], h), ("a2", [7, 33], h), ("b2", [19, 33], h), ("c2", [19], h),
         ("x", [2, 3, 8, 8], h)],
        [("mm", ["n", 7, 19], h), ("gemm", [7, 19], h), ("r", [2, 6, 8, 8], h), ("dw", [2, 3, 6, 6], h)],
        initializers={"w": rng.standard_normal((6, 3, 3, 3)).astype(h), "cb": rng.standard_normal(6).astype(h),
                      "wd": rng.standard_normal((3, 1, 3, 3)).astype(h)})
    shapes = {"a": (3, 7, 33), "b": (33, 19), "a2": (7, 33), "b2": (19, 33), "c2": (19,), "x": (2, 3, 8, 8)}
    feeds = {k: rng.standard_normal(s).astype(h) for k, s in shapes.items()}
    for ours, ref in zip(_run(model, feeds, level), ort_run(model, feeds)):
        assert ours.dtype == np.float16
        assert_close(ours.astype(np.float32), ref.astype(np.float32), rtol=1e-3)


@pytest.mark.slow
def test_bfloat16_matmul_conv_pools_match_float32_reference(rng):
    """Widened exactly, computed in float32, rounded to bfloat16 once per op (as torch's bfloat16 CPU
    kernels and numpy in float32 do it)."""
    torch = pytest.importorskip("torch")
    a, b = rng.standard_normal((2, 7, 33)).astype(BF16), rng.standard_normal((33, 19)).astype(BF16)
    x, w = rng.standard_normal((1, 4, 9, 9)).astype(BF16), rng.standard_normal((5, 4, 3, 3)).astype(BF16)
    model = make_model([helper.make_node("MatMul", ["a", "b"], ["mm"]),
                        helper.make_node("Conv", ["x", "w"], ["c"]),
                        helper.make_node("MaxPool", ["c"], ["m"], kernel_shape=[2, 2], strides=[2, 2]),
                        helper.make_node("GlobalAveragePool", ["c"], ["g"])],
                       [("a", [2, 7, 33], BF16), ("b", [33, 19], BF16), ("x", [1, 4, 9, 9], BF16),
                        ("w", [5, 4, 3, 3], BF16)],
                       [("mm", [2, 7, 19], BF16), ("m", [1, 5, 3, 3], BF16), ("g", [1, 5, 1, 1], BF16)])
    mm, m, g = _run(model, {"a": a, "b": b, "x": x, "w": w})
    ref_mm = (a.astype(np.float32) @ b.astype(np.float32)).astype(BF16)
    conv = torch.nn.functional.conv2d(torch.tensor(x.astype(np.float32)), torch.tensor(w.astype(np.float32)))
    conv = conv.to(torch.bfloat16).float()  # the Conv's own result is rounded before the pools read it
    ref_m = torch.nn.functional.max_pool2d(conv, 2).numpy()
    ref_g = conv.mean(dim=(2, 3), keepdim=True).to(torch.bfloat16).float().numpy()
    assert mm.dtype == m.dtype == g.dtype == BF16
    # one rounding of nearly the same float32 sum: at most one bfloat16 step apart, mostly equal
    assert_close(mm.astype(np.float32), ref_mm.astype(np.float32), rtol=1e-2)
    assert np.mean(mm == ref_mm) > 0.9
    assert_close(m.astype(np.float32), ref_m, rtol=1e-2)
    assert_close(g.astype(np.float32), ref_g, rtol=1e-2)


def test_constant_half_weights_fold_to_float32(rng):
    """With fold-constants after the legalization, the Casts of constant weights are folded: only the
    input's widening and the result's narrowing run."""
    model = make_model([helper.make_node("MatMul", ["a", "w"], ["y"])], [("a", [4, 8], np.float16)],
                       [("y", [4, 5], np.float16)], initializers={"w": rng.standard_normal((8, 5)).astype(np.float16)})
    imported = from_onnx(model)
    PassManager(["legalize-half-precision", "fold-constants", "eliminate-dead-code"], target=CPUTarget.host()).run(imported)
    casts = [op for op in imported.main.walk() if isinstance(op, gm.CastOp)]
    assert [c.to.data for c in casts] == ["float32", "float16"]
    a = rng.standard_normal((4, 8)).astype(np.float16)
    assert_close(_run(model, {"a": a})[0].astype(np.float32), ort_run(model, {"a": a})[0].astype(np.float32),
                 rtol=1e-3)


@pytest.mark.parametrize("dtype", [np.float16, BF16])
def test_half_softmax_divides_stored_exps_by_their_rounded_sum(rng, dtype):
    """A half-precision Softmax computes like onnx's reference does in the tensor's type: the exps are
    rounded as stored, their sum is rounded, and the quotient is rounded (the expanded float16 Attention
    conformance tests depend on this step by step)."""
    shape = (6, 5, 37)
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    model = make_model([helper.make_node("Softmax", ["x"], ["y"], axis=-1)], [("x", list(shape), dtype)],
                       [("y", list(shape), dtype)])
    y = _run(model, {"x": x})[0]
    xf = x.astype(np.float32)
    e = np.exp(xf - xf.max(-1, keepdims=True)).astype(dtype).astype(np.float32)
    ref = (e / e.sum(-1, keepdims=True).astype(dtype).astype(np.float32)).astype(dtype)
    assert y.dtype == dtype
    assert np.mean(y == ref) > 0.99  # a float32 exp a few ulp off can flip a rounding now and then
    assert_close(y.astype(np.float32), ref.astype(np.float32), rtol=1e-2 if dtype is BF16 else 1e-3)
