"""Tiny torch transformers for the model tests: a BERT-style encoder (post-LayerNorm, attention-mask
input) and a GPT-style decoder (pre-LayerNorm, causal mask, tanh GELU), and their ONNX export.
Imports torch: import it inside the tests that need it."""
import io

import onnx
import torch

nn, F = torch.nn, torch.nn.functional


class Attention(nn.Module):
    """Multi-head self-attention; heads are split by view + einsum (exports Shape/Gather/Concat/Reshape
    chains over the dynamic dims and Einsum)."""

    def __init__(self, d: int, heads: int, causal: bool):
        super().__init__()
        self.h, self.dh, self.causal = heads, d // heads, causal
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))

    def forward(self, x, mask=None):
        b, s, d = x.shape
        q, k, v = (lin(x).view(b, s, self.h, self.dh) for lin in (self.q, self.k, self.v))
        scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / self.dh ** 0.5
        if mask is not None:
            scores = scores + mask
        if self.causal:
            future = torch.ones(s, s, dtype=torch.bool, device=x.device).triu(1)
            scores = scores.masked_fill(future, float("-inf"))
        ctx = torch.einsum("bhqk,bkhd->bqhd", scores.softmax(-1), v)
        return self.o(ctx.reshape(b, s, d))


class Block(nn.Module):
    def __init__(self, d: int, heads: int, causal: bool, act):
        super().__init__()
        self.attn = Attention(d, heads, causal)
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.fc1, self.fc2 = nn.Linear(d, 2 * d), nn.Linear(2 * d, d)
        self.act, self.pre_norm = act, causal

    def forward(self, x, mask=None):
        if self.pre_norm:  # GPT: pre-LayerNorm residual blocks
            x = x + self.attn(self.ln1(x), mask)
            return x + self.fc2(self.act(self.fc1(self.ln2(x))))
        x = self.ln1(x + self.attn(x, mask))  # BERT: post-LayerNorm
        return self.ln2(x + self.fc2(self.act(self.fc1(x))))


class TinyBert(nn.Module):
    def __init__(self, vocab=100, d=64, heads=4, layers=2, max_pos=64):
        super().__init__()
        self.tok, self.pos = nn.Embedding(vocab, d), nn.Embedding(max_pos, d)
        self.ln = nn.LayerNorm(d)
        self.blocks = nn.ModuleList(Block(d, heads, False, F.gelu) for _ in range(layers))

    def forward(self, ids, mask):
        b, s = ids.shape
        x = self.ln(self.tok(ids) + self.pos(torch.arange(s, device=ids.device)))
        bias = (1.0 - mask.view(b, 1, 1, s).to(x.dtype)) * -10000.0
        for blk in self.blocks:
            x = blk(x, bias)
        return x


class TinyGPT(nn.Module):
    def __init__(self, vocab=100, d=64, heads=4, layers=2, max_pos=64):
        super().__init__()
        self.tok, self.pos = nn.Embedding(vocab, d), nn.Embedding(max_pos, d)
        gelu = lambda t: F.gelu(t, approximate="tanh")  # noqa: E731
        self.blocks = nn.ModuleList(Block(d, heads, True, gelu) for _ in range(layers))
        self.ln_f, self.head = nn.LayerNorm(d), nn.Linear(d, vocab, bias=False)

    def forward(self, ids):
        x = self.tok(ids) + self.pos(torch.arange(ids.shape[1], device=ids.device))
        for blk in self.blocks:
            x = blk(x)
        return self.head(self.ln_f(x))


def export(module, args, names, dynamic, opset=17) -> onnx.ModelProto:
    torch.manual_seed(0)
    buf = io.BytesIO()
    with torch.no_grad():
        torch.onnx.export(module.eval(), args, buf, input_names=names, output_names=["out"],
                          dynamic_axes={**{n: dynamic for n in names}, "out": dynamic},
                          opset_version=opset, dynamo=False)
    return onnx.load_from_string(buf.getvalue())


def tiny_bert_onnx() -> onnx.ModelProto:
    """TinyBert with seeded weights, exported with inputs ids and mask of dynamic batch and seq."""
    torch.manual_seed(0)
    ids, mask = torch.zeros(2, 5, dtype=torch.long), torch.ones(2, 5, dtype=torch.long)
    return export(TinyBert(), (ids, mask), ["ids", "mask"], {0: "batch", 1: "seq"})
