"""The blocked 2-D transpose kernel behind Transpose (and any strided copy whose innermost two dims
swap), compiled and compared with onnxruntime bit for bit: row counts below and above the vector
width, leftover rows and a partial last column tile, outer dims, a dynamic batch, 8-byte items."""

import numpy as np
import pytest
from onnx import helper

from conftest import kernels_run, make_model, ort_run
from pyflame_rt import InferenceSession, SessionOptions


# the kernel names hold for AVX2's 8-lane vectors (an AVX-512 host would pick 16-row tiles)
PINNED = SessionOptions(enable_profiling=True, cpu="x86-64-v3")


@pytest.mark.parametrize("shape,perm,dtype,kernel", [
    (["N", 3, 7, 9], [0, 2, 3, 1], np.float32, "transpose2d_o1_t3"),    # RGB NCHW -> NHWC, 63 columns
    (["N", 5, 4, 4], [0, 2, 3, 1], np.float32, "transpose2d_o1_t5"),    # 16 columns: full tiles only
    (["N", 5, 7, 19], [0, 3, 1, 2], np.float32, "transpose2d_o1_t8"),   # NHWC -> NCHW: 35 rows, 19 columns
    ([13, 21], [1, 0], np.float32, "transpose2d_o0_t8"),                # plain matrix, both edges
    (["N", 3, 10], [0, 2, 1], np.int64, "transpose2d_o1_t3"),           # 8-byte items, 4-lane vectors
    ([4, 6, 2, 9], [1, 0, 3, 2], np.int32, "transpose2d_o2_t2"),        # two outer dims
])
def test_blocked_transpose_matches_onnxruntime(shape, perm, dtype, kernel):
    out_shape = [None] * len(shape)
    m = make_model([helper.make_node("Transpose", ["x"], ["y"], perm=perm)], [("x", shape, dtype)],
                   [("y", out_shape, dtype)])
    sess = InferenceSession(m.SerializeToString(), PINNED)
    rng = np.random.default_rng(5)
    for n in (1, 3):
        dims = [n if isinstance(d, str) else d for d in shape]
        x = (rng.standard_normal(dims) * 100).astype(dtype)
        np.testing.assert_array_equal(sess.run(None, {"x": x})[0], ort_run(m, {"x": x})[0])
    assert any(k.startswith(kernel) for k in kernels_run(sess, {"x": x})), kernel


def test_dynamic_row_count_uses_square_tiles():
    """Attention's K^T ([batch, seq, heads, dim] -> [batch, heads, dim, seq]) with a dynamic seq:
    the seq rows go through square tiles, the rows past the last tile one by one."""
    m = make_model([helper.make_node("Transpose", ["x"], ["y"], perm=[0, 2, 3, 1])], [("x", ["N", "S", 3, 8])],
                   [("y", ["N", 3, 8, "S"])])
    sess = InferenceSession(m.SerializeToString(), PINNED)
    rng = np.random.default_rng(6)
    for n, s in ((1, 1), (2, 5), (1, 8), (3, 21)):
        x = rng.standard_normal((n, s, 3, 8)).astype(np.float32)
        np.testing.assert_array_equal(sess.run(None, {"x": x})[0], ort_run(m, {"x": x})[0])
    assert any(k.startswith("transpose2d_o1_t8") for k in kernels_run(sess, {"x": x}))
