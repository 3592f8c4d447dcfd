"""python -m tests.fuzz [--models N] [--feeds F] [--seed S] [--jobs J] [--out DIR]: a fuzz campaign of
N x F (model, feed) cases; prints the summary table, saves reproducers of failures under DIR/repro,
exits 1 when a case failed."""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from .harness import FAILURES, generate, run_campaign, save_reproducers, summary


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__)
    p.add_argument("--models", type=int, default=300)
    p.add_argument("--feeds", type=int, default=40, help="feeds per model")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=2, help="child processes at once")
    p.add_argument("--batch", type=int, default=4, help="models per child")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds before a child counts as hung")
    p.add_argument("--out", help="results, compile cache and reproducers (default: a new temporary folder)")
    args = p.parse_args(argv)
    out = Path(args.out or tempfile.mkdtemp(prefix="pyflame-fuzz-"))
    t0 = time.monotonic()
    works = generate(args.models, args.feeds, args.seed)
    print(f"generated {len(works)} models x {args.feeds} feeds in {time.monotonic() - t0:.0f} s; results in {out}",
          flush=True)
    records = run_campaign(works, out, jobs=args.jobs, batch=args.batch, timeout=args.timeout,
                           log=lambda msg: print(f"  [{time.monotonic() - t0:6.0f} s] {msg}", flush=True))
    (out / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    save_reproducers(records, works, out)
    print(summary(records))
    print(f"\n{time.monotonic() - t0:.0f} s; records in {out / 'records.jsonl'}, reproducers in {out / 'repro'}")
    return 1 if any(r["outcome"] in FAILURES for r in records) else 0


if __name__ == "__main__":
    sys.exit(main())
