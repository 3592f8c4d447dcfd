"""Shape assumptions: what the compiled code relies on about dynamic dims is checked before it runs.

A valid model fed a wrong-sized tensor (a dynamic K against a constant W, a Reshape whose element
count does not match, mismatched channel counts) used to write past buffers or read unrelated
memory; now every such feed raises ShapeMismatchError naming the node and both sizes, as
onnxruntime rejects it. The bad feeds run in a subprocess: on a build without the checks they
crash the interpreter (glibc abort, segfault) instead of failing a test.
"""
import json
import subprocess
import sys

import numpy as np
import pytest
from onnx import helper

from conftest import assert_close, make_model, ort_run
from pyflame_rt import InferenceSession, ShapeMismatchError, artifact
from pyflame_rt.compiler import compile_model

# runs a model on several feeds and prints one JSON line per feed: its result shapes or its error
_RUNNER = """
import json, sys
import numpy as np
import pyflame_rt
sess = pyflame_rt.InferenceSession(open(sys.argv[1], "rb").read())
feeds = np.load(sys.argv[2], allow_pickle=True)["feeds"]
for feed in feeds:
    try:
        out = sess.run(None, feed)
        print(json.dumps({"shapes": [list(o.shape) for o in out]}), flush=True)
    except pyflame_rt.PyFlameRTError as e:
        print(json.dumps({"error": type(e).__name__, "message": str(e)}), flush=True)
"""


def run_isolated(tmp_path, model, feeds: list[dict]) -> list[dict]:
    """Each feed's outcome, run in a fresh interpreter; the test fails (not pytest) if it crashes.
    The tests compile the model in-process first (check_valid): the subprocess finds it in the cache."""
    (tmp_path / "m.onnx").write_bytes(model.SerializeToString())
    np.savez(tmp_path / "feeds.npz", feeds=np.array(feeds, dtype=object))
    proc = subprocess.run([sys.executable, "-c", _RUNNER, str(tmp_path / "m.onnx"), str(tmp_path / "feeds.npz")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"run crashed (exit {proc.returncode}): {proc.stderr[-2000:]}"
    return [json.loads(line) for line in proc.stdout.splitlines()]


def assert_rejected(outcomes: list[dict], node: str, *sizes: int) -> None:
    for o, expected in zip(outcomes, sizes):
        assert o.get("error") == "ShapeMismatchError", o
        assert f"node '{node}'" in o["message"], o
        for size in expected:
            assert str(size) in o["message"], (size, o)


def f32(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def check_valid(model, feed):
    """A feed that satisfies every assumption runs and matches onnxruntime."""
    got = InferenceSession(model.SerializeToString()).run(None, feed)
    for g, e in zip(got, ort_run(model, feed)):
        assert_close(g, e)


def reshape_model():
    return make_model([helper.make_node("Reshape", ["x", "s"], ["y"], name="rs")], [("x", ["b", 3])],
                      [("y", [2, 3])], {"s": np.array([2, 3], np.int64)})


def test_reshape_element_count_is_checked(tmp_path, rng):
    m = reshape_model()
    check_valid(m, {"x": f32(rng, 2, 3)})
    outcomes = run_isolated(tmp_path, m, [{"x": f32(rng, 5, 3)}, {"x": np.zeros((10 ** 6, 3), np.float32)}])
    assert_rejected(outcomes, "rs", (15, 6), (3000000, 6))


def matmul_model(const_w: bool, op: str = "MatMul"):
    inputs = [("x", [2, "k"])] + ([] if const_w else [("w", ["j", 4])])
    inits = {"w": np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)} if const_w else {}
    return make_model([helper.make_node(op, ["x", "w"], ["y"], name="mm")], inputs, [("y", [2, 4])], inits)


def test_reshape_cannot_infer_a_dim_from_no_elements(rng):
    """Reshape [a, b] to [0, -1] (0 copies a): with a = 0 the -1 has no size (onnxruntime rejects it; we
    returned [0, b]). Found by the fuzzer."""
    m = make_model([helper.make_node("Reshape", ["x", "s"], ["y"], name="rs")], [("x", ["a", "b"])],
                   [("y", ["a", None])], {"s": np.array([0, -1], np.int64)})
    check_valid(m, {"x": f32(rng, 2, 3)})
    with pytest.raises(ShapeMismatchError, match=r"node 'rs'.*cannot be inferred.*1 > 0 \(a\)"):
        InferenceSession(m.SerializeToString()).run(None, {"x": f32(rng, 0, 3)})


@pytest.mark.parametrize("op", ["MatMul", "Gemm"])
@pytest.mark.slow
def test_inner_dim_against_constant_weight(tmp_path, rng, op):
    m = matmul_model(True, op)
    check_valid(m, {"x": f32(rng, 2, 5)})
    outcomes = run_isolated(tmp_path, m, [{"x": f32(rng, 2, 6)}, {"x": f32(rng, 2, 10 ** 5)}])
    assert_rejected(outcomes, "mm", (6, 5), (100000, 5))
    assert "(k)" in outcomes[0]["message"]


@pytest.mark.parametrize("op", ["MatMul", "Gemm"])
def test_inner_dim_of_two_inputs(tmp_path, rng, op):
    m = matmul_model(False, op)
    check_valid(m, {"x": f32(rng, 2, 7), "w": f32(rng, 7, 4)})
    outcomes = run_isolated(tmp_path, m, [{"x": f32(rng, 2, 6), "w": f32(rng, 5, 4)},
                                          {"x": f32(rng, 2, 10 ** 5), "w": f32(rng, 5, 4)}])
    assert_rejected(outcomes, "mm", (6, 5), (100000, 5))


def test_concat_non_axis_dims(tmp_path, rng):
    m = make_model([helper.make_node("Concat", ["x", "y"], ["z"], axis=1, name="cat")],
                   [("x", ["b", 3]), ("y", ["c", 2])], [("z", ["b", 5])])
    check_valid(m, {"x": f32(rng, 4, 3), "y": f32(rng, 4, 2)})
    outcomes = run_isolated(tmp_path, m, [{"x": f32(rng, 2, 3), "y": f32(rng, 700, 2)},
                                          {"x": f32(rng, 700, 3), "y": f32(rng, 2, 2)}])
    assert_rejected(outcomes, "cat", (700, 2), (2, 700))


def test_instance_norm_channels(tmp_path, rng):
    m = make_model([helper.make_node("InstanceNormalization", ["x", "s", "b"], ["y"], name="inorm")],
                   [("x", ["n", "c", 4])], [("y", ["n", "c", 4])],
                   {"s": f32(rng, 3), "b": f32(rng, 3)})
    check_valid(m, {"x": f32(rng, 2, 3, 4)})
    outcomes = run_isolated(tmp_path, m, [{"x": f32(rng, 2, 5, 4)}, {"x": f32(rng, 1, 4000, 4)}])
    assert_rejected(outcomes, "inorm", (5, 3), (4000, 3))


def test_conv_transpose_channels(tmp_path, rng):
    m = make_model([helper.make_node("ConvTranspose", ["x", "w"], ["y"], name="deconv")],
                   [("x", ["n", "c", 4, 4])], [("y", ["n", 2, 6, 6])], {"w": f32(rng, 3, 2, 3, 3)})
    check_valid(m, {"x": f32(rng, 2, 3, 4, 4)})
    outcomes = run_isolated(tmp_path, m, [{"x": f32(rng, 1, 5, 4, 4)}, {"x": f32(rng, 1, 1, 4, 4)}])
    assert_rejected(outcomes, "deconv", (5, 3), (1, 3))


def test_conv_and_batch_norm_channels(tmp_path, rng):
    m = make_model([helper.make_node("Conv", ["x", "w"], ["h"], name="conv"),
                    helper.make_node("BatchNormalization", ["u", "s", "b", "mu", "var"], ["v"], name="bn")],
                   [("x", ["n", "c", 5, 5]), ("u", ["n", "d", 2])], [("h", ["n", 4, 3, 3]), ("v", ["n", "d", 2])],
                   {"w": f32(rng, 4, 3, 3, 3), "s": f32(rng, 3), "b": f32(rng, 3), "mu": f32(rng, 3),
                    "var": np.abs(f32(rng, 3)) + 1})
    check_valid(m, {"x": f32(rng, 2, 3, 5, 5), "u": f32(rng, 2, 3, 2)})
    outcomes = run_isolated(tmp_path, m, [{"x": f32(rng, 1, 6, 5, 5), "u": f32(rng, 1, 3, 2)},
                                          {"x": f32(rng, 1, 3, 5, 5), "u": f32(rng, 1, 300, 2)}])
    assert_rejected(outcomes[:1], "conv", (6, 3))
    assert_rejected(outcomes[1:], "bn", (300, 3))


def test_requirements_of_ops_rewritten_away_still_hold(rng):
    """A BatchNorm with one-element parameters over c channels is folded into a Mul / Add, which
    broadcasts them: the folded graph no longer states that c must be 1, the model's does (the
    fuzzer found c = 7 accepted, where onnxruntime rejects it)."""
    m = make_model([helper.make_node("BatchNormalization", ["x", "s", "b", "mu", "var"], ["y"], name="bn")],
                   [("x", [3, "c", 4])], [("y", [3, "c", 4])],
                   {"s": f32(rng, 1), "b": f32(rng, 1), "mu": f32(rng, 1), "var": np.ones(1, np.float32)})
    check_valid(m, {"x": f32(rng, 3, 1, 4)})
    with pytest.raises(ShapeMismatchError, match=r"node 'bn'.*1 vs 7 \(c\)"):
        InferenceSession(m.SerializeToString()).run(None, {"x": f32(rng, 3, 7, 4)})


def test_dynamic_dim_broadcasts_only_when_equal(tmp_path, rng):
    """A dynamic dim against a static one (or another dynamic dim) compiles: it must equal the other
    (a fed 1 would need a run-time stride of 0, so it is rejected, as any other size)."""
    m = make_model([helper.make_node("Add", ["x", "w"], ["h"], name="add"),
                    helper.make_node("Mul", ["h", "z"], ["y"], name="mul")],
                   [("x", ["b", 3]), ("z", ["c", 3])], [("y", [4, 3])], {"w": f32(rng, 4, 3)})
    check_valid(m, {"x": f32(rng, 4, 3), "z": f32(rng, 4, 3)})
    outcomes = run_isolated(tmp_path, m, [{"x": f32(rng, 5, 3), "z": f32(rng, 4, 3)},
                                          {"x": f32(rng, 4, 3), "z": f32(rng, 400, 3)}])
    assert_rejected(outcomes[:1], "add", (5, 4))
    assert_rejected(outcomes[1:], "mul", (400, 4))


def test_topk_and_squeeze_bounds(tmp_path, rng):
    m = make_model([helper.make_node("TopK", ["x", "k"], ["v", "i"], name="top"),
                    helper.make_node("Squeeze", ["u", "ax"], ["s"], name="sq")],
                   [("x", [2, "n"]), ("u", ["one", 3])], [("v", [2, 3]), ("i", [2, 3], np.int64), ("s", [3])],
                   {"k": np.array([3], np.int64), "ax": np.array([0], np.int64)})
    check_valid(m, {"x": f32(rng, 2, 5), "u": f32(rng, 1, 3)})
    outcomes = run_isolated(tmp_path, m, [{"x": f32(rng, 2, 2), "u": f32(rng, 1, 3)},
                                          {"x": f32(rng, 2, 5), "u": f32(rng, 2, 3)}])
    assert_rejected(outcomes[:1], "top", (3, 2))
    assert_rejected(outcomes[1:], "sq", (2, 1))


def test_zero_sized_dims_are_compared_like_any_size():
    """0 == 0 holds and 0 against another size fails; a 0 never passes a check by accident."""
    sess = InferenceSession(matmul_model(False).SerializeToString())
    with pytest.raises(ShapeMismatchError, match=r"0 \(k\) vs 5 \(j\)"):
        sess.run(None, {"x": np.zeros((2, 0), np.float32), "w": np.zeros((5, 4), np.float32)})
    bindings = sess._exec.bind([np.zeros((2, 0), np.float32), np.zeros((0, 4), np.float32)])
    sess._exec.check_assumptions(bindings)  # k = j = 0 satisfies the inner-dim assumption


def test_static_mismatch_still_fails_at_compile_time():
    m = make_model([helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")], [("x", [2, 6])], [("y", [2, 4])],
                   {"w": np.ones((5, 4), np.float32)})
    with pytest.raises(ShapeMismatchError, match=r"MatMul node 'mm'.*6 vs 5"):
        InferenceSession(m.SerializeToString())


def test_node_name_survives_fusion(rng):
    """MatMul + Add fuse into one Gemm: the inner-dim check still names the MatMul node (the fused op
    keeps the name too: tests/filecheck/graph/node-names.mlir)."""
    m = make_model([helper.make_node("MatMul", ["x", "w"], ["h"], name="mm"),
                    helper.make_node("Add", ["h", "b"], ["y"], name="bias")],
                   [("x", ["n", "k"])], [("y", ["n", 4])], {"w": f32(rng, 5, 4), "b": f32(rng, 4)})
    sess = InferenceSession(m.SerializeToString())
    assert "gemm" in sess.header["op_summary"]
    with pytest.raises(ShapeMismatchError, match=r"node 'mm'.*7 \(k\) vs 5"):
        sess.run(None, {"x": f32(rng, 3, 7)})


def test_artifact_keeps_the_checks(tmp_path, rng):
    m = matmul_model(True)
    path = tmp_path / "m.pfm"
    artifact.save(compile_model(m.SerializeToString()), path)
    sess = InferenceSession(str(path))
    assert [a["relation"] for a in sess.header["assumptions"]] == ["=="]
    with pytest.raises(ShapeMismatchError, match=r"node 'mm'.*6 \(k\) vs 5"):
        sess.run(None, {"x": f32(rng, 2, 6)})
    x = f32(rng, 2, 5)
    assert_close(sess.run(None, {"x": x})[0], ort_run(m, {"x": x})[0])

