"""Run the whole ONNX backend conformance suite against PyFlameRT and write docs/conformance.md.

    python tests/conformance/run.py                  # everything, table -> docs/conformance.md
    python tests/conformance/run.py --only node -k 'test_(add|relu)' --doc -   # a slice, table to stdout

Compiled artifacts are cached (see conformance_suite.CACHE_DIR), so a re-run only compiles what changed.
"""
from __future__ import annotations

import argparse
import collections
import datetime
import json
import re
import sys
import time
from dataclasses import asdict
from pathlib import Path

import onnx
import onnxruntime

import conformance_suite as cs
import pyflame_rt

ORDER = ["node", "pytorch-converted", "pytorch-operator", "simple", "light models"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", help="comma-separated categories: " + ", ".join(ORDER))
    ap.add_argument("-k", "--pattern", help="regex on test names")
    ap.add_argument("--jobs", type=int, default=2, help="processes that pre-compile the models (default 2)")
    ap.add_argument("--doc", default=str(cs.REPO / "docs" / "conformance.md"), help="output page, '-' = stdout")
    ap.add_argument("--json", default=str(cs.CACHE_DIR / "results.json"), help="per-test results")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    cs.prune_cache()
    tests = cs.cpu_tests(cs.backend_test().test_cases)
    if args.only:
        wanted = set(args.only.split(","))
        tests = [t for t in tests if t[0] in wanted]
    if args.pattern:
        tests = [t for t in tests if re.search(args.pattern, t[2])]
    uses = {(c, n): cs.model_use(c, n) for c, _, n in tests}
    supported = [cs.model_of_category(c, n) for c, _, n in tests if cs.is_supported(uses[(c, n)])]
    print(f"{len(tests)} tests, {len(supported)} with every operator supported; pre-compiling ...", flush=True)
    cs.precompile(supported, args.jobs)
    outcomes = []
    for i, (category, cls, name) in enumerate(tests):
        o = cs.run_test(category, cls, name)
        o.supported = cs.is_supported(uses[(category, name)])
        outcomes.append(o)
        if o.status == "fail":
            print(f"[{i + 1}/{len(tests)}] FAIL {category} {name}: {o.reason[:160]}", flush=True)
    elapsed = time.perf_counter() - t0
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps([asdict(o) for o in outcomes], indent=1))
    page = render(outcomes, elapsed)
    if args.doc == "-":
        print(page)
    else:
        Path(args.doc).parent.mkdir(parents=True, exist_ok=True)
        Path(args.doc).write_text(page)
        print(f"wrote {args.doc} and {args.json} ({elapsed:.0f} s)")
    return 0


def _rate(num: int, den: int) -> str:
    return f"{100.0 * num / den:.1f}%" if den else "-"


# Skip groups that are fair exclusions for an inference compiler: training, random sampling, string
# operators and the ai.onnx.ml / preview(.training) domains. Everything else is counted against us.
FAIR_EXCLUSIONS = {"training", "random", "string", "training dropout", "training batchnorm", "domain"}


def is_fair_exclusion(o: cs.Outcome) -> bool:
    group = _skip_group(o.reason) if o.status == "skip" else ""
    if group == "dtype":  # fair only when string tensors are all that is missing
        return o.reason.split(": ", 1)[1] == "STRING"
    return group in FAIR_EXCLUSIONS


def render(outcomes: list[cs.Outcome], elapsed: float) -> str:
    by_cat = collections.defaultdict(list)
    for o in outcomes:
        by_cat[o.category].append(o)
    rows = []
    tot = collections.Counter()
    for cat in ORDER + sorted(set(by_cat) - set(ORDER)):
        os_ = by_cat.get(cat, [])
        if not os_:
            continue
        c = collections.Counter(o.status for o in os_)
        c["all"] = len(os_)
        c["fair"] = sum(map(is_fair_exclusion, os_))
        c["wrong"] = sum(o.kind == "wrong result" for o in os_)
        tot.update(c)
        rows.append(_row(cat, c))
    rows.append(_row("**all**", tot, bold=True))

    sup_fail = [o for o in outcomes if o.supported and o.status != "pass"]
    missing = collections.Counter(op for o in outcomes if o.status == "fail" for op in o.missing_ops)
    kinds = collections.Counter(o.kind for o in outcomes if o.status == "fail")
    skipped = collections.Counter(_skip_group(o.reason) for o in outcomes if o.status == "skip")

    out = [HEADER.format(date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                         version=pyflame_rt.__version__, onnx=onnx.__version__, ort=onnxruntime.__version__,
                         elapsed=elapsed)]
    out.append("| category | tests | pass | fail | not supported | **pass / all tests** | wrong results | "
               "fair exclusions | pass / (all - fair exclusions) |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    out += rows
    out.append("")
    sup = [o for o in outcomes if o.supported]
    sup_pass = sum(o.status == "pass" for o in sup)
    out.append(f"Overall: **{tot['pass']} of all {tot['all']}** tests pass ({_rate(tot['pass'], tot['all'])}); "
               f"{tot['fail']} fail (of them {tot['wrong']} with a wrong result) and {tot['skip']} are refused as "
               f"not supported. Exclusions second: {tot['fair']} of the refused tests are fair exclusions for an "
               f"inference compiler (training operators, random sampling, string operators and tensors, the "
               f"ai.onnx.ml and preview domains); without them {tot['pass']} of {tot['all'] - tot['fair']} pass "
               f"({_rate(tot['pass'], tot['all'] - tot['fair'])}). Of the {len(sup)} tests whose operators are "
               f"all implemented, {sup_pass} pass ({_rate(sup_pass, len(sup))}).")
    out.append("")
    out.append("Failures by cause: " + (", ".join(f"{k}: {v}" for k, v in kinds.most_common()) or "none") + ".")
    out.append("")
    out.append("## Supported-op tests that do not pass\n")
    if sup_fail:
        out.append("| category | test | cause | detail |")
        out.append("|---|---|---|---|")
        for o in sorted(sup_fail, key=lambda o: (ORDER.index(o.category) if o.category in ORDER else 9, o.name)):
            why = cs.known_failure(o.name)
            detail = f"known ({why}): {o.reason}" if why else o.reason
            out.append(f"| {o.category} | `{o.name}` | {o.kind} | {_cell(detail)} |")
    else:
        out.append("None.")
    out.append("\n## Operators not implemented yet\n")
    out.append("Tests that fail only because a converter is missing (an operator may block several tests):\n")
    out.append(", ".join(f"{op} ({k})" for op, k in sorted(missing.items(), key=lambda x: (-x[1], x[0]))) or "None.")
    out.append("\n## Not supported\n")
    out.append("Refused at import with the reason below; every one of these tests counts in the denominator "
               "above. Fair exclusions: the training, random sampling, string and domain rows.\n")
    out.append("| operators / feature | reason | tests refused |")
    out.append("|---|---|---:|")
    for group, ops in cs._GROUPS.items():  # operator groups first, then features
        out.append(f"| {', '.join(ops.split())} | {cs._REASONS[group]} | {skipped.get(group, 0)} |")
    out.append(f"| Dropout with `training_mode` | {cs._REASONS['random']} | {skipped.get('training dropout', 0)} |")
    out.append(f"| BatchNormalization with `training_mode` | {cs._REASONS['training']} | "
               f"{skipped.get('training batchnorm', 0)} |")
    out.append(f"| ai.onnx.ml, ai.onnx.preview(.training) domains | {cs.DOMAIN_REASON} | {skipped.get('domain', 0)} |")
    out.append(f"| string, complex tensors | {cs.DTYPE_REASON} | "
               f"{skipped.get('dtype', 0)} |")
    out.append("")
    return "\n".join(out)


def _row(name: str, c: collections.Counter, bold: bool = False) -> str:
    cells = [c["all"], c["pass"], c["fail"], c["skip"], f"{c['pass']} / {c['all']} ({_rate(c['pass'], c['all'])})",
             c["wrong"], c["fair"], f"{c['pass']} / {c['all'] - c['fair']} ({_rate(c['pass'], c['all'] - c['fair'])})"]
    fmt = (lambda x: f"**{x}**") if bold else str
    return "| " + " | ".join([name, *map(fmt, cells)]) + " |"


def _skip_group(reason: str) -> str:
    if reason.startswith("Dropout with training_mode"):
        return "training dropout"
    if reason.startswith("BatchNormalization with training_mode"):
        return "training batchnorm"
    if reason.startswith(cs.DOMAIN_REASON):
        return "domain"
    if reason.startswith(cs.DTYPE_REASON):
        return "dtype"
    op = reason.split(":")[0]
    return cs.DELIBERATELY_UNSUPPORTED[op][0] if op in cs.DELIBERATELY_UNSUPPORTED else "other"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")[:400]


HEADER = """# ONNX conformance

PyFlameRT runs onnx's standard backend test suite (`onnx.backend.test.BackendTest`) through
`pyflame_rt.backend`: every test compiles its model to native code and compares the compiled code's
outputs with the suite's reference outputs (onnx's tolerances, rtol 1e-3 by default).

- **node**: one test per case in onnx's operator case definitions (`onnx/backend/test/case/node`); the
  inputs and expected outputs are generated in memory from the onnx package, so the suite runs offline.
- **pytorch-converted**, **pytorch-operator**, **simple**: the model suites shipped with the onnx package.
- **light models**: the model-zoo architectures shipped with onnx (AlexNet, DenseNet-121, Inception
  v1/v2, ResNet-50, ShuffleNet, SqueezeNet, VGG-19, ZFNet-512) with their reference outputs.

Only CPU tests count (onnx registers a `_cuda` twin of each; PyFlameRT runs on the CPU). Each test is
**pass**, **fail** (wrong result, an error, an unsupported variant of an implemented operator, or an
operator not implemented yet) or **not supported** (refused at import: it needs an operator, element
type or feature PyFlameRT does not compile; the reasons are listed at the end). Every test is in the
denominator of the pass rate; the fair exclusions for an inference compiler (training operators,
random sampling, string operators and tensors, the ai.onnx.ml and preview domains) are reported second,
as a rate without them. "Supported-op tests" are the tests whose operators all have converters and that
are not refused: the CI subset requires all of them to pass.

## Running it

```sh
python tests/conformance/run.py                      # full run: rewrites this page (~minutes)
python tests/conformance/run.py --only node -k relu --doc -   # a slice, printed
python -m pytest tests/conformance                   # the CI subset: every supported-op test
```

`pytest` (part of the normal test run, marked `slow`) runs the supported-op tests of each category and
fails on any of them that does not pass — a wrong result, an error, or a variant refused at compile time
with `UnsupportedOperatorError` / `UnsupportedFormatError` (a supported operator must not regress to a
refusal) — unless it is listed with its reason in `KNOWN_FAILURES` (tests/conformance/conformance_suite.py);
a listed known failure that passes again is reported as a warning. Compiled artifacts are cached in
`~/.cache/pyflame-rt/conformance` (`PYFLAME_CONFORMANCE_CACHE`), keyed by the model bytes and a digest of
the compiler sources; two processes pre-compile in parallel.

## Results

Generated {date} by `tests/conformance/run.py` (PyFlameRT {version}, onnx {onnx}, onnxruntime {ort};
{elapsed:.0f} s on the 2-core development machine).

"""

if __name__ == "__main__":
    sys.exit(main())
