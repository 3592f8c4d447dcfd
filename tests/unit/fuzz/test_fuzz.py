"""The fuzzer (tests/fuzz): a bounded campaign in CI, and its case classification.

The full campaign (>= 10,000 cases) is `python -m tests.fuzz` (README.md, "Fuzzing").
"""
from __future__ import annotations

import sys

import numpy as np
import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT))  # the repository root: tests.fuzz

from tests.fuzz.harness import FAILURES, classify, compare, generate, run_campaign, summary  # noqa: E402

from pyflame_rt.errors import BackendError, InputError, MemoryAccessError, ShapeMismatchError  # noqa: E402


def test_compare_is_nan_aware_with_a_tolerance():
    e = [np.array([1.0, np.nan, np.inf, -np.inf, 1e30], np.float32)]
    assert compare(e, [e[0].copy()]) is None
    assert compare(e, [np.array([1.0001, np.nan, np.inf, -np.inf, 1.00001e30], np.float32)]) is None
    assert "got 0.0, expected nan" in compare(e, [np.array([1, 0, np.inf, -np.inf, 1e30], np.float32)])
    assert "1/5 elements differ" in compare(e, [np.array([1, np.nan, -np.inf, -np.inf, 1e30], np.float32)])
    assert "expected float32[5]" in compare(e, [e[0].astype(np.float64)])
    assert compare([np.array([3], np.int64)], [np.array([4], np.int64)]) is not None


def test_classify_outcomes():
    ok = [np.ones(2, np.float32)]
    ort_error = RuntimeError("[ONNXRuntimeError] : 2 : INVALID_ARGUMENT")
    assert classify(ok, ok)["outcome"] == "match"
    assert classify(ok, [np.zeros(2, np.float32)])["outcome"] == "mismatch"
    assert classify(ort_error, ShapeMismatchError("x"))["outcome"] == "rejected"
    assert classify(ort_error, InputError("x"))["outcome"] == "rejected"
    assert classify(ort_error, BackendError("x"))["outcome"] == "rejected_other"
    assert classify(ort_error, ok)["outcome"] == "accepted_invalid"
    assert classify(ok, ShapeMismatchError("x"))["outcome"] == "spurious_rejection"
    assert classify(ort_error, MemoryAccessError("kernel k ..."))["outcome"] == "oob"
    assert classify(ort_error, TypeError("x"))["outcome"] == "escaped_exception"


def test_differences_that_are_not_defects_are_told_apart():
    """NaN kept by a max pool, a float32 sum of values near the limit, a dynamic dim fed 1 against
    another dim: each its own outcome, and only for the ops and feeds that explain it."""
    nan_feed = {"x": np.array([1.0, np.nan], np.float32)}
    assert classify([np.float32([2.0])], [np.float32([np.nan])], ["ReduceMax"], nan_feed)["outcome"] == \
        "nan_propagated"
    assert classify([np.float32([2.0])], [np.float32([np.nan])], ["ReduceSum"], nan_feed)["outcome"] == "mismatch"
    assert classify([np.float32([2.0])], [np.float32([np.nan])], ["ReduceMax"], {"x": np.ones(2, np.float32)}
                    )["outcome"] == "mismatch"
    big = np.finfo(np.float32).max
    assert classify([np.float32([-big])], [np.float32([-np.inf])], ["MaxPool"], {"x": np.ones(2, np.float32)}
                    )["outcome"] == "nan_propagated"
    huge = {"x": np.array([3e38, 3e38, -3e38], np.float32)}
    assert classify([np.float32([3e38])], [np.float32([np.inf])], ["ReduceSum"], huge)["outcome"] == \
        "summation_order"
    assert classify([np.float32([3e38])], [np.float32([np.inf])], ["Relu"], huge)["outcome"] == "mismatch"
    assert classify([np.float32([1.0])], [np.float32([2.0])], ["ReduceSum"], {"x": np.ones(2, np.float32)}
                    )["outcome"] == "mismatch"
    broadcast = ShapeMismatchError("graph.mul node 'y': shapes ['b'] and ['c'] do not broadcast: 1 (b) vs 5 (c)")
    assert classify([np.ones(5, np.float32)], broadcast)["outcome"] == "dynamic_broadcast"
    rank = ShapeMismatchError("input 'i' must have rank 0 (shape []), got rank 1 with shape [1]")
    assert classify([np.ones(5, np.float32)], rank, corrupted=True)["outcome"] == "declared_shape"
    assert classify([np.ones(5, np.float32)], rank)["outcome"] == "spurious_rejection"


@pytest.mark.slow
def test_generation_is_deterministic_and_covers_30_op_types():
    a, b = generate(75, 2, seed_value=7), generate(75, 2, seed_value=7)
    assert [w.case.model for w in a] == [w.case.model for w in b]
    assert [w.feeds for w in a] == [w.feeds for w in b]
    assert len({op for w in a for op in w.case.ops}) >= 30


@pytest.fixture(scope="module")
def campaign(tmp_path_factory):
    works = generate(75, 3, seed_value=19)  # one model per op type and family, 3 feeds each
    return works, run_campaign(works, tmp_path_factory.mktemp("fuzz"), jobs=2)


@pytest.mark.slow
def test_bounded_campaign_runs_every_case_in_a_checked_build(campaign):
    works, records = campaign
    compiled = {r["model"] for r in records if r["outcome"] not in ("compile_rejected", "invalid_model")}
    cases = [r for r in records if r["feed"] >= 0]
    assert len(cases) == sum(len(w.feeds) for w in works if w.index in compiled), summary(records)
    assert len({op for r in cases for op in r["ops"]}) >= 30, summary(records)
    assert {"match", "rejected"} <= {r["outcome"] for r in cases}, summary(records)


@pytest.mark.slow
def test_bounded_campaign_has_no_failure(campaign):
    _, records = campaign
    assert not [r for r in records if r["outcome"] in FAILURES], summary(records)
