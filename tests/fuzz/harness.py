"""The fuzz campaign: generate (model, feeds) with hypothesis, run them in child processes against
onnxruntime, classify every case, save reproducers of failures, print a summary.

Each model is compiled once, as a checked build (every load and store bounds-checked), and fed
all its feeds. A case's outcome is one of OUTCOMES: onnxruntime decides whether the feed is valid
(it returns outputs) or not (it raises); a valid feed must give onnxruntime's outputs (NaN-aware,
with a tolerance), an invalid one must raise a PyFlameRTError; never a crash, a hang, an
out-of-bounds access (MemoryAccessError) or an exception outside the hierarchy.

Children run batches of models; a child that dies (signal, abort) or hangs is replaced and the
case it was running is recorded as a crash / hang, then the rest of its batch goes on in a new
child (the compile cache makes its models' recompilation a load). A model that crashed once runs
its remaining feeds isolated, each in a forked process of its own (single-threaded sessions: a
fork keeps only the calling thread), so a model that crashes on every zero-size feed costs a fork
per feed, not a new interpreter.
"""
from __future__ import annotations

import collections
import json
import os
import pickle
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from .feeds import FeedSpec, feed_spec, materialize
from .models import ModelCase, strategies

REPO = Path(__file__).resolve().parents[2]
GOOD = ("match", "rejected", "rejected_other")
FAILURES = ("crash", "hang", "oob", "escaped_exception", "mismatch", "accepted_invalid", "spurious_rejection",
            "compile_escape")
# differences from onnxruntime that are not defects, each counted and listed apart:
# - nan_propagated: a max / min reduction or pool (or a log-sum-exp, whose shift is a max) gives NaN
#   for a window holding a NaN, where onnxruntime returns a number for some positions of the NaN
#   (issue 19: NaN propagates through every pooling), or -inf for a window of -inf where onnxruntime's
#   running max starts from -FLT_MAX and returns it;
# - summation_order: an op that sums float32 values is fed values near the type's limit (>= 1e30),
#   where the result depends on the summation order (ONNX leaves it open): cancellation or overflow
#   in one order and not in the other;
# - dynamic_broadcast: a dynamic dim fed 1 against another dim is rejected, not broadcast (the
#   kernels' strides are fixed at compile time; README, "Dynamic dims")
# - declared_shape: a feed whose rank or static dim contradicts the model's declared input shape is
#   rejected (InferenceSession validates feeds against the declared shapes; onnxruntime lets some through)
DIFFERENCES = ("nan_propagated", "summation_order", "dynamic_broadcast", "declared_shape")
SKIPPED = ("compile_rejected", "invalid_model")
OUTCOMES = GOOD + DIFFERENCES + FAILURES + SKIPPED
NAN_PROPAGATING_OPS = {"MaxPool", "GlobalMaxPool", "ReduceMax", "ReduceMin", "Max", "Min", "ReduceLogSumExp"}
SUMMING_OPS = {"ReduceSum", "ReduceMean", "ReduceSumSquare", "ReduceL1", "ReduceL2", "ReduceLogSum",
               "ReduceLogSumExp", "GlobalAveragePool", "AveragePool", "MatMul", "Gemm", "Conv", "ConvTranspose",
               "LayerNormalization", "InstanceNormalization", "BatchNormalization", "Softmax", "LogSoftmax",
               "CumSum"}
NEUTRAL_OPS = {"Identity", "Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze"}  # move values only
HUGE = 1e30  # a float32 sum of elements this large loses the smaller ones or overflows


@dataclass
class Work:
    """One model and its feeds: what a child compiles once and runs."""

    index: int
    case: ModelCase
    feeds: list[FeedSpec]


# ---------------------------------------------------------------- generation


def generate(models: int, feeds_per_model: int, seed_value: int) -> list[Work]:
    """About `models` (model, feeds) draws from hypothesis (at least one per op type of every
    family: `models.strategies`; heavy ones, slow to compile, get half a share), deterministic for
    a seed."""
    kinds = strategies()
    total = sum(weight for _, weight in kinds.values())
    drawn: list[tuple[ModelCase, list[FeedSpec]]] = []
    for n, (strategy, weight) in enumerate(kinds.values()):
        count = max(1, round(models * weight / total))
        drawn += _draw(strategy, count, feeds_per_model, seed_value * 1000 + n)
    return [Work(i, case, feeds) for i, (case, feeds) in enumerate(drawn)]


def _draw(models: st.SearchStrategy, count: int, feeds_per_model: int, seed_value: int) -> list:
    drawn = []

    @st.composite
    def work(draw):
        case = draw(models)
        return case, draw(st.lists(feed_spec(case), min_size=feeds_per_model, max_size=feeds_per_model))

    @seed(seed_value)
    @settings(max_examples=count + 1, database=None, phases=[Phase.generate], deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(work())
    def collect(w):
        drawn.append(w)

    collect()
    return drawn[1:]  # hypothesis starts with its simplest example: every choice its first


# ---------------------------------------------------------------- one child


def run_models(works: list[Work], first_feed: int, out, cache_dir: str, isolate: bool) -> None:
    """In a child: every feed of every model (the first model from `first_feed` on, isolated if
    `isolate`); one JSON line per case on `out`, preceded by a "start" line so that the parent can
    name the case a crash interrupted."""
    for n, w in enumerate(works):
        for line in run_model(w, first_feed if n == 0 else 0, cache_dir, isolate and n == 0):
            out.write(json.dumps(line) + "\n")
            out.flush()


def run_model(w: Work, first_feed: int, cache_dir: str, isolate: bool = False):
    import onnxruntime as ort

    from pyflame_rt import InferenceSession, SessionOptions
    from pyflame_rt.cache import CacheConfig
    from pyflame_rt.errors import PyFlameRTError

    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.log_severity_level = 1, 4
    base = {"model": w.index, "ops": w.case.ops}
    try:
        ref = ort.InferenceSession(w.case.model, opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # the generator made a model onnxruntime refuses: not a case
        yield {**base, "feed": -1, "outcome": "invalid_model", "detail": _short(e)}
        return
    yield {**base, "feed": -1, "start": "compile"}
    try:
        threads = 1 if isolate else 1 + w.index % 2
        sess = InferenceSession(w.case.model, SessionOptions(checked=True, num_threads=threads,
                                                             cache=CacheConfig(dir=cache_dir)))
    except PyFlameRTError as e:
        yield {**base, "feed": -1, "outcome": "compile_rejected", "error": type(e).__name__, "detail": _short(e)}
        return
    except Exception as e:
        yield {**base, "feed": -1, "outcome": "compile_escape", "error": type(e).__name__, "detail": _short(e)}
        return
    for f in range(first_feed, len(w.feeds)):
        spec = w.feeds[f]
        feeds = materialize(w.case, spec)
        case = {**base, "feed": f, "feed_spec": spec.describe()}
        try:
            expected = ref.run(None, feeds)
        except Exception as e:
            expected = e
        yield {**case, "valid": not isinstance(expected, Exception), "start": "run"}
        if isolate:
            got = _in_fork(lambda: sess.run(None, feeds))
            if isinstance(got, _Died):
                yield {**case, "valid": not isinstance(expected, Exception), "outcome": got.outcome,
                       "detail": got.detail}
                continue
        else:
            try:
                got = sess.run(None, feeds)
            except Exception as e:
                got = e
        yield {**case, **classify(expected, got, w.case.ops, feeds, bool(spec.corrupt))}


@dataclass
class _Died:
    outcome: str  # crash | hang
    detail: str


def _in_fork(fn, timeout: float = 120.0):
    """fn()'s result or exception, computed in a forked process; _Died if that process dies or hangs."""
    import select

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the forked process: never returns
        os.close(r)
        try:
            payload = pickle.dumps(fn())
        except Exception as e:
            payload = pickle.dumps(e if _picklable(e) else RuntimeError(f"{type(e).__name__}: {e}"))
        with os.fdopen(w, "wb") as f:
            f.write(payload)
        os._exit(0)
    os.close(w)
    data, deadline = b"", time.monotonic() + timeout
    with os.fdopen(r, "rb") as f:
        while select.select([f], [], [], max(0.0, deadline - time.monotonic()))[0]:
            chunk = os.read(f.fileno(), 1 << 20)
            if not chunk:
                break
            data += chunk
        else:
            os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        sig = signal.Signals(os.WTERMSIG(status))
        return _Died("hang", f"killed after {timeout:.0f} s") if sig == signal.SIGKILL else \
            _Died("crash", f"killed by {sig.name} (isolated)")
    return pickle.loads(data)


def _picklable(e: Exception) -> bool:
    try:
        pickle.loads(pickle.dumps(e))
        return True
    except Exception:
        return False


def classify(expected, got, ops=(), feeds=None, corrupted: bool = False) -> dict:
    """An outcome for (onnxruntime's outputs or error, ours), for a model of `ops` fed `feeds` (with a
    rank, static dim or dtype made to contradict the model's declared inputs when `corrupted`)."""
    from pyflame_rt.errors import DTypeMismatchError, InputError, MemoryAccessError, PyFlameRTError, \
        ShapeMismatchError

    valid = not isinstance(expected, Exception)
    out = {"valid": valid}
    if isinstance(got, Exception):
        out |= {"error": type(got).__name__, "detail": _short(got)}
        if isinstance(got, MemoryAccessError):
            return out | {"outcome": "oob"}
        if not isinstance(got, PyFlameRTError):
            return out | {"outcome": "escaped_exception"}
        if valid:
            broadcast = isinstance(got, ShapeMismatchError) and "do not broadcast" in str(got)
            declared = corrupted and isinstance(got, (ShapeMismatchError, DTypeMismatchError)) and \
                str(got).startswith("input '")
            return out | {"outcome": "dynamic_broadcast" if broadcast else "declared_shape" if declared
                          else "spurious_rejection"}
        expected_class = isinstance(got, (ShapeMismatchError, InputError, DTypeMismatchError))
        return out | {"outcome": "rejected" if expected_class else "rejected_other", "ort": _short(expected)}
    if not valid:
        return out | {"outcome": "accepted_invalid", "ort": _short(expected)}
    problem = compare(expected, got)
    if problem is None:
        return out | {"outcome": "match"}
    return out | {"outcome": _explained(expected, got, ops, feeds or {}) or "mismatch", "detail": problem}


def _kept_extremes(e: np.ndarray, g: np.ndarray, has_nan: bool) -> bool:
    """Every element is a NaN we kept (from a NaN input) or an infinity where onnxruntime's running
    max / min, started from -FLT_MAX / FLT_MAX, returns that bound for a window of infinities."""
    big = float(np.finfo(np.float32).max)
    return bool(((np.isnan(g) & has_nan) | (g == -np.inf) & (e == -big) | (g == np.inf) & (e == big)).all())


def _explained(expected: list, got: list, ops, feeds: dict) -> str | None:
    """The DIFFERENCES outcome that accounts for every element where got and expected differ, if any."""
    inputs = [np.asarray(x) for x in feeds.values() if np.asarray(x).dtype.kind == "f"]
    has_nan = any(np.isnan(x).any() for x in inputs)
    huge = any((np.abs(x[np.isfinite(x)]) >= HUGE).any() for x in inputs)
    kinds = set()
    for e, g in zip(expected, got):
        e, g = np.asarray(e, np.float64), np.asarray(g, np.float64)
        differ = ~((e == g) | (np.isnan(e) & np.isnan(g)) | np.isclose(g, e, rtol=1e-3, atol=0))
        if not differ.any():
            continue
        if set(ops) - NEUTRAL_OPS <= NAN_PROPAGATING_OPS and _kept_extremes(e[differ], g[differ], has_nan):
            kinds.add("nan_propagated")
        elif huge and set(ops) - NEUTRAL_OPS <= SUMMING_OPS:
            kinds.add("summation_order")
        else:
            return None
    return kinds.pop() if len(kinds) == 1 else None


def compare(expected: list, got: list) -> str | None:
    """None when got equals expected: same shapes and dtypes, NaN where NaN, the same infinities,
    finite values within rtol 1e-3 (1e-2 for float16) plus 1e-6 of the tensor's magnitude."""
    if len(expected) != len(got):
        return f"{len(got)} outputs, expected {len(expected)}"
    for k, (e, g) in enumerate(zip(expected, got)):
        e, g = np.asarray(e), np.asarray(g)
        if e.shape != g.shape or e.dtype != g.dtype:
            return f"output {k}: {g.dtype}{list(g.shape)}, expected {e.dtype}{list(e.shape)}"
        if e.dtype.kind != "f":
            bad = e != g
        else:
            ef, gf = e.astype(np.float64), g.astype(np.float64)
            finite = np.isfinite(ef)
            scale = float(np.abs(ef[finite]).max()) if finite.any() else 0.0
            rtol = 1e-2 if e.dtype == np.float16 else 1e-3
            with np.errstate(invalid="ignore"):  # inf - inf: those elements are compared exactly below
                close = np.abs(gf - ef) <= rtol * np.abs(ef) + 1e-6 * max(1.0, scale)
            bad = np.where(np.isnan(ef), ~np.isnan(gf), np.where(finite, ~close, ef != gf))
        if bad.any():
            at = tuple(int(i) for i in np.argwhere(bad)[0])
            return (f"output {k}: {int(bad.sum())}/{bad.size} elements differ, first at {list(at)}: "
                    f"got {g[at].item()!r}, expected {e[at].item()!r}")
    return None


def _short(e) -> str:
    return " ".join(str(e).split())[:300]


def child_main(argv: list[str]) -> None:
    """python -m tests.fuzz.harness WORK.pkl FIRST_FEED ISOLATE RESULTS.jsonl CACHE_DIR"""
    np.seterr(all="ignore")  # NaN / Inf feeds are the point; a crash report shows the child's last stderr lines
    with open(argv[0], "rb") as f:
        works = pickle.load(f)
    with open(argv[3], "a") as out:
        run_models(works, int(argv[1]), out, argv[4], argv[2] == "1")


# ---------------------------------------------------------------- the parent


@dataclass
class _Child:
    proc: subprocess.Popen
    works: list[Work]
    results: Path
    started: float


def run_campaign(works: list[Work], out_dir: Path, jobs: int = 1, batch: int = 4, timeout: float = 900.0,
                 log=None) -> list[dict]:
    """Every case of `works`, in up to `jobs` children at once; returns one record per case."""
    out_dir.mkdir(parents=True, exist_ok=True)
    cache_dir = tempfile.mkdtemp(prefix="cache-", dir=out_dir)
    pending = [(works[i:i + batch], 0, False) for i in range(0, len(works), batch)]
    running: list[_Child] = []
    records: list[dict] = []
    serial = finished = 0
    while pending or running:
        while pending and len(running) < jobs:
            group, first, isolate = pending.pop(0)
            serial += 1
            work_file, results = out_dir / f"batch{serial}.pkl", out_dir / f"batch{serial}.jsonl"
            work_file.write_bytes(pickle.dumps(group))
            with open(out_dir / f"batch{serial}.err", "wb") as err:  # a file: a full pipe would block the child
                proc = subprocess.Popen([sys.executable, "-m", "tests.fuzz.harness", str(work_file), str(first),
                                         str(int(isolate)), str(results), cache_dir], cwd=REPO,
                                        stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
            running.append(_Child(proc, group, results, time.monotonic()))
        time.sleep(0.05)
        for child in list(running):
            hung = time.monotonic() - child.started > timeout
            if child.proc.poll() is None and not hung:
                continue
            if hung:  # the child and any process it forked
                os.killpg(child.proc.pid, signal.SIGKILL)
            rc = child.proc.wait()
            stderr = child.results.with_suffix(".err").read_text(errors="replace")
            running.remove(child)
            done, interrupted = _read_results(child.results)
            records += done
            if rc == 0 and not hung:
                continue
            rest = _after(child, interrupted)
            if interrupted is not None:
                what = "hang" if hung else "crash"
                detail = f"killed after {timeout:.0f} s" if hung else _exit_reason(rc, stderr)
                records.append({**interrupted, "outcome": what, "detail": detail})
            else:  # died outside any case (e.g. at start-up): report the whole batch once
                records.append({"model": child.works[0].index, "feed": -1, "ops": child.works[0].case.ops,
                                "outcome": "crash", "detail": _exit_reason(rc, stderr)})
                rest = None
            if rest:
                pending.insert(0, rest)
            if log:
                log(f"child exited with {rc}: {records[-1]['outcome']} in model {records[-1]['model']}")
        if log and finished < len(records) // 500:
            finished = len(records) // 500
            log(f"{len(records)} records")
    return records


def _read_results(path: Path) -> tuple[list[dict], dict | None]:
    """Finished records, and the case a "start" line announced without its result."""
    done, started = [], None
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue  # a line the dying child did not finish
            if "start" in rec:
                started = rec
            else:
                done.append(rec)
                started = None
    if started is not None:
        started = {k: v for k, v in started.items() if k != "start"}
    return done, started


def _after(child: _Child, interrupted: dict | None):
    """The rest of a batch after the case that killed its child."""
    if interrupted is None:
        return None
    i = next(n for n, w in enumerate(child.works) if w.index == interrupted["model"])
    if interrupted["feed"] < 0 or interrupted["feed"] + 1 >= len(child.works[i].feeds):
        rest = child.works[i + 1:]
        return (rest, 0, False) if rest else None
    return child.works[i:], interrupted["feed"] + 1, True


def _exit_reason(rc: int, stderr: str) -> str:
    reason = f"killed by {signal.Signals(-rc).name}" if rc < 0 else f"exit status {rc}"
    tail = " | ".join(stderr.strip().splitlines()[-2:])
    return f"{reason}: {tail[-240:]}" if tail else reason


# ---------------------------------------------------------------- reporting


def save_reproducers(records: list[dict], works: list[Work], out_dir: Path, per_group: int = 3) -> None:
    """For each failure group (outcome, ops), the first few cases as model.onnx + feed.npz + case.json."""
    by_index = {w.index: w for w in works}
    seen: collections.Counter = collections.Counter()
    for r in records:
        if r["outcome"] not in FAILURES:
            continue
        group = (r["outcome"], "+".join(r["ops"]))
        seen[group] += 1
        if seen[group] > per_group:
            continue
        w = by_index[r["model"]]
        where = out_dir / "repro" / r["outcome"] / f"model{r['model']}-feed{r['feed']}"
        where.mkdir(parents=True, exist_ok=True)
        (where / "model.onnx").write_bytes(w.case.model)
        if r["feed"] >= 0:
            np.savez(where / "feed.npz", **materialize(w.case, w.feeds[r["feed"]]))
        (where / "case.json").write_text(json.dumps(r, indent=1))


def _grouped(records: list[dict], title: str, kinds: tuple) -> list[str]:
    groups = collections.Counter((r["outcome"], "+".join(r["ops"])) for r in records if r["outcome"] in kinds)
    if not groups:
        return []
    lines = ["", f"{title} by outcome and ops:"]
    for (outcome, op), n in sorted(groups.items(), key=lambda g: (kinds.index(g[0][0]), -g[1])):
        example = next(r for r in records if r["outcome"] == outcome and "+".join(r["ops"]) == op)
        lines.append(f"  {outcome:<18} {op:<28} x{n:<5} e.g. model{example['model']}-feed{example['feed']}: "
                     f"{example.get('detail', '')[:150]}  [{example.get('feed_spec', '')[:80]}]")
    return lines


def summary(records: list[dict]) -> str:
    cases = [r for r in records if r["feed"] >= 0]
    models = {r["model"] for r in records}
    ops = sorted({op for r in records for op in r["ops"]})
    counts = collections.Counter(r["outcome"] for r in records)
    lines = [f"models {len(models)}   cases {len(cases)}   op types {len(ops)}",
             f"  ({', '.join(ops)})", "", f"{'outcome':<20}{'count':>8}"]
    lines += [f"{o:<20}{counts[o]:>8}" for o in OUTCOMES if counts[o]]
    failed = sum(counts[o] for o in FAILURES)
    lines += ["", f"crashes {counts['crash']}   hangs {counts['hang']}   out-of-bounds {counts['oob']}   "
                  f"mismatches {counts['mismatch']}   accepted invalid feeds {counts['accepted_invalid']}   "
                  f"failures in all {failed}",
              f"cases as onnxruntime (match / rejected) {sum(counts[o] for o in GOOD)}/{len(cases)}, "
              f"explained differences {sum(counts[o] for o in DIFFERENCES)}/{len(cases)}, "
              f"failures {failed}/{len(cases)}"]
    for title, kinds in (("failures", FAILURES), ("differences from onnxruntime that are not defects", DIFFERENCES)):
        lines += _grouped(records, title, kinds)
    skipped = collections.Counter((r["outcome"], "+".join(r["ops"]), r.get("error", "")) for r in records
                                  if r["outcome"] == "compile_rejected")
    if skipped:
        lines += ["", "models not compiled (not counted as cases):"]
        lines += [f"  {op:<28} {err}: x{n}" for (_, op, err), n in skipped.most_common()]
    return "\n".join(lines)


if __name__ == "__main__":
    child_main(sys.argv[1:])
