"""Session profiling: kernel events from the runtime -> a Chrome-trace JSON file.

The file is a JSON array of complete ("ph": "X") events, like onnxruntime's
profiles, so chrome://tracing, Perfetto and ORT profile tooling read it.
Times are microseconds since the profiler started.
"""
from __future__ import annotations

import json
import os
import threading
import time
from typing import Callable

from pyflame_rt.runtime import now_ns


class Profiler:
    def __init__(self, file_prefix: str = "pyflame_rt_profile"):
        self.file_prefix = file_prefix
        self._t0 = now_ns()
        self._pid = os.getpid()
        self._events: list[dict] = []
        self._runs = 0
        self._lock = threading.Lock()

    def _us(self, ns: int) -> float:
        return round((ns - self._t0) / 1e3, 3)

    def add(self, name: str, cat: str, start_ns: int, end_ns: int, args: dict | None = None) -> None:
        event = {"name": name, "cat": cat, "ph": "X", "pid": self._pid, "tid": threading.get_ident(),
                 "ts": self._us(start_ns), "dur": round((end_ns - start_ns) / 1e3, 3), "args": args or {}}
        with self._lock:
            self._events.append(event)

    def add_run(self, kernel_name: Callable[[int], str], step_ops: list[str],
                events: list[tuple[int, int, int, int]], dims: dict[str, int], start_ns: int, end_ns: int) -> None:
        """One run: a "model_run" span and one event per kernel call, named by the graph op it
        computes (`step_ops`, e.g. "gemm#2"), with the kernel's symbol (address -> name) in args."""
        with self._lock:
            run = self._runs
            self._runs += 1
        self.add("model_run", "Session", start_ns, end_ns, {"run": run, "dims": dims, "kernel_calls": len(events)})
        for step, (addr, start, end, items) in enumerate(events):
            op = step_ops[step] if step < len(step_ops) else f"step{step}"
            self.add(op, "Kernel", start, end,
                     {"run": run, "step": step, "kernel": kernel_name(addr), "work_items": items})

    @property
    def events(self) -> list[dict]:
        with self._lock:
            return list(self._events)

    def write(self) -> str:
        """Write the trace to `<prefix>_<timestamp>.json` and return the file name."""
        path = f"{self.file_prefix}_{time.strftime('%Y-%m-%d_%H-%M-%S')}_{self._pid}_{id(self):x}.json"
        with open(path, "w") as f:
            json.dump(self.events, f)
        return path
