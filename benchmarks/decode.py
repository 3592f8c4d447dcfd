"""Greedy decoding of a GPT-2-small-shaped decoder with past key / values, measured (BENCHMARKS.md,
"Issue 23: streaming decode").

The decoder is benchmarks/models.py's DecoderWithPast (random weights, seeded) exported from torch
with dynamic batch, sequence and past. In one process and in alternating rounds, PyFlameRT's
`StreamingInference.generate` and onnxruntime running the same model step by step (the presents
of a step fed back as the next step's pasts) decode the same prompt; prints each round's tokens per
second, the medians and their ratio, and checks that both emit torch's greedy tokens.

    python benchmarks/decode.py --layers 12 --hidden 768 --heads 12 --vocab 50257 --prompt 32 --new 64
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import pyflame_rt  # noqa: E402
from pyflame_rt.streaming import StreamingInference  # noqa: E402


def ort_greedy(sess, prompt: np.ndarray, new: int, layers: int, heads: int, head_dim: int) -> np.ndarray:
    """onnxruntime decoding step by step: the presents of a run are the next run's pasts."""
    batch, seq = prompt.shape
    past = {f"past_key_values.{j}.{t}": np.zeros((batch, heads, 0, head_dim), np.float32)
            for j in range(layers) for t in ("key", "value")}
    ids, tokens = prompt, [prompt]
    for n in range(new):
        total = seq + n if n else seq
        positions = np.arange(total - ids.shape[1], total)[None].repeat(batch, 0)
        outs = sess.run(None, {"input_ids": ids, "attention_mask": np.ones((batch, total), np.int64),
                               "position_ids": positions, **past})
        ids = outs[0][:, -1].argmax(-1)[:, None].astype(np.int64)
        tokens.append(ids)
        past = dict(zip(past, outs[1:]))
    return np.concatenate(tokens, 1)


def torch_greedy(prompt: np.ndarray, new: int, seed: int, **config) -> np.ndarray:
    """torch's greedy decode of the exported module (the same seed: the same weights), its own cache."""
    import torch

    import models

    torch.manual_seed(seed)
    model = models.DecoderWithPast(**config).eval()
    batch, seq = prompt.shape
    head_dim = model.tok.embedding_dim // model.heads
    past = [torch.zeros(batch, model.heads, 0, head_dim)] * (2 * len(model.blocks))
    ids, tokens = torch.tensor(prompt), [prompt]
    with torch.no_grad():
        for n in range(new):
            total = seq + n if n else seq
            positions = torch.arange(total - ids.shape[1], total).repeat(batch, 1)
            logits, *past = model(ids, torch.ones(batch, total, dtype=torch.long), positions, *past)
            ids = logits[:, -1].argmax(-1, keepdim=True)
            tokens.append(ids.numpy())
    return np.concatenate(tokens, 1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--layers", type=int, default=12)
    p.add_argument("--hidden", type=int, default=768)
    p.add_argument("--heads", type=int, default=12)
    p.add_argument("--vocab", type=int, default=50257)
    p.add_argument("--prompt", type=int, default=32, help="prompt tokens")
    p.add_argument("--new", type=int, default=64, help="tokens generated per round")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=0, help="threads of both runtimes (0: one per core)")
    args = p.parse_args()

    import onnxruntime as ort

    import models

    config = dict(layers=args.layers, d=args.hidden, heads=args.heads, vocab=args.vocab)
    path = os.path.join(tempfile.mkdtemp(), "decoder_with_past.onnx")
    models.export_decoder_with_past(path, seed=0, **config)
    opts = pyflame_rt.SessionOptions()
    opts.intra_op_num_threads = args.threads
    start = time.perf_counter()
    session = pyflame_rt.InferenceSession(path, opts)
    print(f"PyFlameRT session ready in {time.perf_counter() - start:.1f} s (compile or compile-cache hit)")
    ort_opts = ort.SessionOptions()
    ort_opts.intra_op_num_threads = args.threads
    ort_sess = ort.InferenceSession(path, ort_opts, providers=["CPUExecutionProvider"])
    prompt = np.random.default_rng(0).integers(0, args.vocab, (1, args.prompt))
    decoder = StreamingInference(session)
    head_dim = args.hidden // args.heads

    want = torch_greedy(prompt, args.new, 0, **config)
    ours_tps, ort_tps = [], []
    for r in range(args.rounds):
        t = time.perf_counter()
        ours = decoder.generate(prompt, args.new)
        ours_tps.append(args.new / (time.perf_counter() - t))
        t = time.perf_counter()
        theirs = ort_greedy(ort_sess, prompt, args.new, args.layers, args.heads, head_dim)
        ort_tps.append(args.new / (time.perf_counter() - t))
        print(f"round {r}: PyFlameRT {ours_tps[-1]:.1f} tok/s, onnxruntime {ort_tps[-1]:.1f} tok/s, torch's "
              f"greedy tokens: PyFlameRT {bool((ours == want).all())}, onnxruntime {bool((theirs == want).all())}")
    a, b = statistics.median(ours_tps), statistics.median(ort_tps)
    print(f"median tokens/s: PyFlameRT {a:.1f}, onnxruntime {b:.1f}, ratio {a / b:.2f} "
          f"({args.layers} layers, hidden {args.hidden}, vocab {args.vocab}, prompt {args.prompt}, {args.new} new)")


if __name__ == "__main__":
    main()
