"""Torch-exported transformers (dynamic batch and sequence) compiled to native code vs onnxruntime:
a BERT-style encoder with an attention-mask input and a GPT-style decoder with a causal mask
and GELU. One compiled session serves two different (batch, seq) pairs."""
import numpy as np
import pytest

from conftest import assert_close, ort_run
from pyflame_rt import InferenceSession

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::DeprecationWarning")]


def _check_two_shapes(model, make_feeds):
    sess = InferenceSession(model.SerializeToString())
    rng = np.random.default_rng(0)
    for batch, seq in ((2, 7), (3, 16)):
        feeds = make_feeds(rng, batch, seq)
        (got,) = sess.run(None, feeds)
        (want,) = ort_run(model, feeds)
        assert got.shape == want.shape == (batch, seq, want.shape[-1])
        assert_close(got, want, rtol=1e-4)


def test_bert_encoder_with_attention_mask():
    tiny = pytest.importorskip("models.tiny_transformers")
    model = tiny.tiny_bert_onnx()

    def feeds(rng, b, s):
        mask = np.ones((b, s), np.int64)
        mask[0, s - 2:] = 0  # padding in the first sequence
        return {"ids": rng.integers(0, 100, (b, s)), "mask": mask}

    _check_two_shapes(model, feeds)


def test_gpt_decoder_with_causal_mask_and_gelu():
    tiny = pytest.importorskip("models.tiny_transformers")
    torch = tiny.torch
    torch.manual_seed(0)
    model = tiny.export(tiny.TinyGPT(), (torch.zeros(2, 5, dtype=torch.long),), ["ids"], {0: "batch", 1: "seq"})
    _check_two_shapes(model, lambda rng, b, s: {"ids": rng.integers(0, 100, (b, s))})
