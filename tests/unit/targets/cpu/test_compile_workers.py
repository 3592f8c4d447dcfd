"""Compiling a model's modules in forked worker processes: the same object code as in one
process, jobs start as they are submitted, a worker's error or death surfaces as an error (no
hang), and no process is left over."""
import multiprocessing
import os
import signal
import time

import pytest
from xdsl.dialects.builtin import ModuleOp

from pyflame_rt.errors import BackendError
from pyflame_rt.targets.cpu.compile_workers import JobPool, run_jobs
from pyflame_rt.targets.cpu.kernel_cache import compile_modules
from pyflame_rt.targets.cpu.kernels.elementwise import ElementwiseSpec, elementwise_kernel
from pyflame_rt.targets.cpu.target import CPUTarget

SPECS = [ElementwiseSpec("relu", 0, ("v",), 8), ElementwiseSpec("add", 0, ("v", "v"), 8, activation="relu")]


def kernel_modules() -> list[ModuleOp]:
    return [ModuleOp([elementwise_kernel(spec)]) for spec in SPECS]


def test_worker_processes_emit_the_objects_one_process_emits():
    target = CPUTarget.named("x86-64-v3")
    times = {}
    in_workers = compile_modules(kernel_modules(), target, times, workers=2)
    assert in_workers == compile_modules(kernel_modules(), target, {}, workers=1)
    assert all(obj.startswith(b"\x7fELF") for obj in in_workers)
    assert set(times) == {"convert-to-llvm", "translate", "llvm-codegen"}
    assert multiprocessing.active_children() == []


def _die():
    os._exit(3)


def _fail():
    raise BackendError("LLVM rejected the generated IR: test")


def test_a_worker_that_dies_is_a_backend_error_and_leaves_no_process():
    with pytest.raises(BackendError, match="compile worker process died"):
        run_jobs([_die, lambda: 1, lambda: 2], workers=2)
    assert multiprocessing.active_children() == []


def test_a_jobs_error_reaches_the_caller_unchanged():
    with pytest.raises(BackendError, match="LLVM rejected the generated IR: test"):
        run_jobs([lambda: 1, _fail], workers=2)
    assert run_jobs([lambda: 1, lambda: 2], workers=2) == [1, 2]


def _jobs_in_this_process(results):
    results.put(run_jobs([os.getpid, os.getpid]))


def test_a_daemon_process_runs_the_jobs_itself():
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    daemon = ctx.Process(target=_jobs_in_this_process, args=(results,), daemon=True)
    daemon.start()
    pids = results.get(timeout=60)
    daemon.join()
    assert pids == [daemon.pid, daemon.pid]


def _sleep():
    time.sleep(60)


def test_jobs_start_when_submitted_and_at_most_one_per_worker(tmp_path):
    pool = JobPool(workers=2)
    marker = tmp_path / "started"
    pool.submit(lambda: marker.write_text("x"))
    deadline = time.monotonic() + 60
    while not marker.exists() and time.monotonic() < deadline:  # no results asked for yet
        time.sleep(0.01)
    assert marker.exists()
    for i in range(1, 6):
        pool.submit(lambda i=i: (i, os.getpid()))
        assert len(multiprocessing.active_children()) <= 2
    results = pool.results()
    assert [r[0] for r in results[1:]] == [1, 2, 3, 4, 5] and os.getpid() not in {r[1] for r in results[1:]}
    assert multiprocessing.active_children() == []


def test_closing_a_pool_stops_its_running_workers():
    pool = JobPool(workers=2)
    pool.submit(_sleep)
    pool.submit(_sleep)
    pool.submit(_sleep)  # queued: never started
    workers = multiprocessing.active_children()
    pool.close()
    assert len(workers) == 2 and [w.exitcode for w in workers] == [-signal.SIGKILL] * 2
    assert multiprocessing.active_children() == []
