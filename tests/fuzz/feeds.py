"""Feeds for fuzz models: a hypothesis strategy draws a small `FeedSpec` (dim values, value kinds,
corruptions, a seed); `materialize` turns it into arrays deterministically (so a spec is a
reproducer)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from hypothesis import strategies as st

from .models import Input, ModelCase

FLOAT_KINDS = ["normal", "normal", "normal", "special", "special", "huge", "zeros", "ints", "tiny"]
MAX_ELEMENTS = 1 << 18


@dataclass
class FeedSpec:
    bind: dict  # symbol -> value
    kinds: dict  # input name -> value kind
    seed: int
    corrupt: dict = field(default_factory=dict)  # {"input", "kind": static_dim | rank | dtype, "axis"}

    def describe(self) -> str:
        parts = [", ".join(f"{k}={v}" for k, v in sorted(self.bind.items())),
                 ", ".join(f"{k}:{v}" for k, v in sorted(self.kinds.items()))]
        if self.corrupt:
            parts.append(f"corrupt {self.corrupt}")
        return "; ".join(p for p in parts if p)


def symbols(case: ModelCase) -> list[str]:
    return sorted({d for i in case.inputs for d in i.shape if isinstance(d, str)})


@st.composite
def feed_spec(draw, case: ModelCase) -> FeedSpec:
    bind = {}
    for s in symbols(case):
        if s in case.hints and draw(st.integers(0, 9)) < 6:
            bind[s] = case.hints[s]
        else:
            bind[s] = draw(st.sampled_from([1, 1, 2, 2, 3, 3, 4, 5, 7, 0, 17]))
    kinds = {}
    for i in case.inputs:
        if i.dtype.startswith("float") and i.role == "data":
            kinds[i.name] = draw(st.sampled_from(["normal", "zeros", "ints"] if case.float_to_int else FLOAT_KINDS))
        elif i.role in ("indices", "divisor"):
            kinds[i.name] = draw(st.sampled_from(["valid", "valid", "valid", "any"]))
    corrupt = {}
    roll = draw(st.integers(0, 99))  # hypothesis's simplest draw (0) is an uncorrupted feed
    if roll >= 92:
        target = draw(st.sampled_from(case.inputs))
        statics = [a for a, d in enumerate(target.shape) if isinstance(d, int)]
        if roll >= 95 and statics:
            corrupt = {"input": target.name, "kind": "static_dim", "axis": draw(st.sampled_from(statics)),
                       "value": draw(st.sampled_from([0, 1, 2, 9]))}
        elif roll >= 93:
            corrupt = {"input": target.name, "kind": "rank"}
        else:
            corrupt = {"input": target.name, "kind": "dtype"}
    return FeedSpec(bind, kinds, draw(st.integers(0, 2 ** 31 - 1)), corrupt)


def materialize(case: ModelCase, spec: FeedSpec) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(spec.seed)
    shapes = {i.name: [d if isinstance(d, int) else spec.bind[d] for d in i.shape] for i in case.inputs}
    c = spec.corrupt
    if c.get("kind") == "static_dim":
        shapes[c["input"]][c["axis"]] = c["value"]
    elif c.get("kind") == "rank":
        shapes[c["input"]] = shapes[c["input"]] + [1]
    feeds = {}
    for i in case.inputs:
        shape = shapes[i.name]
        if int(np.prod(shape)) > MAX_ELEMENTS:  # keep every case fast: shrink the largest dims
            shape = [min(d, 5) for d in shape]
        feeds[i.name] = _values(i, shape, spec.kinds.get(i.name, "normal"), rng, shapes)
        if c.get("kind") == "dtype" and c["input"] == i.name:
            feeds[i.name] = feeds[i.name].astype(np.float64 if i.dtype != "float64" else np.float32)
    return feeds


def _values(i: Input, shape: list[int], kind: str, rng: np.random.Generator, shapes: dict) -> np.ndarray:
    dtype = np.dtype(i.dtype)
    if i.role == "cond" or dtype == np.bool_:
        return rng.random(shape) < 0.5
    if i.role == "indices":
        n = shapes[i.of[0]][i.of[1]] if i.of[1] < len(shapes[i.of[0]]) else 1
        lo, hi = (-n, n) if kind == "valid" and n > 0 else (-2 * n - 2, 2 * n + 2)
        return rng.integers(lo, max(hi, lo + 1), shape).astype(dtype)
    if dtype.kind in "iu":
        v = rng.integers(-20, 21, shape).astype(dtype)
        if i.role == "divisor" and kind == "valid":
            v[v == 0] = 3
        return v
    return _floats(kind, shape, rng).astype(dtype)


def _floats(kind: str, shape: list[int], rng: np.random.Generator) -> np.ndarray:
    if kind == "zeros":
        return np.where(rng.random(shape) < 0.5, 0.0, -0.0)
    if kind == "ints":
        return rng.integers(-8, 9, shape) / 2.0
    if kind == "huge":
        return rng.choice([1e4, 88.5, 1e10, 1e30, 3e38], shape) * rng.choice([-1.0, 1.0], shape)
    if kind == "tiny":
        return rng.choice([1e-39, 1e-45, 1e-30, 0.0], shape) * rng.choice([-1.0, 1.0], shape)
    x = rng.standard_normal(shape) * 2
    if kind == "special":
        special = rng.random(shape) < 0.3
        x = np.where(special, rng.choice([np.nan, np.inf, -np.inf], shape), x)
    return x
