"""Compiling a model's modules in forked worker processes: the same object code as in one
process, a worker's error or death surfaces as an error (no hang), and no process is left over."""
import multiprocessing
import os

import pytest
from xdsl.dialects.builtin import ModuleOp

from pyflame_rt.errors import BackendError
from pyflame_rt.targets.cpu.compile_workers import run_jobs
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
