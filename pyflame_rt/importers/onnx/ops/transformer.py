"""The sequence-model operators of opsets 23-27 (Attention, RMSNormalization, RotaryEmbedding,
TensorScatter, CausalConvWithState, LinearAttention) as compositions of graph ops, following their ONNX
definitions, so they run on the MatMul / GEMM, convolution, softmax, reduction and fused
elementwise kernels."""
from __future__ import annotations

import numpy as np
from xdsl.ir import SSAValue

from pyflame_rt.dialects import graph, graph_index as gi, graph_math as gm, graph_nn as nn, graph_reduce as gr
from pyflame_rt.dialects import graph_tensor as gt
from pyflame_rt.dialects.graph import dtype_of
from pyflame_rt.dialects.symbolic import Dim
from pyflame_rt.dtype import DType
from pyflame_rt.importers.onnx.converters import _NodeContext, converter
from pyflame_rt.importers.onnx.ops.composite import _const, _np_dtype, _swish


def _dim_tensor(ctx: _NodeContext, d: Dim, what: str) -> SSAValue:
    """A scalar int64 holding the dim `d` (its value at run time if symbolic)."""
    if isinstance(d, int):
        return _const(ctx, what, np.array(d, np.int64))
    op = gt.DimValuesOp([d], ())
    ctx.importer.builder.insert(op)
    ctx.importer.shapes[op.result] = ()
    return op.result


def _cast(ctx: _NodeContext, x: SSAValue, dtype: DType) -> SSAValue:
    return x if dtype_of(x.type) == dtype else ctx.emit(gm.CastOp, [x], to=dtype.value)[0]


@converter("RMSNormalization")
def _rms_norm(ctx: _NodeContext):
    """x / sqrt(mean(x^2 over the axes from `axis`) + epsilon) * scale; the first stage in the
    `stash_type` precision, never narrower than x (a float64 x stays float64, as in onnx's reference
    and onnxruntime)."""
    x, scale = ctx.input(0), ctx.input(1)
    rank, dtype = len(ctx.shape(x)), dtype_of(x.type)
    axis = gr.normalize_axis(int(ctx.attrs.get("axis", -1)), rank)
    stash = DType.FLOAT64 if dtype is DType.FLOAT64 else DType.from_onnx(int(ctx.attrs.get("stash_type", 1)))
    xs = _cast(ctx, x, stash)
    (sq,) = ctx.emit(graph.MulOp, [xs, xs])
    (ms,) = ctx.emit(gr.ReduceOp, [sq], kind="mean", axes=list(range(axis, rank)), keepdims=True)
    eps = _const(ctx, "epsilon", np.array(np.float32(ctx.attrs.get("epsilon", 1e-5)), stash.numpy))  # a float attribute
    (ms,) = ctx.emit(graph.AddOp, [ms, eps])
    (rms,) = ctx.emit(gm.SqrtOp, [ms])
    (y,) = ctx.emit(graph.DivOp, [xs, rms])
    return ctx.emit(graph.MulOp, [_cast(ctx, y, dtype), scale])


@converter("RotaryEmbedding")
def _rotary_embedding(ctx: _NodeContext):
    """Rotate the first `rotary_embedding_dim` features of each head by the cos / sin of its
    position: halves (x1, x2) or interleaved pairs -> (x1 cos - x2 sin, x1 sin + x2 cos). A 4-D input
    is [batch, heads, seq, head], a 3-D one [batch, seq, heads * head]."""
    x, cos, sin, pos = ctx.input(0), ctx.input(1), ctx.input(2), ctx.input(3)
    shape = ctx.shape(x)
    if len(shape) == 3:
        heads = int(ctx.attrs.get("num_heads", 0))
        if heads <= 0:
            raise ctx.fail("a 3-D input needs num_heads")
        (x,) = ctx.emit(graph.ReshapeOp, [x], shape=[0, 0, heads, -1])
    elif len(shape) != 4:
        raise ctx.fail(f"the input must be 3-D or 4-D, got rank {len(shape)}")
    head = ctx.shape(x)[3]
    rot = int(ctx.attrs.get("rotary_embedding_dim", 0)) or head
    if not isinstance(head, int) or rot % 2 or rot > head:
        raise ctx.fail(f"needs a static head size and an even rotary_embedding_dim <= it, got {rot} of {head}")
    if pos is not None:  # [max position, rot / 2] caches indexed by [batch, seq] positions
        (cos,) = ctx.emit(gt.GatherOp, [cos, pos], axis=0)
        (sin,) = ctx.emit(gt.GatherOp, [sin, pos], axis=0)
    # caches [batch, seq, rot / 2] -> broadcast over the heads axis of x
    heads_axis = 2 if len(shape) == 3 else 1
    interleaved = bool(ctx.attrs.get("interleaved", 0))
    cache_axes = [heads_axis, 4] if interleaved else [heads_axis]
    (cos,) = ctx.emit(nn.UnsqueezeOp, [cos], axes=cache_axes)
    (sin,) = ctx.emit(nn.UnsqueezeOp, [sin], axes=cache_axes)
    (part,) = ctx.emit(nn.SliceOp, [x], starts=[0], ends=[rot], axes=[3], steps=[1]) if rot < head else (x,)
    half = rot // 2
    if interleaved:  # pairs (x[2k], x[2k+1]) along a new last axis
        (part,) = ctx.emit(graph.ReshapeOp, [part], shape=[0, 0, 0, half, 2])
        x1, x2 = (ctx.emit(nn.SliceOp, [part], starts=[k], ends=[k + 1], axes=[4], steps=[1])[0] for k in (0, 1))
    else:
        x1, x2 = (ctx.emit(nn.SliceOp, [part], starts=[k * half], ends=[(k + 1) * half], axes=[3], steps=[1])[0]
                  for k in (0, 1))
    (real,) = ctx.emit(graph.SubOp, [ctx.emit(graph.MulOp, [x1, cos])[0], ctx.emit(graph.MulOp, [x2, sin])[0]])
    (imag,) = ctx.emit(graph.AddOp, [ctx.emit(graph.MulOp, [x1, sin])[0], ctx.emit(graph.MulOp, [x2, cos])[0]])
    (y,) = ctx.emit(nn.ConcatOp, [real, imag], axis=-1)
    if interleaved:
        (y,) = ctx.emit(graph.ReshapeOp, [y], shape=[0, 0, 0, rot])
    if rot < head:
        (rest,) = ctx.emit(nn.SliceOp, [x], starts=[rot], ends=[head], axes=[3], steps=[1])
        (y,) = ctx.emit(nn.ConcatOp, [y, rest], axis=3)
    if len(shape) == 3:
        (y,) = ctx.emit(graph.ReshapeOp, [y], shape=[0, 0, -1])
    return [y]


@converter("TensorScatter")
def _tensor_scatter(ctx: _NodeContext):
    """present[b, ..., m, ...] = update[b, ..., m - w[b], ...] where 0 <= m - w[b] < seq (m - w[b]
    taken modulo max_seq in circular mode), else past[b, ..., m, ...]; w = write_indices (default 0)."""
    past, update, write = ctx.input(0), ctx.input(1), ctx.input(2)
    shape = ctx.shape(past)
    rank = len(shape)
    axis = gr.normalize_axis(int(ctx.attrs.get("axis", -2)), rank)
    if axis == 0:
        raise ctx.fail("axis must not be the batch axis 0")
    mode = ctx.attrs.get("mode", b"linear")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    if mode not in ("linear", "circular"):
        raise ctx.fail(f"unknown mode '{mode}'")
    along = [-1 if d == axis else 1 for d in range(rank)]
    (m,) = ctx.emit(gt.RangeOp, [], size=shape[axis], dtype="int64")
    (m,) = ctx.emit(graph.ReshapeOp, [m], shape=along)
    if write is not None:
        (w,) = ctx.emit(graph.ReshapeOp, [_cast(ctx, write, DType.INT64)], shape=[-1] + [1] * (rank - 1))
        (m,) = ctx.emit(graph.SubOp, [m, w])
    if mode == "circular":
        (m,) = ctx.emit(gm.ModOp, [m, _dim_tensor(ctx, shape[axis], "max_seq")])
    seq = _dim_tensor(ctx, ctx.shape(update)[axis], "seq")
    (inside,) = ctx.emit(gm.LessOp, [m, seq])
    if mode == "linear":
        (nonneg,) = ctx.emit(gm.GreaterOrEqualOp, [m, _const(ctx, "zero", np.array(0, np.int64))])
        (inside,) = ctx.emit(gm.AndOp, [inside, nonneg])
    (idx,) = ctx.emit(gm.WhereOp, [inside, m, _const(ctx, "first", np.array(0, np.int64))])
    (idx,) = ctx.emit(gt.ExpandOp, [idx], shape=list(shape))
    (taken,) = ctx.emit(gi.GatherElementsOp, [update, idx], axis=axis)
    return ctx.emit(gm.WhereOp, [inside, taken, past])


# what Attention's optional 4th output holds, by qk_matmul_output_mode
_QK_OUTPUTS = ("scaled QK", "softcapped", "biased", "softmax")


@converter("Attention")
def _attention(ctx: _NodeContext):
    """softmax(softcap(scale * Q K^T) + bias) V per head, with the past keys / values prepended
    (present = past ++ new), K / V heads repeated for grouped-query attention, and a bias from
    attn_mask, is_causal, the sliding window and nonpad_kv_seqlen; rows with no visible key give
    zeros. 3-D inputs are [batch, seq, heads * head]."""
    q, k, v, mask, past_k, past_v, nonpad = (ctx.input(i) for i in range(7))
    rank = len(ctx.shape(q))
    if rank == 3:
        q_heads, kv_heads = int(ctx.attrs.get("q_num_heads", 0)), int(ctx.attrs.get("kv_num_heads", 0))
        if q_heads <= 0 or kv_heads <= 0:
            raise ctx.fail("3-D inputs need q_num_heads and kv_num_heads")
        q, k, v = _split_heads(ctx, q, q_heads), _split_heads(ctx, k, kv_heads), _split_heads(ctx, v, kv_heads)
    elif rank != 4:
        raise ctx.fail(f"Q must be 3-D or 4-D, got rank {rank}")
    if (past_k is None) != (past_v is None):
        raise ctx.fail("past_key and past_value must be given together")
    if past_k is not None:
        total = _total_length(ctx, mask, ctx.shape(past_k)[2], ctx.shape(k)[2])
        (k,) = ctx.emit(nn.ConcatOp, [past_k, k], axis=2, total=total)
        (v,) = ctx.emit(nn.ConcatOp, [past_v, v], axis=2, total=total)
    present_k, present_v = k, v
    q_heads, kv_heads, head = ctx.shape(q)[1], ctx.shape(k)[1], ctx.shape(q)[3]
    if not all(isinstance(d, int) for d in (q_heads, kv_heads, head)) or q_heads % kv_heads:
        raise ctx.fail(f"needs static head counts, Q's a multiple of K's, and a static head size "
                       f"(got {q_heads}, {kv_heads}, {head})")
    if q_heads != kv_heads:
        k, v = (_repeat_heads(ctx, t, q_heads // kv_heads) for t in (k, v))
    dt = _np_dtype(q)
    scale = float(ctx.attrs.get("scale", 1 / np.sqrt(head)))
    # Q and K are each scaled by sqrt(scale) before the product, as the operator defines (no overflow)
    root = _const(ctx, "sqrt_scale", np.array(np.sqrt(scale), dt))
    (q,) = ctx.emit(graph.MulOp, [q, root])
    (kt,) = ctx.emit(nn.TransposeOp, [k], perm=[0, 1, 3, 2])
    (kt,) = ctx.emit(graph.MulOp, [kt, root])
    (qk,) = ctx.emit(graph.MatMulOp, [q, kt])
    stages = [qk]
    softcap = float(ctx.attrs.get("softcap", 0.0))
    if softcap > 0:
        (qk,) = ctx.emit(graph.MulOp, [qk, _const(ctx, "inv_softcap", np.array(1 / softcap, dt))])
        (qk,) = ctx.emit(gm.TanhOp, [qk])
        (qk,) = ctx.emit(graph.MulOp, [qk, _const(ctx, "softcap", np.array(softcap, dt))])
    stages.append(qk)
    s_len, t_len = ctx.shape(q)[2], ctx.shape(k)[2]
    offset = _causal_offset(ctx, s_len, past_k, nonpad)
    bias = _attention_bias(ctx, dt, s_len, t_len, offset, mask, nonpad)
    if bias is not None:
        (qk,) = ctx.emit(graph.AddOp, [qk, bias])
    stages.append(qk)
    precision = DType.from_onnx(int(ctx.attrs["softmax_precision"])) if "softmax_precision" in ctx.attrs else None
    (probs,) = ctx.emit(gr.SoftmaxOp, [_cast(ctx, qk, precision or dtype_of(q.type))], axis=-1)
    probs = _cast(ctx, probs, dtype_of(q.type))
    if bias is not None:  # a row whose bias is all -inf has no visible key: zeros, not NaN
        (row_max,) = ctx.emit(gr.ReduceOp, [bias], kind="max", axes=[-1], keepdims=True)
        (hidden,) = ctx.emit(gm.EqualOp, [row_max, _const(ctx, "neg_inf", np.array(-np.inf, dt))])
        (probs,) = ctx.emit(gm.WhereOp, [hidden, _const(ctx, "zero", np.array(0, dt)), probs])
    stages.append(probs)
    (y,) = ctx.emit(graph.MatMulOp, [probs, v])
    if rank == 3:
        (y,) = ctx.emit(nn.TransposeOp, [y], perm=[0, 2, 1, 3])
        (y,) = ctx.emit(graph.ReshapeOp, [y], shape=[0, 0, -1])
    mode = int(ctx.attrs.get("qk_matmul_output_mode", 0))
    if not 0 <= mode < len(_QK_OUTPUTS):
        raise ctx.fail(f"qk_matmul_output_mode must be 0-{len(_QK_OUTPUTS) - 1}, got {mode}")
    return [y, present_k, present_v, stages[mode]]


def _total_length(ctx: _NodeContext, mask: SSAValue | None, past: Dim, new: Dim) -> Dim | None:
    """The past + new key count where it is not one dim: attn_mask's last dim, which the operator
    requires to be that total (checked at run time, before any kernel runs); None where the dims
    add up at compile time."""
    if isinstance(past, int) and isinstance(new, int) or past == 0 or new == 0:
        return None
    if mask is None or ctx.shape(mask)[-1] == 1:
        raise ctx.fail("a dynamic past or new key length needs an attn_mask whose last dim is the total length")
    return ctx.shape(mask)[-1]


def _split_heads(ctx: _NodeContext, x: SSAValue, heads: int) -> SSAValue:
    """[batch, seq, heads * head] -> [batch, heads, seq, head]."""
    (x,) = ctx.emit(graph.ReshapeOp, [x], shape=[0, 0, heads, -1])
    return ctx.emit(nn.TransposeOp, [x], perm=[0, 2, 1, 3])[0]


def _repeat_heads(ctx: _NodeContext, x: SSAValue, times: int) -> SSAValue:
    """[batch, heads, seq, head] -> [batch, heads * times, seq, head], each head `times` in a row."""
    _, heads, _, head = ctx.shape(x)
    (x,) = ctx.emit(nn.UnsqueezeOp, [x], axes=[2])
    (x,) = ctx.emit(gt.ExpandOp, [x], shape=[1, 1, times, 1, 1])
    return ctx.emit(graph.ReshapeOp, [x], shape=[0, heads * times, -1, head])[0]


def _causal_offset(ctx: _NodeContext, s_len: Dim, past_k: SSAValue | None, nonpad: SSAValue | None):
    """How many keys precede the query block: the past length, nonpad_kv_seqlen - seq per batch
    ([batch, 1, 1, 1]) for an external cache, else 0."""
    if past_k is not None:
        return _dim_tensor(ctx, ctx.shape(past_k)[2], "past_len")
    if nonpad is not None:
        (n,) = ctx.emit(graph.ReshapeOp, [_cast(ctx, nonpad, DType.INT64)], shape=[-1, 1, 1, 1])
        return ctx.emit(graph.SubOp, [n, _dim_tensor(ctx, s_len, "q_len")])[0]
    return _const(ctx, "offset", np.array(0, np.int64))


def _attention_bias(ctx: _NodeContext, dt: np.dtype, s_len: Dim, t_len: Dim, offset: SSAValue,
                    mask: SSAValue | None, nonpad: SSAValue | None) -> SSAValue | None:
    """The additive bias, broadcastable to [batch, heads, seq, total]: 0 where every boolean
    constraint (a bool attn_mask, is_causal, the window, nonpad_kv_seqlen) lets a query see a key,
    -inf elsewhere, plus a float attn_mask; None without any."""
    allowed, added = None, None
    if mask is not None:
        mask = _pad_mask(ctx, mask, t_len)
        if dtype_of(mask.type) == DType.BOOL:
            allowed = mask
        else:
            added = mask
    keys = _positions(ctx, t_len, [1, -1])
    # key j is visible to the query at absolute position p = i + offset iff
    # j <= p (causal), p - left <= j, j <= p + right
    bounds = []
    left, right = int(ctx.attrs.get("left_window_size", -1)), int(ctx.attrs.get("right_window_size", -1))
    if ctx.attrs.get("is_causal", 0) or left >= 0 or right >= 0:
        (p,) = ctx.emit(graph.AddOp, [_positions(ctx, s_len, [-1, 1]), offset])
        if ctx.attrs.get("is_causal", 0):
            bounds.append(ctx.emit(gm.LessOrEqualOp, [keys, p])[0])
        if left >= 0:
            (lo,) = ctx.emit(graph.SubOp, [p, _const(ctx, "left", np.array(left, np.int64))])
            bounds.append(ctx.emit(gm.GreaterOrEqualOp, [keys, lo])[0])
        if right >= 0:
            (hi,) = ctx.emit(graph.AddOp, [p, _const(ctx, "right", np.array(right, np.int64))])
            bounds.append(ctx.emit(gm.LessOrEqualOp, [keys, hi])[0])
    if nonpad is not None:
        (n,) = ctx.emit(graph.ReshapeOp, [_cast(ctx, nonpad, DType.INT64)], shape=[-1, 1, 1, 1])
        bounds.append(ctx.emit(gm.LessOp, [keys, n])[0])
    for b in bounds:
        allowed = b if allowed is None else ctx.emit(gm.AndOp, [allowed, b])[0]
    if allowed is None:
        return added
    (bias,) = ctx.emit(gm.WhereOp, [allowed, _const(ctx, "visible", np.array(0, dt)),
                                    _const(ctx, "hidden", np.array(-np.inf, dt))])
    return bias if added is None else ctx.emit(graph.AddOp, [bias, added])[0]


def _positions(ctx: _NodeContext, n: Dim, shape: list[int]) -> SSAValue:
    """0, 1, ... n - 1 as int64 of `shape` (one -1)."""
    (r,) = ctx.emit(gt.RangeOp, [], size=n, dtype="int64")
    return ctx.emit(graph.ReshapeOp, [r], shape=shape)[0]


def _pad_mask(ctx: _NodeContext, mask: SSAValue, t_len: Dim) -> SSAValue:
    """A mask shorter than the total key length is padded with False / -inf at the end."""
    shape = ctx.shape(mask)
    if shape[-1] == t_len or shape[-1] == 1:
        return mask
    if not (isinstance(shape[-1], int) and isinstance(t_len, int)) or shape[-1] > t_len:
        raise ctx.fail(f"attn_mask's last dim {shape[-1]} must equal or (statically) be below the total "
                       f"key length {t_len}")
    fill = 0.0 if dtype_of(mask.type) == DType.BOOL else float("-inf")
    pads = [0] * len(shape) * 2
    pads[-1] = t_len - shape[-1]
    return ctx.emit(nn.PadOp, [mask], pads=pads, value=fill)[0]


@converter("CausalConvWithState")
def _causal_conv_with_state(ctx: _NodeContext):
    """A depthwise 1-D convolution over [past_state (zeros if absent) ++ input] along the length,
    plus the bias, then SiLU if asked; present_state is the last k - 1 positions of that sequence."""
    x, w, bias, past = (ctx.input(i) for i in range(4))
    shape, w_shape = ctx.shape(x), ctx.shape(w)
    if len(shape) != 3 or len(w_shape) != 3 or not isinstance(w_shape[2], int):
        raise ctx.fail("needs a [batch, channels, length] input and a [channels, 1, k] weight of static k")
    activation = ctx.attrs.get("activation", b"none")
    activation = activation.decode() if isinstance(activation, bytes) else activation
    if activation not in ("none", "silu", "swish"):
        raise ctx.fail(f"unknown activation '{activation}'")
    k = w_shape[2]
    if past is None:
        (seq,) = ctx.emit(nn.PadOp, [x], pads=[0, 0, k - 1, 0, 0, 0])
    else:
        (seq,) = ctx.emit(nn.ConcatOp, [past, x], axis=2)
    (y,) = ctx.emit(nn.ConvOp, [seq, w, bias], strides=[1], dilations=[1], pads=[0, 0], group=shape[1])
    if activation != "none":
        (y,) = _swish(ctx, y)
    n = ctx.shape(seq)[2]
    if not isinstance(n, int):
        raise ctx.fail("needs a static length")
    (state,) = ctx.emit(nn.SliceOp, [seq], starts=[n - (k - 1)], ends=[n], axes=[2], steps=[1])
    return [y, state]


_LINEAR_ATTENTION_RULES = ("linear", "gated", "delta", "gated_delta")


@converter("LinearAttention")
def _linear_attention(ctx: _NodeContext):
    """The recurrence unrolled over the (static) tokens: per KV head a [d_k, d_v] state S,
    S = decay * S + k (x) (beta * (v - (decay * S)^T k)) (delta rules) or + k (x) v, o = scale * q^T S;
    the query heads of a group share their KV head's state."""
    q, k, v, past, decay, beta = (ctx.input(i) for i in range(6))
    rule = ctx.attrs.get("update_rule", b"gated_delta")
    rule = rule.decode() if isinstance(rule, bytes) else rule
    q_heads, kv_heads = int(ctx.attrs.get("q_num_heads", 0)), int(ctx.attrs.get("kv_num_heads", 0))
    if rule not in _LINEAR_ATTENTION_RULES:
        raise ctx.fail(f"unknown update_rule '{rule}'")
    if kv_heads <= 0 or q_heads <= 0 or q_heads % kv_heads:
        raise ctx.fail(f"q_num_heads ({q_heads}) must be a positive multiple of kv_num_heads ({kv_heads})")
    if (decay is None) == (rule in ("gated", "gated_delta")) or (beta is None) == (rule in ("delta", "gated_delta")):
        raise ctx.fail(f"update_rule '{rule}' takes {'decay' if 'gated' in rule else 'no decay'} and "
                       f"{'beta' if 'delta' in rule else 'no beta'}")
    steps, qk_width, v_width = ctx.shape(q)[1], ctx.shape(q)[2], ctx.shape(v)[2]
    if not all(isinstance(d, int) for d in (steps, qk_width, v_width)) or qk_width % q_heads or v_width % kv_heads:
        raise ctx.fail("needs static token counts and head-divisible hidden sizes")
    d_k, d_v, group = qk_width // q_heads, v_width // kv_heads, q_heads // kv_heads
    out_dtype = dtype_of(q.type)
    state_dtype = dtype_of(past.type) if past is not None else out_dtype
    # float16 / bfloat16 accumulate in float32, as the operator's reference does
    wide = DType.FLOAT32 if out_dtype in (DType.FLOAT16, DType.BFLOAT16) else out_dtype
    q, k, v, past, decay, beta = (None if x is None else _cast(ctx, x, wide) for x in (q, k, v, past, decay, beta))
    dt = wide.numpy
    scale = float(ctx.attrs.get("scale", 0.0)) or 1 / np.sqrt(d_k)
    state = past if past is not None else _const(ctx, "zero_state", np.zeros((1, kv_heads, d_k, d_v), dt))
    outputs = []
    for t in range(steps):
        def token(x, shape):
            (x,) = ctx.emit(nn.SliceOp, [x], starts=[t], ends=[t + 1], axes=[1], steps=[1])
            return ctx.emit(graph.ReshapeOp, [x], shape=shape)[0]

        k_col, v_row = token(k, [0, kv_heads, d_k, 1]), token(v, [0, kv_heads, 1, d_v])
        if decay is not None:  # per key dim [.., d_k, 1] or per head [.., 1, 1]
            (gate,) = ctx.emit(gm.ExpOp, [token(decay, [0, kv_heads, -1, 1])])
            (state,) = ctx.emit(graph.MulOp, [gate, state])
        if beta is not None:
            (recalled,) = ctx.emit(graph.MatMulOp, [token(k, [0, kv_heads, 1, d_k]), state])
            (v_row,) = ctx.emit(graph.SubOp, [v_row, recalled])
            (v_row,) = ctx.emit(graph.MulOp, [token(beta, [0, -1, 1, 1]), v_row])
        (update,) = ctx.emit(graph.MulOp, [k_col, v_row])
        (state,) = ctx.emit(graph.AddOp, [state, update])
        (o,) = ctx.emit(graph.MatMulOp, [token(q, [0, kv_heads, group, d_k]), state])
        (o,) = ctx.emit(graph.MulOp, [o, _const(ctx, "scale", np.array(scale, dt))])
        outputs.append(ctx.emit(graph.ReshapeOp, [o], shape=[0, 1, -1])[0])
    (y,) = ctx.emit(nn.ConcatOp, outputs, axis=1) if len(outputs) > 1 else outputs
    return [_cast(ctx, y, out_dtype), _cast(ctx, state, state_dtype)]
