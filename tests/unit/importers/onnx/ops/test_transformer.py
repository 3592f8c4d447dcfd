"""The opset 23-28 sequence-model operators (Attention, RMSNormalization, RotaryEmbedding, TensorScatter,
CausalConvWithState, LinearAttention, Swish, SwiGLU), compiled and compared with onnxruntime (where it lacks the
opset: with onnx's reference implementation)."""
import numpy as np
import pytest
from onnx import helper
from onnx.reference import ReferenceEvaluator

from conftest import assert_close, make_model, ort_run
from pyflame_rt import ImportOptions, InferenceSession
from pyflame_rt.errors import UnsupportedOperatorError
from pyflame_rt.importers.onnx import from_onnx


def _reference_run(model, feeds):
    return ReferenceEvaluator(model).run(None, feeds)


def _check(model, feed_sets, rtol=1e-5, oracle=ort_run):
    """One compiled session, compared with the oracle on every feed set."""
    sess = InferenceSession(model.SerializeToString())
    for feeds in feed_sets:
        for got, want in zip(sess.run(None, feeds), oracle(model, feeds)):
            assert got.dtype == want.dtype, (got.dtype, want.dtype)
            # masked scores (qk_matmul_output_mode 2): -inf, which onnxruntime writes as the lowest float
            hidden = want <= np.finfo(want.dtype).min if want.dtype.kind == "f" else np.zeros(want.shape, bool)
            assert np.array_equal(np.isneginf(got), hidden)
            assert_close(np.where(hidden, 0, got), np.where(hidden, 0, want), rtol)


def _normal(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("axis", [-1, 1])
def test_rms_normalization_with_a_dynamic_batch(axis, rng):
    node = helper.make_node("RMSNormalization", ["x", "s"], ["y"], axis=axis, epsilon=1e-3)
    model = make_model([node], [("x", ["n", 3, 8]), ("s", [8] if axis == -1 else [3, 8])], [("y", ["n", 3, 8])],
                       opset=23)
    scale = _normal(rng, *([8] if axis == -1 else [3, 8]))
    _check(model, [{"x": _normal(rng, n, 3, 8), "s": scale} for n in (1, 3)], rtol=1e-5)


def test_rms_normalization_keeps_float64(rng):
    """A float64 input is not narrowed to the float32 stash type (onnxruntime and onnx's reference compute
    in float64); the default epsilon is the float attribute's value."""
    model = make_model([helper.make_node("RMSNormalization", ["x", "s"], ["y"])],
                       [("x", [4, 6], np.float64)], [("y", [4, 6], np.float64)], {"s": rng.uniform(0.5, 1, 6)},
                       opset=23)
    feeds = {"x": rng.standard_normal((4, 6)) * 1e-3}  # mean square near epsilon: its value matters
    got = InferenceSession(model.SerializeToString()).run(None, feeds)[0]
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, ort_run(model, feeds)[0], rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(got, _reference_run(model, feeds)[0], rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("interleaved", [0, 1])
@pytest.mark.parametrize("rotary_dim", [0, 4])
def test_rotary_embedding_4d_with_position_ids(interleaved, rotary_dim, rng):
    half = (rotary_dim or 8) // 2
    node = helper.make_node("RotaryEmbedding", ["x", "cos", "sin", "pos"], ["y"], interleaved=interleaved,
                            rotary_embedding_dim=rotary_dim)
    model = make_model([node], [("x", ["b", 2, "s", 8]), ("cos", [16, half]), ("sin", [16, half]),
                                ("pos", ["b", "s"], np.int64)], [("y", ["b", 2, "s", 8])], opset=23)
    angles = rng.uniform(0, 6, (16, half)).astype(np.float32)
    feeds = [{"x": _normal(rng, b, 2, s, 8), "cos": np.cos(angles), "sin": np.sin(angles),
              "pos": rng.integers(0, 16, (b, s))} for b, s in ((1, 3), (2, 5))]
    _check(model, feeds)


def test_rotary_embedding_3d_without_position_ids(rng):
    node = helper.make_node("RotaryEmbedding", ["x", "cos", "sin"], ["y"], num_heads=2)
    model = make_model([node], [("x", [2, 3, 12]), ("cos", [2, 3, 3]), ("sin", [2, 3, 3])], [("y", [2, 3, 12])],
                       opset=23)
    angles = rng.uniform(0, 6, (2, 3, 3)).astype(np.float32)
    _check(model, [{"x": _normal(rng, 2, 3, 12), "cos": np.cos(angles), "sin": np.sin(angles)}])


def _attention_model(attrs, q, k, v, outputs, extra=(), opset=23):
    """Attention over graph inputs q, k, v (+ (name, shape[, dtype]) inputs in the operator's order
    after V: attn_mask, past_key, past_value); outputs (name, shape) in the operator's order."""
    node = helper.make_node("Attention", ["q", "k", "v"] + [e[0] for e in extra], [o[0] for o in outputs], **attrs)
    return make_model([node], [("q", q), ("k", k), ("v", v), *extra], outputs, opset=opset)


@pytest.mark.parametrize("attrs,opset", [
    (dict(q_num_heads=4, kv_num_heads=2, is_causal=1), 23),
    (dict(q_num_heads=4, kv_num_heads=4, scale=0.3, softcap=2.0), 23),
    (dict(q_num_heads=4, kv_num_heads=1, left_window_size=1, right_window_size=0), 25),
])
def test_attention_3d_with_a_dynamic_batch(attrs, opset, rng):
    """Grouped-query, multi-head and multi-query; opset 25's windows are newer than onnxruntime's
    Attention: checked with onnx's reference implementation."""
    kv = attrs["kv_num_heads"] * 4
    model = _attention_model(attrs, ["b", 5, 16], ["b", 5, kv], ["b", 5, kv], [("y", ["b", 5, 16])], opset=opset)
    _check(model, [{"q": _normal(rng, b, 5, 16), "k": _normal(rng, b, 5, kv), "v": _normal(rng, b, 5, kv)}
                   for b in (1, 2)], rtol=1e-4, oracle=ort_run if opset == 23 else _reference_run)


@pytest.mark.parametrize("mode", [0, 1, 2, 3])
@pytest.mark.parametrize("mask_dtype", [np.float32, np.bool_])
def test_attention_4d_with_past_mask_and_qk_output(mode, mask_dtype, rng):
    """past 3 + 2 new keys."""
    attrs = dict(is_causal=1, softcap=3.0, qk_matmul_output_mode=mode)
    outputs = [("y", [2, 4, 2, 8]), ("present_k", [2, 2, 5, 8]), ("present_v", [2, 2, 5, 8]), ("qk", [2, 4, 2, 5])]
    model = _attention_model(attrs, [2, 4, 2, 8], [2, 2, 2, 8], [2, 2, 2, 8], outputs,
                             extra=[("mask", [2, 5], mask_dtype), ("pk", [2, 2, 3, 8]), ("pv", [2, 2, 3, 8])])
    mask = rng.standard_normal((2, 5)) > -0.5 if mask_dtype == np.bool_ else _normal(rng, 2, 5)
    mask[0] = False if mask_dtype == np.bool_ else -np.inf  # the first query sees no key: a zero row
    feeds = {"q": _normal(rng, 2, 4, 2, 8), "k": _normal(rng, 2, 2, 2, 8), "v": _normal(rng, 2, 2, 2, 8),
             "mask": mask, "pk": _normal(rng, 2, 2, 3, 8), "pv": _normal(rng, 2, 2, 3, 8)}
    _check(model, [feeds], rtol=1e-4)


def test_attention_3d_needs_head_counts():
    model = _attention_model({}, [1, 2, 8], [1, 2, 8], [1, 2, 8], [("y", [1, 2, 8])])
    with pytest.raises(UnsupportedOperatorError, match="q_num_heads and kv_num_heads"):
        from_onnx(model, ImportOptions(check_model=False))


@pytest.mark.parametrize("mode", ["linear", "circular"])
def test_tensor_scatter_with_write_indices(mode, rng):
    node = helper.make_node("TensorScatter", ["past", "update", "w"], ["present"], mode=mode)
    model = make_model([node], [("past", [2, 3, 6, 4]), ("update", [2, 3, 2, 4]), ("w", [2], np.int64)],
                       [("present", [2, 3, 6, 4])], opset=24)
    w = np.array([1, 5 if mode == "circular" else 4], np.int64)
    _check(model, [{"past": _normal(rng, 2, 3, 6, 4), "update": _normal(rng, 2, 3, 2, 4), "w": w}])


def test_swish_and_swiglu(rng):
    nodes = [helper.make_node("Swish", ["a"], ["s"], alpha=0.7), helper.make_node("SwiGLU", ["a", "b"], ["y"])]
    model = make_model(nodes, [("a", ["n", 6]), ("b", ["n", 6])], [("s", ["n", 6]), ("y", ["n", 6])], opset=28)
    _check(model, [{"a": _normal(rng, n, 6), "b": _normal(rng, n, 6)} for n in (1, 4)], oracle=_reference_run)


@pytest.mark.parametrize("with_past", [False, True])
def test_causal_conv_with_state(with_past, rng):
    """Opset 27, newer than onnxruntime's: checked with onnx's reference implementation."""
    names = ["x", "w", "bias"] + (["past"] if with_past else [])
    node = helper.make_node("CausalConvWithState", names, ["y", "state"], activation="silu")
    inputs = [("x", [2, 3, 5]), ("w", [3, 1, 4]), ("bias", [3])] + ([("past", [2, 3, 3])] if with_past else [])
    model = make_model([node], inputs, [("y", [2, 3, 5]), ("state", [2, 3, 3])], opset=27)
    feeds = {name: _normal(rng, *shape) for name, shape in inputs}
    _check(model, [feeds], rtol=1e-5, oracle=_reference_run)


@pytest.mark.parametrize("rule", ["linear", "gated_delta"])
def test_linear_attention_with_a_dynamic_batch(rule, rng):
    """Opset 27 (newer than onnxruntime's): grouped-query heads (4 query heads on 2 KV heads), a past
    state, per-head decay and beta; checked with onnx's reference implementation."""
    gated = rule == "gated_delta"
    names = ["q", "k", "v", "past"] + (["decay", "beta"] if gated else [])
    node = helper.make_node("LinearAttention", names, ["y", "state"], update_rule=rule, q_num_heads=4,
                            kv_num_heads=2)
    inputs = [("q", ["b", 3, 16]), ("k", ["b", 3, 8]), ("v", ["b", 3, 6]), ("past", ["b", 2, 4, 3])]
    inputs += [("decay", ["b", 3, 2]), ("beta", ["b", 3, 2])] if gated else []
    model = make_model([node], inputs, [("y", ["b", 3, 12]), ("state", ["b", 2, 4, 3])], opset=27)
    feeds = []
    for b in (1, 2):
        f = {name: _normal(rng, b, *shape[1:]) for name, shape in inputs}
        if gated:  # a log-space decay and a sigmoid rate
            f["decay"], f["beta"] = -np.abs(f["decay"]), 1 / (1 + np.exp(-f["beta"]))
        feeds.append(f)
    _check(model, feeds, rtol=1e-5, oracle=_reference_run)
