"""Encoders written as the `transformers` BERT (4.x eager attention) and torchvision's ViT are,
with random weights, and their torch.onnx (TorchScript) export. Their exports carry the shape
arithmetic real exports have: the position / token-type ids sliced to the run's sequence length
(Shape -> Gather -> Unsqueeze -> Slice), the extended attention mask `(1 - mask[:, None, None, :]) *
finfo.min`, heads split by `x.size()[:-1] + (heads, head_size)` views and merged back, and the ViT's
class token expanded to the batch. Imports torch: import it inside the tests that need it."""
import io
import math

import onnx
import torch

nn, F = torch.nn, torch.nn.functional


class SelfAttention(nn.Module):
    """`transformers`' two attention implementations: "eager" (matmuls and softmax) and "sdpa"
    (F.scaled_dot_product_attention, whose export computes its scale from the head size's Shape)."""

    def __init__(self, d: int, heads: int, attn_implementation: str = "eager"):
        super().__init__()
        self.heads, self.head_size, self.sdpa = heads, d // heads, attn_implementation == "sdpa"
        self.query, self.key, self.value = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)
        self.dense = nn.Linear(d, d)

    def transpose_for_scores(self, x):
        x = x.view(x.size()[:-1] + (self.heads, self.head_size))
        return x.permute(0, 2, 1, 3)

    def forward(self, h, mask=None):
        q, k, v = (self.transpose_for_scores(lin(h)) for lin in (self.query, self.key, self.value))
        if self.sdpa:
            ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        else:
            scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head_size)
            if mask is not None:
                scores = scores + mask
            ctx = torch.matmul(scores.softmax(dim=-1), v)
        ctx = ctx.permute(0, 2, 1, 3).contiguous()
        return self.dense(ctx.view(ctx.size()[:-2] + (self.heads * self.head_size,)))


class BertLayer(nn.Module):
    """Post-LayerNorm: LN(h + attention(h)), LN(x + ffn(x))."""

    def __init__(self, d: int, heads: int, ffn: int, attn_implementation: str):
        super().__init__()
        self.attention, self.ln1 = SelfAttention(d, heads, attn_implementation), nn.LayerNorm(d, eps=1e-12)
        self.intermediate, self.output, self.ln2 = nn.Linear(d, ffn), nn.Linear(ffn, d), nn.LayerNorm(d, eps=1e-12)

    def forward(self, h, mask):
        h = self.ln1(h + self.attention(h, mask))
        return self.ln2(h + self.output(F.gelu(self.intermediate(h))))


class BertEmbeddings(nn.Module):
    def __init__(self, vocab: int, d: int, max_pos: int):
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab, d, padding_idx=0)
        self.position_embeddings, self.token_type_embeddings = nn.Embedding(max_pos, d), nn.Embedding(2, d)
        self.LayerNorm = nn.LayerNorm(d, eps=1e-12)
        self.register_buffer("position_ids", torch.arange(max_pos).expand((1, -1)), persistent=False)
        self.register_buffer("token_type_ids", torch.zeros(self.position_ids.size(), dtype=torch.long),
                             persistent=False)

    def forward(self, input_ids, past_key_values_length: int = 0):
        input_shape = input_ids.size()
        seq_length = input_shape[1]
        position_ids = self.position_ids[:, past_key_values_length:seq_length + past_key_values_length]
        token_type_ids = self.token_type_ids[:, :seq_length].expand(input_shape[0], seq_length)
        x = self.word_embeddings(input_ids) + self.token_type_embeddings(token_type_ids)
        return self.LayerNorm(x + self.position_embeddings(position_ids))


class BertEncoder(nn.Module):
    """BertModel's encoder with a sentence-transformers mean pooling on top: returns the last hidden
    state and the masked mean over the sequence."""

    def __init__(self, vocab=100, d=64, heads=4, layers=2, max_pos=160, attn_implementation="eager"):
        super().__init__()
        self.embeddings = BertEmbeddings(vocab, d, max_pos)
        self.layer = nn.ModuleList(BertLayer(d, heads, 4 * d, attn_implementation) for _ in range(layers))

    def forward(self, input_ids, attention_mask):
        extended = attention_mask[:, None, None, :].to(torch.float32)
        extended = (1.0 - extended) * torch.finfo(torch.float32).min
        h = self.embeddings(input_ids)
        for layer in self.layer:
            h = layer(h, extended)
        weights = attention_mask.unsqueeze(-1).to(h.dtype)
        pooled = (h * weights).sum(1) / torch.clamp(weights.sum(1), min=1e-9)
        return h, pooled


class ViTBlock(nn.Module):
    """torchvision's EncoderBlock: pre-LayerNorm, nn.MultiheadAttention (whose export folds the heads
    into the batch: [batch * heads, tokens, head_size] and back)."""

    def __init__(self, d: int, heads: int, ffn: int):
        super().__init__()
        self.ln_1, self.self_attention = nn.LayerNorm(d, eps=1e-6), nn.MultiheadAttention(d, heads, batch_first=True)
        self.ln_2, self.mlp = nn.LayerNorm(d, eps=1e-6), nn.Sequential(nn.Linear(d, ffn), nn.GELU(), nn.Linear(ffn, d))

    def forward(self, x):
        y = self.ln_1(x)
        x = x + self.self_attention(y, y, y, need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


class ViT(nn.Module):
    """torchvision's VisionTransformer: patches by a strided conv, the class token expanded to the
    batch, learned position embeddings, the class token's final state classified."""

    def __init__(self, image=32, patch=8, channels=3, d=64, heads=4, layers=2, classes=10):
        super().__init__()
        self.hidden_dim = d
        self.conv_proj = nn.Conv2d(channels, d, kernel_size=patch, stride=patch)
        self.class_token = nn.Parameter(torch.randn(1, 1, d))
        self.pos_embedding = nn.Parameter(torch.randn(1, (image // patch) ** 2 + 1, d))
        self.layers = nn.Sequential(*(ViTBlock(d, heads, 4 * d) for _ in range(layers)))
        self.ln, self.head = nn.LayerNorm(d, eps=1e-6), nn.Linear(d, classes)

    def forward(self, x):
        n, _, h, w = x.shape
        x = self.conv_proj(x)
        x = x.reshape(n, self.hidden_dim, x.shape[2] * x.shape[3]).permute(0, 2, 1)
        x = torch.cat([self.class_token.expand(n, -1, -1), x], dim=1) + self.pos_embedding
        return self.head(self.ln(self.layers(x))[:, 0])


def export(module, args, names, dynamic: dict[str, dict[int, str]], outputs, opset=17) -> onnx.ModelProto:
    torch.manual_seed(0)
    buf = io.BytesIO()
    # traced with grad enabled: under no_grad, nn.MultiheadAttention takes its fused fast path,
    # which has no ONNX export
    torch.onnx.export(module.eval(), args, buf, input_names=names, output_names=outputs,
                      dynamic_axes=dynamic, opset_version=opset, dynamo=False)
    return onnx.load_from_string(buf.getvalue())


def bert_model(vocab=100, d=64, heads=4, layers=2, max_pos=160, attn_implementation="eager") -> onnx.ModelProto:
    """BERT-base is bert_model(30522, 768, 12, 12, 512)."""
    torch.manual_seed(0)
    ids = torch.ones(2, 5, dtype=torch.long)
    dims = {0: "batch", 1: "sequence"}
    return export(BertEncoder(vocab, d, heads, layers, max_pos, attn_implementation), (ids, torch.ones_like(ids)),
                  ["input_ids", "attention_mask"],
                  {"input_ids": dims, "attention_mask": dims, "last_hidden_state": dims, "pooled": {0: "batch"}},
                  ["last_hidden_state", "pooled"])


def vit_model() -> onnx.ModelProto:
    torch.manual_seed(0)
    return export(ViT(), (torch.zeros(2, 3, 32, 32),), ["pixel_values"],
                  {"pixel_values": {0: "batch"}, "logits": {0: "batch"}}, ["logits"])
