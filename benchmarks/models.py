"""The benchmark models, defined in plain torch (torchvision is not installable here).

Architectures follow the published ones (ResNet-50 v1.5, MobileNetV2 1.0, SqueezeNet 1.1,
a BERT-base-sized encoder and a GPT-2-small-sized decoder); weights are random, which
does not change the work done.
"""
from __future__ import annotations

import math

import torch
from torch import nn
import torch.nn.functional as F


# ------------------------------------------------------------------- CNNs

class Bottleneck(nn.Module):
    def __init__(self, cin, width, stride):
        super().__init__()
        cout = width * 4
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return F.relu(y + (self.down(x) if self.down is not None else x))


class ResNet50(nn.Module):
    def __init__(self, classes=1000):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
                                  nn.MaxPool2d(3, 2, 1))
        layers, cin = [], 64
        for width, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
            for i in range(blocks):
                layers.append(Bottleneck(cin, width, stride if i == 0 else 1))
                cin = width * 4
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(2048, classes)

    def forward(self, x):
        x = self.layers(self.stem(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, expand):
        super().__init__()
        hidden = cin * expand
        layers = []
        if expand != 1:
            layers += [nn.Conv2d(cin, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6()]
        layers += [nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False), nn.BatchNorm2d(hidden),
                   nn.ReLU6(), nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.body(x) if self.residual else self.body(x)


class MobileNetV2(nn.Module):
    def __init__(self, classes=1000):
        super().__init__()
        cfg = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
               (6, 320, 1, 1)]
        layers = [nn.Conv2d(3, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU6()]
        cin = 32
        for t, c, n, s in cfg:
            for i in range(n):
                layers.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        layers += [nn.Conv2d(cin, 1280, 1, bias=False), nn.BatchNorm2d(1280), nn.ReLU6()]
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(1280, classes)

    def forward(self, x):
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1))


class Fire(nn.Module):
    def __init__(self, cin, squeeze, e1, e3):
        super().__init__()
        self.squeeze = nn.Conv2d(cin, squeeze, 1)
        self.e1 = nn.Conv2d(squeeze, e1, 1)
        self.e3 = nn.Conv2d(squeeze, e3, 3, padding=1)

    def forward(self, x):
        x = F.relu(self.squeeze(x))
        return torch.cat([F.relu(self.e1(x)), F.relu(self.e3(x))], 1)


class SqueezeNet11(nn.Module):
    def __init__(self, classes=1000):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, 3, 2), nn.ReLU(), nn.MaxPool2d(3, 2, ceil_mode=True),
            Fire(64, 16, 64, 64), Fire(128, 16, 64, 64), nn.MaxPool2d(3, 2, ceil_mode=True),
            Fire(128, 32, 128, 128), Fire(256, 32, 128, 128), nn.MaxPool2d(3, 2, ceil_mode=True),
            Fire(256, 48, 192, 192), Fire(384, 48, 192, 192), Fire(384, 64, 256, 256),
            Fire(512, 64, 256, 256))
        self.classifier = nn.Sequential(nn.Conv2d(512, classes, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1))

    def forward(self, x):
        return torch.flatten(self.classifier(self.features(x)), 1)


# ----------------------------------------------------------- transformers

class Block(nn.Module):
    def __init__(self, d, heads, causal, act):
        super().__init__()
        self.heads, self.causal = heads, causal
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ln1 = nn.LayerNorm(d)
        self.ln2 = nn.LayerNorm(d)
        self.fc1 = nn.Linear(d, 4 * d)
        self.fc2 = nn.Linear(4 * d, d)
        self.act = act

    def attention(self, x, mask):
        b, s, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=-1)
        q, k, v = (t.reshape(b, s, self.heads, d // self.heads).transpose(1, 2) for t in (q, k, v))
        scores = q @ k.transpose(-1, -2) / math.sqrt(d // self.heads) + mask
        return self.proj((scores.softmax(-1) @ v).transpose(1, 2).reshape(b, s, d))

    def forward(self, x, mask):
        if self.causal:  # GPT: pre-norm
            x = x + self.attention(self.ln1(x), mask)
            return x + self.fc2(self.act(self.fc1(self.ln2(x))))
        x = self.ln1(x + self.attention(x, mask))  # BERT: post-norm
        return self.ln2(x + self.fc2(self.act(self.fc1(x))))


class Encoder(nn.Module):
    """BERT-style: token + position embeddings, attention mask input, GELU (erf)."""

    def __init__(self, layers=12, d=768, heads=12, vocab=30522, max_len=512):
        super().__init__()
        self.tok = nn.Embedding(vocab, d)
        self.pos = nn.Embedding(max_len, d)
        self.ln = nn.LayerNorm(d)
        self.blocks = nn.ModuleList(Block(d, heads, False, nn.GELU()) for _ in range(layers))

    def forward(self, ids, attention_mask):
        pos = torch.arange(ids.shape[1]).unsqueeze(0)
        x = self.ln(self.tok(ids) + self.pos(pos))
        mask = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * -10000.0
        for blk in self.blocks:
            x = blk(x, mask)
        return x


class Decoder(nn.Module):
    """GPT-style: causal mask, GELU (tanh approximation), tied LM head omitted."""

    def __init__(self, layers=12, d=768, heads=12, vocab=50257, max_len=1024):
        super().__init__()
        self.tok = nn.Embedding(vocab, d)
        self.pos = nn.Embedding(max_len, d)
        self.blocks = nn.ModuleList(Block(d, heads, True, nn.GELU(approximate="tanh")) for _ in range(layers))
        self.ln = nn.LayerNorm(d)

    def forward(self, ids):
        s = ids.shape[1]
        x = self.tok(ids) + self.pos(torch.arange(s).unsqueeze(0))
        causal = torch.triu(torch.full((s, s), -10000.0), diagonal=1)
        for blk in self.blocks:
            x = blk(x, causal)
        return self.ln(x)


class DecoderWithPast(nn.Module):
    """The GPT-style decoder exported for step-by-step decoding, with HF GPT-2's ONNX interface:
    inputs input_ids [batch, seq], attention_mask [batch, past + seq], position_ids [batch, seq] and
    past_key_values.N.key / .value [batch, heads, past, head_dim]; outputs logits [batch, seq, vocab]
    and present.N.key / .value [batch, heads, past + seq, head_dim] (Concat of past and new).
    Attention stays decomposed into MatMul / Softmax; the causal mask compares key positions
    (CumSum of the attention mask) with the query positions, so any past length works, 0 included."""

    def __init__(self, layers=12, d=768, heads=12, vocab=50257, max_len=1024):
        super().__init__()
        self.heads = heads
        self.tok = nn.Embedding(vocab, d)
        self.pos = nn.Embedding(max_len, d)
        self.blocks = nn.ModuleList(Block(d, heads, True, nn.GELU(approximate="tanh")) for _ in range(layers))
        self.ln = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab, bias=False)

    def attention(self, blk, x, bias, past_k, past_v):
        b, s, d = x.shape
        q, k, v = blk.qkv(x).split(d, dim=-1)
        q, k, v = (t.reshape(b, s, self.heads, d // self.heads).transpose(1, 2) for t in (q, k, v))
        k, v = torch.cat([past_k, k], dim=2), torch.cat([past_v, v], dim=2)
        scores = q @ k.transpose(-1, -2) / math.sqrt(d // self.heads) + bias
        return blk.proj((scores.softmax(-1) @ v).transpose(1, 2).reshape(b, s, d)), k, v

    def forward(self, input_ids, attention_mask, position_ids, *past):
        x = self.tok(input_ids) + self.pos(position_ids)
        key_pos = attention_mask.cumsum(-1) - 1
        hidden = (key_pos[:, None, None, :] > position_ids[:, None, :, None]) | (attention_mask[:, None, None, :] == 0)
        bias = hidden.to(x.dtype) * -10000.0
        present = []
        for j, blk in enumerate(self.blocks):
            a, k, v = self.attention(blk, blk.ln1(x), bias, past[2 * j], past[2 * j + 1])
            x = x + a
            x = x + blk.fc2(blk.act(blk.fc1(blk.ln2(x))))
            present += [k, v]
        return (self.head(self.ln(x)), *present)


def export_decoder_with_past(path: str, seed: int = 0, **config) -> None:
    """DecoderWithPast(**config) with random weights (seeded), dynamic batch, seq and past."""
    torch.manual_seed(seed)
    model = DecoderWithPast(**config).eval()
    layers, heads = len(model.blocks), model.heads
    head_dim = model.tok.embedding_dim // heads
    kv = [f"{j}.{t}" for j in range(layers) for t in ("key", "value")]
    past = [torch.randn(2, heads, 3, head_dim) for _ in kv]
    ids = torch.randint(0, model.tok.num_embeddings, (2, 4))
    example = (ids, torch.ones(2, 7, dtype=torch.int64), torch.arange(3, 7).repeat(2, 1), *past)
    inputs = ["input_ids", "attention_mask", "position_ids", *(f"past_key_values.{n}" for n in kv)]
    outputs = ["logits", *(f"present.{n}" for n in kv)]
    axes = {"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "total"},
            "position_ids": {0: "batch", 1: "seq"}, "logits": {0: "batch", 1: "seq"},
            **{f"past_key_values.{n}": {0: "batch", 2: "past"} for n in kv},
            **{f"present.{n}": {0: "batch", 2: "total"} for n in kv}}
    with torch.no_grad():
        torch.onnx.export(model, example, path, input_names=inputs, output_names=outputs, dynamic_axes=axes,
                          opset_version=17, dynamo=False)


def mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(),
                         nn.Linear(1024, 10))


# name -> (constructor, example inputs at batch 2, input names, dynamic axes)
SEQ = 128
MODELS = {
    "mlp": (mlp, lambda: (torch.randn(2, 1, 28, 28),), ["input"], {"input": {0: "batch"}}),
    "resnet50": (ResNet50, lambda: (torch.randn(2, 3, 224, 224),), ["input"], {"input": {0: "batch"}}),
    "mobilenetv2": (MobileNetV2, lambda: (torch.randn(2, 3, 224, 224),), ["input"], {"input": {0: "batch"}}),
    "squeezenet": (SqueezeNet11, lambda: (torch.randn(2, 3, 224, 224),), ["input"], {"input": {0: "batch"}}),
    "bert": (Encoder, lambda: (torch.randint(0, 30522, (2, SEQ)), torch.ones(2, SEQ, dtype=torch.int64)),
             ["input_ids", "attention_mask"],
             {"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"}}),
    "gpt": (Decoder, lambda: (torch.randint(0, 50257, (2, SEQ)),), ["input_ids"],
            {"input_ids": {0: "batch", 1: "seq"}}),
}


def export(name: str, path: str, seed: int = 0, fold_batch_norm: bool = True, **config) -> None:
    """`config` goes to the model's constructor (smaller test configurations); `fold_batch_norm=False`
    keeps BatchNormalization nodes (torch's eval-mode export folds them into the convolutions as
    part of its constant folding, which it then skips)."""
    ctor, example, input_names, axes = MODELS[name]
    torch.manual_seed(seed)
    model = ctor(**config).eval()
    with torch.no_grad():
        torch.onnx.export(model, example(), path, input_names=input_names, output_names=["output"],
                          dynamic_axes={**axes, "output": {0: "batch"}}, opset_version=17, dynamo=False,
                          do_constant_folding=fold_batch_norm)
