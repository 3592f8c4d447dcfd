"""Per-tensor calibration statistics: the running range, and a histogram of |x| from which the
Percentile and Entropy methods choose a clipping threshold."""
from __future__ import annotations

import numpy as np

BINS = 2048
QUANT_LEVELS = 128  # the magnitudes int8 represents: the Entropy method's candidate resolution


class TensorStats:
    """Running min / max of every value seen, and (with_histogram) a BINS-bin histogram of |x|
    over [0, amax]; when a later batch widens amax the counts so far are re-binned, each bin's
    count moving to the new bin holding its centre."""

    def __init__(self, with_histogram: bool):
        self.lo = np.inf
        self.hi = -np.inf
        self.hist = np.zeros(BINS, np.float64) if with_histogram else None
        self.amax = 0.0

    def update(self, x: np.ndarray) -> None:
        x = np.asarray(x, np.float32).ravel()
        if x.size == 0:
            return
        self.lo = min(self.lo, float(x.min()))
        self.hi = max(self.hi, float(x.max()))
        if self.hist is None:
            return
        amax = max(-self.lo, self.hi)
        if amax > self.amax:
            if self.amax > 0:
                centres = (np.arange(BINS) + 0.5) * (self.amax / BINS)
                self.hist = np.histogram(centres, BINS, (0.0, amax), weights=self.hist)[0]
            self.amax = amax
        if self.amax > 0:
            self.hist += np.histogram(np.abs(x), BINS, (0.0, self.amax))[0]

    @property
    def bin_width(self) -> float:
        return self.amax / BINS

    def clipped(self, threshold: float) -> tuple[float, float]:
        """The range seen, clipped to [-threshold, threshold]."""
        return max(self.lo, -threshold), min(self.hi, threshold)


def percentile_threshold(stats: TensorStats, percentile: float) -> float:
    """The upper edge of the bin where the cumulative share of |x| reaches `percentile` %."""
    cdf = np.cumsum(stats.hist)
    if cdf[-1] == 0:
        return 0.0
    i = int(np.searchsorted(cdf, cdf[-1] * percentile / 100.0))
    return (min(i, BINS - 1) + 1) * stats.bin_width


def entropy_threshold(stats: TensorStats) -> float:
    """TensorRT's KL-divergence calibration: for each candidate cut i (QUANT_LEVELS..BINS bins),
    P is the histogram below the cut with every count above it added to its last bin, Q the same
    bins merged into QUANT_LEVELS levels and spread back evenly over each level's non-empty bins;
    the cut whose KL(P || Q) is smallest gives the threshold (its upper edge)."""
    hist = stats.hist
    if hist.sum() == 0:
        return 0.0
    tail = np.cumsum(hist[::-1])[::-1]  # tail[i]: the counts from bin i up
    best_i, best_kl = BINS, np.inf
    for i in range(QUANT_LEVELS, BINS + 1):
        p = hist[:i].copy()
        if i < BINS:
            p[-1] += tail[i]
        level = np.arange(i) * QUANT_LEVELS // i
        nonzero = hist[:i] > 0
        totals = np.bincount(level, weights=hist[:i], minlength=QUANT_LEVELS)
        counts = np.bincount(level, weights=nonzero, minlength=QUANT_LEVELS)
        q = np.where(nonzero, totals[level] / np.maximum(counts[level], 1), 0.0)
        kl = _kl_divergence(p, q)
        if kl < best_kl:
            best_i, best_kl = i, kl
    return best_i * stats.bin_width


def _kl_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """KL(P || Q) of two unnormalized histograms; where Q is empty but P is not (the clipped
    counts in P's last bin), Q gets a small share, as a quantizer rounding there would."""
    p = p / p.sum()
    q = np.where((q == 0) & (p > 0), 1e-4 * q.sum() / max(q.size, 1) + 1e-12, q)
    q = q / q.sum()
    m = p > 0
    return float(np.sum(p[m] * np.log(p[m] / q[m])))
