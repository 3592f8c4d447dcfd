"""Reference semantics of the recurrent layers (see dialects/graph_recurrent.py), step by step in float64."""
from __future__ import annotations

import numpy as np

from pyflame_rt.dialects import graph_recurrent as gr
from pyflame_rt.dialects.reference.evaluator import reference

# a cell's functions: (x, alpha, beta) -> y
_FUNCTIONS = {
    "relu": lambda x, a, b: np.maximum(x, 0),
    "tanh": lambda x, a, b: np.tanh(x),
    "sigmoid": lambda x, a, b: 1 / (1 + np.exp(-x)),
    "affine": lambda x, a, b: a * x + b,
    "leaky_relu": lambda x, a, b: np.where(x >= 0, x, a * x),
    "thresholded_relu": lambda x, a, b: np.where(x > a, x, 0),
    "scaled_tanh": lambda x, a, b: a * np.tanh(b * x),
    "hard_sigmoid": lambda x, a, b: np.clip(a * x + b, 0, 1),
    "elu": lambda x, a, b: np.where(x >= 0, x, a * (np.exp(x) - 1)),
    "softsign": lambda x, a, b: x / (1 + np.abs(x)),
    "softplus": lambda x, a, b: np.logaddexp(0, x),
}


def _step(op, d, gates_x, h, c, r, rb, p, fns):
    """One step of direction d: the new (h, c) from the projected input gates_x (with W's bias)."""
    hid = op.hidden
    if isinstance(op, gr.GRUOp):
        rec = h @ r[:2 * hid].T + rb[:2 * hid]
        z, reset = fns[0](gates_x[:hid] + rec[:hid]), fns[0](gates_x[hid:2 * hid] + rec[hid:])
        r_h, rb_h = r[2 * hid:], rb[2 * hid:]
        rec_h = reset * (h @ r_h.T + rb_h) if op.lbr else (reset * h) @ r_h.T + rb_h
        candidate = fns[1](gates_x[2 * hid:] + rec_h)
        return (1 - z) * candidate + z * h, c
    g = gates_x + h @ r.T + rb
    if isinstance(op, gr.RNNOp):
        return fns[0](g), c
    i = fns[0](g[:hid] + p[:hid] * c)
    f = 1 - i if op.coupled else fns[0](g[2 * hid:3 * hid] + p[2 * hid:] * c)
    c = f * c + i * fns[1](g[3 * hid:])
    o = fns[0](g[hid:2 * hid] + p[hid:2 * hid] * c)
    return o * fns[2](c), c


def _functions(op, d):
    """Direction d's functions, `clip` bounding their input (but the LSTM's cell state's, as in
    onnxruntime)."""
    clip = op.clip_value
    bounds = [(lambda x: np.clip(x, -clip, clip)) if clip is not None else (lambda x: x)] * 2 + [lambda x: x]
    return [lambda x, n=n, a=a, b=b, bound=bound: _FUNCTIONS[n](bound(x), a, b)
            for (n, a, b), bound in zip(op.direction_activations(d), bounds)]


@reference(gr.RNNOp, gr.GRUOp, gr.LSTMOp)
def _recurrent(op, x):
    v = {name: x[k] for k, name in enumerate(n for n in ("x", "w", "r", "b", "sequence_lens", "initial_h",
                                                           "initial_c", "p") if getattr(op, n) is not None)}
    seq_first = (1, 0, 2) if op.is_batch_first else (0, 1, 2)
    xs = v["x"].astype(np.float64).transpose(seq_first)
    steps, batch, _ = xs.shape
    dirs, hid, gh = op.num_directions, op.hidden, op.GATES * op.hidden
    bias = v.get("b", np.zeros((dirs, 2 * gh)))
    lens = v.get("sequence_lens", np.full(batch, steps))
    h0, c0 = (v[n].transpose(seq_first) if n in v else np.zeros((dirs, batch, hid)) for n in ("initial_h", "initial_c"))
    p = v.get("p", np.zeros((dirs, 3 * hid)))
    y, y_h, y_c = np.zeros((steps, dirs, batch, hid)), np.zeros((dirs, batch, hid)), np.zeros((dirs, batch, hid))
    for d in range(dirs):
        fns = _functions(op, d)
        reverse = op.direction.data == gr.Direction.REVERSE or d == 1
        for b in range(batch):
            n = int(lens[b])
            # an entry of length 0 ends in zero states (onnxruntime's)
            h, c = (h0[d, b].astype(np.float64), c0[d, b].astype(np.float64)) if n else (np.zeros(hid),) * 2
            for t in (range(n - 1, -1, -1) if reverse else range(n)):
                h, c = _step(op, d, xs[t, b] @ v["w"][d].T + bias[d, :gh], h, c, v["r"][d], bias[d, gh:], p[d], fns)
                y[t, d, b] = h
            y_h[d, b], y_c[d, b] = h, c
    if op.is_batch_first:
        y, y_h, y_c = y.transpose(2, 0, 1, 3), y_h.transpose(seq_first), y_c.transpose(seq_first)
    return [y, y_h, y_c][:len(op.results)]
