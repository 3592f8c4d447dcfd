"""RNN, GRU, LSTM: ONNX's attributes resolved into the recurrent ops' (dialects/graph_recurrent.py)."""
from __future__ import annotations

from xdsl.dialects.builtin import BoolAttr

from pyflame_rt.dialects import graph_recurrent as gr
from pyflame_rt.importers.onnx.converters import _NodeContext, converter

# ONNX's activation names (case-insensitive) -> the ops' names
_NAMES = {"relu": "relu", "tanh": "tanh", "sigmoid": "sigmoid", "affine": "affine", "leakyrelu": "leaky_relu",
          "thresholdedrelu": "thresholded_relu", "scaledtanh": "scaled_tanh", "hardsigmoid": "hard_sigmoid",
          "elu": "elu", "softsign": "softsign", "softplus": "softplus"}
# alpha and beta of the activations that take them, where activation_alpha / _beta run out
# (onnxruntime's; 0 for the others: Affine, ScaledTanh)
_DEFAULT_PARAMS = {"leaky_relu": (0.01, 0.0), "thresholded_relu": (1.0, 0.0), "hard_sigmoid": (0.2, 0.5),
                   "elu": (1.0, 0.0)}
_DEFAULT_ACTIVATIONS = {gr.RNNOp: ["tanh"], gr.GRUOp: ["sigmoid", "tanh"], gr.LSTMOp: ["sigmoid", "tanh", "tanh"]}
_OPS = {"RNN": gr.RNNOp, "GRU": gr.GRUOp, "LSTM": gr.LSTMOp}


def _text(v) -> str:
    return v.decode() if isinstance(v, bytes) else v


def _activations(ctx: _NodeContext, op_cls, directions: int) -> tuple[list[str], list[float], list[float]]:
    """The activations of every direction with their alpha and beta: each one that takes a parameter
    consumes the next of activation_alpha (activation_beta), else its default."""
    given = [_text(a) for a in ctx.attrs.get("activations", [])]
    names = []
    for a in given or _DEFAULT_ACTIVATIONS[op_cls]:
        if a.lower() not in _NAMES:
            raise ctx.fail(f"unknown activation '{a}'")
        names.append(_NAMES[a.lower()])
    if len(names) == op_cls.ACTIVATIONS and directions == 2:
        names = names * 2
    alphas, betas = iter(ctx.attrs.get("activation_alpha", [])), iter(ctx.attrs.get("activation_beta", []))
    resolved_a, resolved_b = [], []
    for name in names:
        arity = gr.ACTIVATION_ARITY[name]
        default_a, default_b = _DEFAULT_PARAMS.get(name, (0.0, 0.0))
        resolved_a.append(next(alphas, default_a) if arity >= 1 else 0.0)
        resolved_b.append(next(betas, default_b) if arity >= 2 else 0.0)
    return names, resolved_a, resolved_b


@converter("RNN", "GRU", "LSTM")
def _recurrent(ctx: _NodeContext):
    op_cls = _OPS[ctx.node.op_type]
    direction = _text(ctx.attrs.get("direction", "forward"))
    directions = 2 if direction == "bidirectional" else 1
    hidden = ctx.attrs.get("hidden_size")
    if hidden is None:  # optional in ONNX: R is [dirs, gates * hidden, hidden]
        hidden = ctx.shape(ctx.input(2))[-1]
    names, alphas, betas = _activations(ctx, op_cls, directions)
    props = dict(hidden_size=int(hidden), direction=direction, activations=names, alphas=alphas, betas=betas,
                 clip=ctx.attrs.get("clip"), batch_first=bool(ctx.attrs.get("layout", 0)))
    if op_cls is gr.GRUOp:
        props["linear_before_reset"] = BoolAttr.from_bool(bool(ctx.attrs.get("linear_before_reset", 0)))
    if op_cls is gr.LSTMOp:
        props["input_forget"] = BoolAttr.from_bool(bool(ctx.attrs.get("input_forget", 0)))
    n_inputs = 8 if op_cls is gr.LSTMOp else 6
    return ctx.emit(op_cls, [ctx.input(i) for i in range(n_inputs)], **props)
