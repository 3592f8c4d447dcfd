"""The calibration methods' thresholds against numpy on known data."""
import numpy as np
import pytest

from pyflame_rt.quantization.histogram import BINS, TensorStats, entropy_threshold, percentile_threshold


def _stats(*batches) -> TensorStats:
    s = TensorStats(with_histogram=True)
    for b in batches:
        s.update(b)
    return s


def test_running_range_over_batches():
    s = _stats(np.array([0.5, -1.0]), np.array([[3.0, 0.0]]))
    assert (s.lo, s.hi, s.amax) == (-1.0, 3.0, 3.0)
    assert s.hist.sum() == 4


def test_percentile_matches_numpy_within_a_bin(rng):
    x = rng.standard_normal(200_000).astype(np.float32)
    s = _stats(x[:1000], x[1000:])  # the range grows after the first batch: counts are re-binned
    for p in (99.0, 99.99):
        assert percentile_threshold(s, p) == pytest.approx(np.percentile(np.abs(x), p), abs=2 * s.bin_width)


def test_rebinning_keeps_every_count_and_the_distribution(rng):
    x = rng.uniform(-1, 1, 50_000)
    grown = _stats(x[:100] * 0.1, x[100:])
    assert grown.hist.sum() == x.size
    at_once = _stats(x)
    assert percentile_threshold(grown, 50) == pytest.approx(percentile_threshold(at_once, 50), abs=0.01)


def test_entropy_keeps_a_uniform_range():
    x = np.linspace(-4, 4, 100_001)
    assert entropy_threshold(_stats(x)) == pytest.approx(4.0, rel=0.02)


def test_entropy_clips_rare_outliers(rng):
    x = np.concatenate([rng.standard_normal(100_000), [60.0, -55.0]])
    s = _stats(x)
    t = entropy_threshold(s)
    assert 2.5 < t < 15  # well inside the outliers, beyond most of the Gaussian
    # a cut at the threshold loses little of the data
    assert np.mean(np.abs(x) > t) < 0.01
    assert s.clipped(t) == (-t, t)


def test_empty_and_zero_tensors():
    s = _stats(np.zeros(10))
    assert (percentile_threshold(s, 99.9), entropy_threshold(s)) == (0.0, 0.0)
    assert TensorStats(with_histogram=False).hist is None
    assert BINS == 2048
