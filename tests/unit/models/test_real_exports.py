"""Exports shaped like the real ones users bring (tests/unit/models/hf_style.py): a BERT-family
sentence encoder with dynamic batch and sequence, and a ViT with a dynamic batch. Their shape
operands are Shape arithmetic over the input dims; each compiles once and serves every shape,
checked against onnxruntime."""
import numpy as np
import pytest

from conftest import assert_close, ort_run
from pyflame_rt import InferenceSession

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore")]  # the exporter's tracer warnings


def _check(model, feeds_list):
    sess = InferenceSession(model.SerializeToString())
    for feeds in feeds_list:
        got = sess.run(None, feeds)
        want = ort_run(model, feeds)
        for g, w in zip(got, want):
            assert_close(g, w, rtol=1e-4)


@pytest.mark.parametrize("attn_implementation", ["eager", "sdpa"])
def test_bert_encoder_position_ids_sliced_to_the_sequence(attn_implementation):
    hf_style = pytest.importorskip("models.hf_style")
    rng = np.random.default_rng(0)

    def feeds(batch, seq):
        mask = np.ones((batch, seq), np.int64)
        mask[-1, seq // 2:] = 0  # the last sentence is padded
        return {"input_ids": rng.integers(1, 100, (batch, seq)), "attention_mask": mask}

    _check(hf_style.bert_model(attn_implementation=attn_implementation),
           [feeds(b, s) for b, s in ((1, 9), (3, 9), (1, 33), (3, 33))])


def test_vit_heads_folded_into_the_dynamic_batch():
    hf_style = pytest.importorskip("models.hf_style")
    rng = np.random.default_rng(0)
    _check(hf_style.vit_model(),
           [{"pixel_values": rng.standard_normal((b, 3, 32, 32)).astype(np.float32)} for b in (1, 3)])
