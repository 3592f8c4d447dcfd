"""A Llama-style decoder built with onnx.helper on the opset-23 operators (RMSNormalization,
RotaryEmbedding, grouped-query Attention with a KV cache: past key / value inputs, present outputs),
compiled once and compared with onnxruntime at two batch sizes, two new-token counts and two past
lengths. The total length is the attention mask's last dim; the past length a dim of the past keys."""
import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import assert_close, ort_run
from pyflame_rt import InferenceSession
from pyflame_rt.errors import ShapeMismatchError

HIDDEN, Q_HEADS, KV_HEADS, HEAD, FFN, VOCAB, MAX_POS, LAYERS = 32, 4, 2, 8, 64, 50, 64, 2


def _weights(rng) -> dict[str, np.ndarray]:
    def w(*shape):
        return (rng.standard_normal(shape) / np.sqrt(shape[0])).astype(np.float32)

    angles = np.outer(np.arange(MAX_POS), 10000.0 ** (-np.arange(HEAD // 2) * 2 / HEAD))
    out = {"embed": w(VOCAB, HIDDEN), "cos": np.cos(angles).astype(np.float32),
           "sin": np.sin(angles).astype(np.float32), "final_norm": 1 + w(HIDDEN) / 4, "lm_head": w(HIDDEN, VOCAB)}
    for i in range(LAYERS):
        out.update({f"l{i}_attn_norm": 1 + w(HIDDEN) / 4, f"l{i}_mlp_norm": 1 + w(HIDDEN) / 4,
                    f"l{i}_wq": w(HIDDEN, Q_HEADS * HEAD), f"l{i}_wk": w(HIDDEN, KV_HEADS * HEAD),
                    f"l{i}_wv": w(HIDDEN, KV_HEADS * HEAD), f"l{i}_wo": w(Q_HEADS * HEAD, HIDDEN),
                    f"l{i}_gate": w(HIDDEN, FFN), f"l{i}_up": w(HIDDEN, FFN), f"l{i}_down": w(FFN, HIDDEN)})
    return out


def _layer(i: int) -> list:
    n = helper.make_node
    p = f"l{i}_"
    x = "embeds" if i == 0 else f"l{i - 1}_out"
    return [
        n("RMSNormalization", [x, p + "attn_norm"], [p + "h"], epsilon=1e-5),
        *(n("MatMul", [p + "h", p + w], [p + w + "_out"]) for w in ("wq", "wk", "wv")),
        n("RotaryEmbedding", [p + "wq_out", "cos", "sin", "position_ids"], [p + "q"], num_heads=Q_HEADS),
        n("RotaryEmbedding", [p + "wk_out", "cos", "sin", "position_ids"], [p + "k"], num_heads=KV_HEADS),
        n("Attention", [p + "q", p + "k", p + "wv_out", "mask", f"past_key_{i}", f"past_value_{i}"],
          [p + "attn", f"present_key_{i}", f"present_value_{i}"], is_causal=1, q_num_heads=Q_HEADS,
          kv_num_heads=KV_HEADS),
        n("MatMul", [p + "attn", p + "wo"], [p + "attn_out"]),
        n("Add", [x, p + "attn_out"], [p + "res"]),
        n("RMSNormalization", [p + "res", p + "mlp_norm"], [p + "h2"], epsilon=1e-5),
        n("MatMul", [p + "h2", p + "gate"], [p + "g"]),
        n("Sigmoid", [p + "g"], [p + "g_sig"]),
        n("Mul", [p + "g", p + "g_sig"], [p + "silu"]),
        n("MatMul", [p + "h2", p + "up"], [p + "u"]),
        n("Mul", [p + "silu", p + "u"], [p + "gated"]),
        n("MatMul", [p + "gated", p + "down"], [p + "mlp_out"]),
        n("Add", [p + "res", p + "mlp_out"], [f"l{i}_out"]),
    ]


def llama_decoder(rng):
    """input_ids / position_ids [batch, seq], attention_mask [batch, total] (1 = attend), past
    key / value [batch, kv heads, past, head] per layer -> logits and present key / value."""
    def io(name, shape, elem=TensorProto.FLOAT):
        return helper.make_tensor_value_info(name, elem, shape)

    cache = ["batch", KV_HEADS, "past", HEAD]
    present = ["batch", KV_HEADS, "total", HEAD]
    nodes = [
        helper.make_node("Gather", ["embed", "input_ids"], ["embeds"]),
        helper.make_node("Cast", ["attention_mask"], ["mask_bool"], to=TensorProto.BOOL),
        helper.make_node("Unsqueeze", ["mask_bool", "mask_axes"], ["mask_row"]),
        # [batch, 1, seq, total], as exporters build it (onnxruntime wants the query dim)
        helper.make_node("Shape", ["input_ids"], ["batch"], end=1),
        helper.make_node("Shape", ["input_ids"], ["seq"], start=1),
        helper.make_node("Shape", ["attention_mask"], ["total"], start=1),
        helper.make_node("Concat", ["batch", "one", "seq", "total"], ["mask_shape"], axis=0),
        helper.make_node("Expand", ["mask_row", "mask_shape"], ["mask"]),
        *(node for i in range(LAYERS) for node in _layer(i)),
        helper.make_node("RMSNormalization", [f"l{LAYERS - 1}_out", "final_norm"], ["normed"], epsilon=1e-5),
        helper.make_node("MatMul", ["normed", "lm_head"], ["logits"]),
    ]
    inputs = [io("input_ids", ["batch", "seq"], TensorProto.INT64),
              io("attention_mask", ["batch", "total"], TensorProto.INT64),
              io("position_ids", ["batch", "seq"], TensorProto.INT64)]
    outputs = [io("logits", ["batch", "seq", VOCAB])]
    for i in range(LAYERS):
        inputs += [io(f"past_key_{i}", cache), io(f"past_value_{i}", cache)]
        outputs += [io(f"present_key_{i}", present), io(f"present_value_{i}", present)]
    inits = [numpy_helper.from_array(v, k) for k, v in _weights(rng).items()]
    inits.append(numpy_helper.from_array(np.array([1, 2], np.int64), "mask_axes"))
    inits.append(numpy_helper.from_array(np.array([1], np.int64), "one"))
    graph = helper.make_graph(nodes, "llama", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 23)])
    model.ir_version = 10
    return model


def _feeds(rng, batch: int, seq: int, past: int) -> dict[str, np.ndarray]:
    total = past + seq
    mask = np.ones((batch, total), np.int64)
    mask[-1, :1] = 0  # the last sequence is left-padded by one token
    feeds = {"input_ids": rng.integers(0, VOCAB, (batch, seq)), "attention_mask": mask,
             "position_ids": np.broadcast_to(np.arange(past, total), (batch, seq)).copy()}
    for i in range(LAYERS):
        for kind in ("key", "value"):
            feeds[f"past_{kind}_{i}"] = rng.standard_normal((batch, KV_HEADS, past, HEAD)).astype(np.float32)
    return feeds


@pytest.fixture(scope="module")
def decoder():
    model = llama_decoder(np.random.default_rng(0))
    return model, InferenceSession(model.SerializeToString())


@pytest.mark.slow
def test_llama_decoder_with_kv_cache_from_one_artifact(decoder, rng):
    model, sess = decoder
    for batch, seq, past in ((1, 4, 3), (2, 1, 7), (2, 4, 7), (1, 1, 3)):
        feeds = _feeds(rng, batch, seq, past)
        got, want = sess.run(None, feeds), ort_run(model, feeds)
        assert got[0].shape == (batch, seq, VOCAB) and got[1].shape == (batch, KV_HEADS, past + seq, HEAD)
        for g, w in zip(got, want):
            assert_close(g, w, rtol=1e-4)


@pytest.mark.slow
def test_llama_decoder_refuses_a_mask_that_is_not_the_total_length(decoder, rng):
    _, sess = decoder
    feeds = _feeds(rng, 1, 2, 3)
    feeds["attention_mask"] = np.ones((1, 6), np.int64)
    with pytest.raises(ShapeMismatchError, match="add up to the declared total"):
        sess.run(None, feeds)
