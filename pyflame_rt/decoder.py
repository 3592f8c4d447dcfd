"""`StreamingInference`: token-by-token decoding of a decoder-with-past model, its key / value cache
kept in preallocated buffers across steps.

A decoder-with-past model (e.g. HF GPT-2's ONNX export) takes `input_ids` [batch, seq], optionally
`attention_mask` [batch, past + seq] and `position_ids` [batch, seq], and one past tensor per layer
and key / value ([batch, heads, past, head_dim]); it returns the logits [batch, seq, vocab] and the
present tensors: the past with the new positions appended along the past's dynamic axis.

Pairing (`DecoderSignature`): the input named `past_key_values<rest>` pairs with the output
`present<rest>` (HF: `past_key_values.0.key` -> `present.0.key`), any other input named `past<rest>`
with `present<rest>`; the pair's shapes are equal but on one axis, dynamic in the past (its length,
the same symbol for every pair). The logits are the output named `logits`, else the only other one.

The cache (`KVCache`): per pair two buffers of room for `capacity` positions. A step's past inputs
are views of one, its present outputs are bound to the other (`InferenceSession.run_with_outputs`),
so the runtime writes the grown cache where the next step reads it: no copy through Python. The
model's own Concat(past, new) still copies the past into the present inside native code each step.
"""
from __future__ import annotations

from dataclasses import dataclass
from math import prod
from typing import Callable

import numpy as np

from pyflame_rt.dtype import DType
from pyflame_rt.errors import InputError, ValidationError
from pyflame_rt.sampling import Sampler

StepCallback = Callable[[np.ndarray], None]
TokenCallback = Callable[[np.ndarray], None]


@dataclass(frozen=True)
class CachePair:
    past: str        # input name
    present: str     # output name
    shape: tuple     # the past's shape: ints, BATCH at the batch axis, LENGTH at `axis`
    axis: int        # the axis the present grows along
    dtype: np.dtype


BATCH, LENGTH = "batch", "length"


@dataclass(frozen=True)
class DecoderSignature:
    """Which inputs and outputs of a session play which part in decoding."""

    pairs: tuple[CachePair, ...]
    logits: str
    output_names: tuple[str, ...]
    attention_mask: bool
    position_ids: bool

    @staticmethod
    def of(session) -> "DecoderSignature":
        inputs = {i.name: i for i in session.get_inputs()}
        outputs = {o.name: o for o in session.get_outputs()}
        if "input_ids" not in inputs:
            raise _not_a_decoder(f"it has no input_ids input (its inputs: {list(inputs)})")
        batch = inputs["input_ids"].shape[0] if len(inputs["input_ids"].shape) == 2 else None
        if not isinstance(batch, str) or len(inputs["input_ids"].shape) != 2:
            raise _not_a_decoder(f"input_ids must be [batch, seq] with a dynamic batch, "
                                 f"got {inputs['input_ids'].shape}")
        pasts = [name for name in inputs if name.startswith("past")]
        if not pasts:
            raise _not_a_decoder(f"it has no past key / value inputs (named past...; its inputs: {list(inputs)})")
        extra = set(inputs) - {"input_ids", "attention_mask", "position_ids", *pasts}
        if extra:
            raise _not_a_decoder(f"inputs {sorted(extra)} are none of input_ids, attention_mask, position_ids, "
                                 f"past...")
        pairs = tuple(_pair(inputs[name], outputs, batch) for name in pasts)
        lengths = {inputs[p.past].shape[p.axis] for p in pairs}
        if len(lengths) != 1:
            raise _not_a_decoder(f"the past inputs' lengths are different dims {sorted(lengths)}")
        others = [name for name in outputs if name not in {p.present for p in pairs}]
        logits = "logits" if "logits" in others else others[0] if len(others) == 1 else None
        if logits is None or len(outputs[logits].shape) != 3:
            raise _not_a_decoder(f"no logits output [batch, seq, vocab] among {others}")
        return DecoderSignature(pairs, logits, tuple(outputs), "attention_mask" in inputs, "position_ids" in inputs)


def _pair(past, outputs: dict, batch: str) -> CachePair:
    rest = past.name.removeprefix("past_key_values") if past.name.startswith("past_key_values") else \
        past.name.removeprefix("past")
    present = outputs.get("present" + rest)
    if present is None:
        raise _not_a_decoder(f"input '{past.name}' has no output 'present{rest}' to pair with")
    differ = [k for k, (a, b) in enumerate(zip(past.shape, present.shape)) if a != b]
    if len(past.shape) != len(present.shape) or len(differ) != 1 or not isinstance(past.shape[differ[0]], str):
        raise _not_a_decoder(f"'{present.name}' {present.shape} must be '{past.name}' {past.shape} grown along "
                             f"one dynamic axis")
    axis = differ[0]
    shape = []
    for k, d in enumerate(past.shape):
        if k != axis and isinstance(d, str) and d != batch:
            raise _not_a_decoder(f"'{past.name}' {past.shape}: dim {k} is dynamic but neither the batch ({batch}) "
                                 f"nor the past length")
        shape.append(LENGTH if k == axis else BATCH if d == batch else d)
    if past.type != present.type:
        raise _not_a_decoder(f"'{past.name}' is {past.type} but '{present.name}' is {present.type}")
    return CachePair(past.name, present.name, tuple(shape), axis, _numpy_type(past.type))


def _numpy_type(ort_type: str) -> np.dtype:
    return next(d.numpy for d in DType if d.ort_type == ort_type)


def _not_a_decoder(why: str) -> ValidationError:
    return ValidationError(f"the model is not a decoder with past key / values: {why}")


class KVCache:
    """Two buffers per pair, each with room for `capacity` positions; `length` positions are held
    (in `front`). Growing past the capacity reallocates once, doubling it."""

    def __init__(self, pairs: tuple[CachePair, ...], batch: int, capacity: int):
        self.pairs, self.batch, self.length = pairs, batch, 0
        self.capacity = 0
        self.front: list[np.ndarray] = []
        self.back: list[np.ndarray] = []
        # per pair: the shape around the length axis, with the batch bound (computed once: a step
        # makes a view of every pair twice)
        self._shapes = [(tuple(batch if d == BATCH else d for d in p.shape[:p.axis]),
                         tuple(batch if d == BATCH else d for d in p.shape[p.axis + 1:])) for p in pairs]
        self.reserve(capacity)

    def shape(self, k: int, length: int) -> tuple[int, ...]:
        """The shape of pair k's tensor of `length` positions."""
        before, after = self._shapes[k]
        return (*before, length, *after)

    def reserve(self, capacity: int) -> None:
        if capacity <= self.capacity:
            return
        capacity = max(capacity, 2 * self.capacity)
        front = [np.empty(prod(self.shape(k, capacity)), p.dtype) for k, p in enumerate(self.pairs)]
        for k, (new, old) in enumerate(zip(front, self.front)):
            n = prod(self.shape(k, self.length))
            new[:n] = old[:n]
        self.front, self.back = front, [np.empty_like(f) for f in front]
        self.capacity = capacity

    def pasts(self) -> dict[str, np.ndarray]:
        return {p.past: _view(f, self.shape(k, self.length)) for k, (p, f) in enumerate(zip(self.pairs, self.front))}

    def presents(self, seq: int) -> list[np.ndarray]:
        """Where the next run writes its presents (room reserved for them)."""
        self.reserve(self.length + seq)
        return [_view(b, self.shape(k, self.length + seq)) for k, b in enumerate(self.back)]

    def advance(self, seq: int) -> None:
        """The run wrote its presents: they are the past now."""
        self.front, self.back = self.back, self.front
        self.length += seq


def _view(flat: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    return flat[:prod(shape)].reshape(shape)


class StreamingInference:
    """Decode token by token with a session over a decoder-with-past model (the guide's API):
    `start({"input_ids": prompt})` runs the prompt, `step(token)` feeds one more token per sequence;
    both return the logits of the last position, [batch, vocab], and pass them to the step callback.
    `generate(...)` does it all. `max_length`: the positions the cache is first sized for (it grows
    when a decode goes past it). One decode at a time per object (it holds the decode's state);
    decodes on one session may run in several threads, each with its own StreamingInference."""

    def __init__(self, session, max_length: int = 256):
        if type(max_length) is not int or max_length < 1:
            raise ValidationError(f"max_length must be an int >= 1, got {max_length!r}")
        self._session = session
        self._signature = DecoderSignature.of(session)
        self._max_length = max_length
        self._callback: StepCallback | None = None
        self._cache: KVCache | None = None
        self._outputs: list[np.ndarray] = []
        self._record = True  # keep every run's logits for get_outputs() (not in generate: 4 * vocab bytes each)

    @property
    def signature(self) -> DecoderSignature:
        return self._signature

    @property
    def cache(self) -> KVCache | None:
        """The key / value cache of the decode (None when not started)."""
        return self._cache

    @property
    def length(self) -> int:
        """Positions in the cache (0 before start)."""
        return self._cache.length if self._cache is not None else 0

    def set_step_callback(self, callback: StepCallback | None) -> None:
        """callback(logits [batch, vocab]) after every run (start and step); None: none."""
        if callback is not None and not callable(callback):
            raise InputError(f"the step callback must be callable, got {type(callback).__name__}")
        self._callback = callback

    def start(self, initial: dict) -> np.ndarray:
        """Begin a decode: initial["input_ids"] is the prompt, [batch, seq] (or [seq]) int64;
        initial["attention_mask"] (optional, [batch, seq], 0 at padding) if the model has one."""
        return self._begin(initial, self._max_length, record=True)

    def _begin(self, initial: dict, capacity: int, record: bool) -> np.ndarray:
        if not isinstance(initial, dict) or "input_ids" not in initial:
            raise InputError("start() takes a dict with the prompt as 'input_ids'")
        unknown = set(initial) - {"input_ids", "attention_mask"}
        if unknown or "attention_mask" in initial and not self._signature.attention_mask:
            raise InputError(f"start() takes input_ids and, if the model has one, attention_mask; "
                             f"got {sorted(initial)}")
        ids = _token_matrix(initial["input_ids"], "input_ids")
        mask = np.ones(ids.shape, np.int64) if initial.get("attention_mask") is None else \
            np.ascontiguousarray(initial["attention_mask"], np.int64)
        if mask.shape != ids.shape:
            raise InputError(f"attention_mask must have the prompt's shape {list(ids.shape)}, got {list(mask.shape)}")
        self._cache = KVCache(self._signature.pairs, ids.shape[0], max(capacity, ids.shape[1]))
        self._outputs, self._record = [], record
        try:
            return self._run(ids, mask, np.maximum(np.cumsum(mask, -1) - 1, 0))  # left padding shifts positions
        except BaseException:
            self._cache = None  # no decode without its prompt
            raise

    def step(self, next_token) -> np.ndarray:
        """Feed the next token of each sequence (an int for batch 1, or [batch] / [batch, 1])."""
        cache = self._running()
        ids = np.asarray(next_token)
        if ids.ndim == 0 or ids.ndim == 1 and ids.shape[0] == cache.batch:
            ids = ids.reshape(-1, 1)
        ids = _token_matrix(ids, "next_token")
        if ids.shape[0] != cache.batch:
            raise InputError(f"next_token must have one row per sequence ({cache.batch}), got {list(ids.shape)}")
        mask = np.concatenate([self._mask, np.ones(ids.shape, np.int64)], 1)
        return self._run(ids, mask, self._positions[:, -1:] + 1 + np.arange(ids.shape[1]))

    def get_outputs(self) -> list[np.ndarray]:
        """The logits [batch, vocab] of every run since start(), in order (generate keeps none)."""
        return list(self._outputs)

    def stop(self) -> None:
        """End the decode and free the cache; start() begins another."""
        self._cache = None

    def generate(self, prompt_ids, max_new_tokens: int, *, do_sample: bool = False, temperature: float = 1.0,
                 top_k: int = 0, top_p: float = 1.0, seed: int | None = None, stop_tokens=(),
                 callback: TokenCallback | None = None, attention_mask=None) -> np.ndarray:
        """The prompt [batch, seq] (or [seq]) followed by up to max_new_tokens tokens per sequence:
        greedy, or sampled (do_sample=True; temperature, top_k, top_p; seeded: reproducible).
        A sequence that emits one of `stop_tokens` is finished: its later positions repeat that token;
        decoding ends when every sequence is finished. callback(tokens [batch]) gets each new token.
        It is a decode of its own: one begun with start() ends."""
        if type(max_new_tokens) is not int or max_new_tokens < 0:
            raise InputError(f"max_new_tokens must be an int >= 0, got {max_new_tokens!r}")
        if callback is not None and not callable(callback):
            raise InputError(f"callback must be callable, got {type(callback).__name__}")
        stops = np.asarray(list(stop_tokens))
        if stops.size and not np.issubdtype(stops.dtype, np.integer):
            raise InputError(f"stop_tokens must be token ids (ints), got {list(stop_tokens)!r}")
        sampler = Sampler(do_sample, temperature, top_k, top_p, seed)
        ids = _token_matrix(prompt_ids, "prompt_ids")
        initial = {"input_ids": ids} if attention_mask is None else {"input_ids": ids, "attention_mask": attention_mask}
        tokens = [ids]
        finished = np.zeros(ids.shape[0], bool)
        try:
            logits = self._begin(initial, ids.shape[1] + max_new_tokens, record=False)
            for n in range(max_new_tokens):
                nxt = np.where(finished, tokens[-1][:, -1], sampler(logits)) if n else sampler(logits)
                tokens.append(nxt[:, None])
                if callback is not None:
                    callback(nxt)
                finished |= np.isin(nxt, stops)
                if finished.all() or n + 1 == max_new_tokens:
                    break
                logits = self.step(nxt)
        finally:
            self.stop()
        return np.concatenate(tokens, 1)

    # ------------------------------------------------------------ internals
    def _running(self) -> KVCache:
        if self._cache is None:
            raise InputError("the decode is not started: call start() first")
        return self._cache

    def _run(self, ids: np.ndarray, mask: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """Run the model on the next `ids` (their mask: the whole sequence's; positions: theirs)."""
        cache, sig = self._cache, self._signature
        seq = ids.shape[1]
        feeds = {"input_ids": ids, **cache.pasts()}
        if sig.attention_mask:
            feeds["attention_mask"] = mask
        if sig.position_ids:
            feeds["position_ids"] = positions
        bound = dict(zip((p.present for p in cache.pairs), cache.presents(seq)))
        outs = self._session.run_with_outputs(feeds, [bound.get(name) for name in sig.output_names])
        cache.advance(seq)
        self._mask, self._positions = mask, positions
        logits = outs[sig.output_names.index(sig.logits)][:, -1]
        if seq > 1:
            logits = logits.copy()  # not pinning the prompt's [batch, seq, vocab]
        if self._record:
            self._outputs.append(logits)
        if self._callback is not None:
            self._callback(logits)
        return logits


def _token_matrix(ids, what: str) -> np.ndarray:
    a = np.asarray(ids)
    if a.ndim == 1:
        a = a[None]
    if a.ndim != 2 or a.shape[0] < 1 or a.shape[1] < 1 or not np.issubdtype(a.dtype, np.integer):
        raise InputError(f"{what} must be non-empty integer token ids, [batch, seq] or [seq]; "
                         f"got {a.dtype} of shape {list(a.shape)}")
    return np.ascontiguousarray(a, np.int64)
