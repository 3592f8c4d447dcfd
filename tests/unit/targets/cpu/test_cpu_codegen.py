"""Compiled native code vs onnxruntime on small graphs that exercise each kernel path."""
import numpy as np
import pytest
from onnx import helper

from conftest import assert_close, make_model, ort_run
from pyflame_rt import InferenceSession


def _check(model, feeds, rtol=1e-5):
    sess = InferenceSession(model.SerializeToString())
    got = sess.run(None, feeds)
    want = ort_run(model, feeds)
    for g, w in zip(got, want):
        assert_close(g, w, rtol)
    return sess


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div"])
@pytest.mark.parametrize("sa,sb", [
    ((2, 3, 5), (2, 3, 5)),     # same shape: one flat loop
    ((4, 17), (17,)),           # row-vector broadcast
    ((4, 17), (4, 1)),          # column broadcast: scalar per row
    ((3, 1, 5), (1, 4, 1)),     # both sides broadcast
    ((1,), (6, 7)),             # scalar-like
    ((2, 3, 4, 9), (3, 1, 9)),  # mixed
    ((20000,), (20000,)),       # several inner chunks
])
def test_elementwise_broadcast(op, sa, sb, rng):
    out = np.broadcast_shapes(sa, sb)
    m = make_model([helper.make_node(op, ["a", "b"], ["y"])], [("a", list(sa)), ("b", list(sb))],
                   [("y", list(out))])
    b = rng.standard_normal(sb).astype(np.float32)
    if op == "Div":
        b = np.where(np.abs(b) < 0.1, 1.0, b).astype(np.float32)
    _check(m, {"a": rng.standard_normal(sa).astype(np.float32), "b": b})


def test_relu_odd_sizes(rng):
    for n in (1, 7, 8, 9, 33, 1000):
        m = make_model([helper.make_node("Relu", ["x"], ["y"])], [("x", [n])], [("y", [n])])
        _check(m, {"x": rng.standard_normal(n).astype(np.float32)})


@pytest.mark.parametrize("m_,k,n", [(1, 1, 1), (1, 784, 1024), (5, 3, 17), (6, 16, 16), (13, 40, 33),
                                     (64, 128, 10)])
@pytest.mark.parametrize("trans_b", [0, 1])
@pytest.mark.slow
def test_gemm_shapes_with_bias(m_, k, n, trans_b, rng):
    w = rng.standard_normal((n, k) if trans_b else (k, n)).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float32)
    model = make_model([helper.make_node("Gemm", ["a", "w", "c"], ["y"], transB=trans_b)],
                       [("a", ["M", k])], [("y", ["M", n])], {"w": w, "c": bias})
    _check(model, {"a": rng.standard_normal((m_, k)).astype(np.float32)})


@pytest.mark.parametrize("m_,k,n", [(1, 1027, 37), (1, 3, 1001), (2, 1029, 50), (3, 515, 17), (8, 1030, 70)])
@pytest.mark.slow
def test_gemm_small_row_tiles_with_odd_k(m_, k, n, rng):
    """Tiles of 1-3 rows split K over several accumulator chains: K not a multiple of the
    chain count, several K slices, N not a multiple of the panel width."""
    w = rng.standard_normal((k, n)).astype(np.float32)
    model = make_model([helper.make_node("MatMul", ["a", "w"], ["y"])], [("a", ["M", k])], [("y", ["M", n])],
                       {"w": w})
    _check(model, {"a": rng.standard_normal((m_, k)).astype(np.float32)}, rtol=1e-4)


@pytest.mark.parametrize("threads", [1, 2])
def test_batched_matmul_work_ranges_span_row_blocks_and_batches(threads, rng):
    """3 batches x 4 row blocks (25 row tiles split 6/6/6/7) x 4 panel blocks: a thread's range of
    work items starts and ends mid row block and crosses batches; every C element is written once."""
    from pyflame_rt import SessionOptions

    w = rng.standard_normal((3, 70, 600)).astype(np.float32)
    model = make_model([helper.make_node("MatMul", ["a", "w"], ["y"])], [("a", [3, 150, 70])], [("y", [3, 150, 600])],
                       {"w": w})
    feeds = {"a": rng.standard_normal((3, 150, 70)).astype(np.float32)}
    got = InferenceSession(model.SerializeToString(), SessionOptions(num_threads=threads)).run(None, feeds)[0]
    assert_close(got, ort_run(model, feeds)[0], 1e-5)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("m_,k,n", [
    (301, 1100, 32),   # 2 panels: A read in place; 2 K slices (partial sums in C); a 1-row tail tile
    (301, 1100, 100),  # 7 panels: A packed; the last panel 4 columns wide
    (301, 32, 100),    # 7 panels, but K = 32 is shallow: A read in place
    (128, 768, 768),   # one row block, 48 panels: 4 panel blocks of 12 (balanced for the threads)
    (192, 700, 1700),  # 24 row tiles (AVX-512): 54 panels in chunks of 16 (one thread), 6 K slices of 128
    (7, 40, 272),      # 17 panels: 4 panel blocks of 5, 5, 5, 2
    (1573, 64, 40),    # 11 row blocks of at most 144 rows rounded up to 12 (263 tiles, the last 1 row)
    (145, 20, 24),     # 2 row blocks rounded up to 4 (25 tiles: 6, 6, 6, 7)
    (97, 1100, 56),    # the last panel 8 columns wide: narrow main tiles, 9 K slices of 128
    (8, 1100, 56),     # one row tile reuses no B slice: 2 K slices of 560
])
@pytest.mark.slow
def test_gemm_a_in_place_or_packed_with_fused_epilogue(m_, k, n, threads, rng):
    from pyflame_rt import SessionOptions

    w = (rng.standard_normal((k, n)) / np.sqrt(k)).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float32)
    model = make_model([helper.make_node("MatMul", ["a", "w"], ["t"]), helper.make_node("Add", ["t", "b"], ["u"]),
                        helper.make_node("Relu", ["u"], ["y"])],
                       [("a", [m_, k])], [("y", [m_, n])], {"w": w, "b": bias})
    feeds = {"a": rng.standard_normal((m_, k)).astype(np.float32)}
    got = InferenceSession(model.SerializeToString(), SessionOptions(num_threads=threads)).run(None, feeds)[0]
    assert_close(got, ort_run(model, feeds)[0], 1e-4)


@pytest.mark.parametrize("m_,k,n,small", [
    (7, 24, 40, True),     # 6720 multiply-adds: one-row tiles; 3 panels, the last 8 columns wide
    (2, 3, 1001, True),    # 63 panels of one-row tiles, the last 9 columns wide
    (9, 70, 40, False),    # 25200: the full kernel
])
@pytest.mark.slow
def test_small_static_gemm_takes_one_row_tiles(m_, k, n, small, rng):
    """A GEMM of static shape and at most SMALL_GEMM_MACS multiply-adds compiles one-row tiles (a
    third of the code); the fused bias + Relu epilogue and partial last panel work the same."""
    from pyflame_rt.compiler import compile_model

    w = rng.standard_normal((k, n)).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float32)
    model = make_model([helper.make_node("MatMul", ["a", "w"], ["t"]), helper.make_node("Add", ["t", "b"], ["u"]),
                        helper.make_node("Relu", ["u"], ["y"])],
                       [("a", [m_, k])], [("y", [m_, n])], {"w": w, "b": bias})
    gemms = [name for name in compile_model(model).header["kernels"] if name.startswith("gemm_")]
    assert len(gemms) == 1 and gemms[0].startswith("gemm_1x") == small, gemms
    _check(model, {"a": rng.standard_normal((m_, k)).astype(np.float32)}, rtol=1e-4)


@pytest.mark.parametrize("n,items", [(160, 4), (40, 3), (16, 1), (1000, 4)])
def test_gemm_with_one_row_block_splits_its_panels(n, items, rng, tmp_path):
    """49 rows (a 7x7 feature map at batch 1) are one row block: its panels are split into work
    items (at least 4 while there are panels to split) so both threads take part. 10 panels: 4
    items of 3, 3, 3, 1; 3 panels: 3 items; one panel: one item. The counts hold for AVX2's 16-column
    panels (AVX-512's are 32 wide), so the target is pinned to x86-64-v3."""
    import json

    from pyflame_rt import SessionOptions

    w = (rng.standard_normal((960, n)) / np.sqrt(960)).astype(np.float32)
    model = make_model([helper.make_node("MatMul", ["a", "w"], ["y"])], [("a", [49, 960])], [("y", [49, n])],
                       {"w": w})
    feeds = {"a": rng.standard_normal((49, 960)).astype(np.float32)}
    opts = SessionOptions(num_threads=2, enable_profiling=True, profile_file_prefix=str(tmp_path / "p"),
                          cpu="x86-64-v3")
    sess = InferenceSession(model.SerializeToString(), opts)
    assert_close(sess.run(None, feeds)[0], ort_run(model, feeds)[0], 1e-4)
    calls = [e for e in json.load(open(sess.end_profiling())) if e["args"].get("kernel", "").startswith("gemm_")]
    assert [e["args"]["work_items"] for e in calls] == [items]


def test_gemm_alpha_beta_trans_a_and_matrix_c(rng):
    w = rng.standard_normal((6, 5)).astype(np.float32)
    c = rng.standard_normal((4, 5)).astype(np.float32)
    model = make_model([helper.make_node("Gemm", ["a", "w", "c"], ["y"], transA=1, alpha=0.5, beta=1.0)],
                       [("a", [6, 4])], [("y", [4, 5])], {"w": w, "c": c})
    _check(model, {"a": rng.standard_normal((6, 4)).astype(np.float32)})


def test_gemm_scalar_bias_with_beta(rng):
    w = rng.standard_normal((3, 9)).astype(np.float32)
    model = make_model([helper.make_node("Gemm", ["a", "w", "c"], ["y"], beta=2.0)],
                       [("a", [2, 3])], [("y", [2, 9])], {"w": w, "c": np.array([0.5], np.float32)})
    _check(model, {"a": rng.standard_normal((2, 3)).astype(np.float32)})


def test_gemm_with_runtime_b(rng):
    model = make_model([helper.make_node("Gemm", ["a", "b"], ["y"], transB=1)],
                       [("a", [7, 12]), ("b", [19, 12])], [("y", [7, 19])])
    _check(model, {"a": rng.standard_normal((7, 12)).astype(np.float32),
                   "b": rng.standard_normal((19, 12)).astype(np.float32)})


@pytest.mark.parametrize("sa,sb", [
    ((3, 4), (4, 5)), ((4,), (4, 5)), ((3, 4), (4,)), ((2, 3, 4), (4, 6)),
    ((2, 3, 4), (2, 4, 6)), ((1, 3, 4), (5, 4, 2)), ((2, 5, 3, 4), (2, 5, 4, 7)),
])
@pytest.mark.parametrize("const_b", [True, False])
def test_matmul_forms(sa, sb, const_b, rng):
    out = np.matmul(np.zeros(sa), np.zeros(sb)).shape
    b = rng.standard_normal(sb).astype(np.float32)
    inputs = [("a", list(sa))] + ([] if const_b else [("b", list(sb))])
    model = make_model([helper.make_node("MatMul", ["a", "b"], ["y"])], inputs, [("y", list(out))],
                       {"b": b} if const_b else {})
    feeds = {"a": rng.standard_normal(sa).astype(np.float32)}
    if not const_b:
        feeds["b"] = b
    _check(model, feeds)


def test_views_as_outputs_and_repeated_outputs(rng):
    nodes = [helper.make_node("Flatten", ["x"], ["f"]), helper.make_node("Identity", ["x"], ["i"]),
             helper.make_node("Relu", ["f"], ["r"])]
    model = make_model(nodes, [("x", ["B", 2, 3])],
                       [("f", ["B", 6]), ("i", ["B", 2, 3]), ("r", ["B", 6]), ("x", ["B", 2, 3])])
    x = rng.standard_normal((3, 2, 3)).astype(np.float32)
    sess = _check(model, {"x": x})
    outs = sess.run(None, {"x": x})
    assert outs[3] is not x and np.array_equal(outs[3], x)


def test_dynamic_batch_without_recompiling(rng):
    w = rng.standard_normal((16, 8)).astype(np.float32)
    model = make_model([helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Relu", ["h"], ["y"])],
                       [("x", ["batch", 16])], [("y", ["batch", 8])], {"w": w})
    sess = InferenceSession(model.SerializeToString())
    for b in (1, 3, 64, 2, 129):
        x = rng.standard_normal((b, 16)).astype(np.float32)
        assert_close(sess.run(None, {"x": x})[0], np.maximum(x @ w, 0), 1e-5)
