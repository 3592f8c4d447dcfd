"""Choosing the next token from a decoder's logits: greedy, or sampled (temperature, top-k, top-p).

A `Sampler` with a seed draws the same tokens for the same logits every time (its own numpy
generator); greedy decoding picks the first of equal maxima, as torch's and numpy's argmax do.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pyflame_rt.errors import InputError, ValidationError


@dataclass
class Sampler:
    """do_sample=False: greedy (argmax). Else the logits are divided by `temperature`, cut to the
    `top_k` largest (0: all) and to the smallest set of most likely tokens whose probability
    reaches `top_p` (1.0: all), and a token is drawn from what is left."""

    do_sample: bool = False
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    seed: int | None = None
    _rng: np.random.Generator = field(init=False, repr=False)

    def __post_init__(self):
        if type(self.do_sample) is not bool:
            raise ValidationError(f"do_sample must be a bool, got {self.do_sample!r}")
        if not (isinstance(self.temperature, (int, float)) and self.temperature > 0):
            raise ValidationError(f"temperature must be a number > 0, got {self.temperature!r}")
        if type(self.top_k) is not int or self.top_k < 0:
            raise ValidationError(f"top_k must be an int >= 0 (0: no cut), got {self.top_k!r}")
        if not (isinstance(self.top_p, (int, float)) and 0 < self.top_p <= 1):
            raise ValidationError(f"top_p must be a number in (0, 1], got {self.top_p!r}")
        if self.seed is not None and (type(self.seed) is not int or self.seed < 0):
            raise ValidationError(f"seed must be an int >= 0 or None, got {self.seed!r}")
        self._rng = np.random.default_rng(self.seed)

    def __call__(self, logits: np.ndarray) -> np.ndarray:
        """logits [batch, vocab] -> the next token of each row, int64 [batch]."""
        if logits.ndim != 2 or logits.shape[1] == 0:
            raise InputError(f"logits must be [batch, vocab] with vocab > 0, got shape {list(logits.shape)}")
        if not self.do_sample:
            return logits.argmax(-1).astype(np.int64)
        return np.array([self._draw(row) for row in logits], np.int64)

    def _draw(self, logits: np.ndarray) -> int:
        scaled = logits.astype(np.float64) / self.temperature
        order = np.argsort(-scaled, kind="stable")  # most likely first
        if self.top_k:
            order = order[:self.top_k]
        p = np.exp(scaled[order] - scaled[order[0]])
        p /= p.sum()
        keep = int(np.searchsorted(np.cumsum(p), self.top_p)) + 1  # the first prefix reaching top_p
        p = p[:keep] / p[:keep].sum()
        return int(order[self._rng.choice(len(p), p=p)])
