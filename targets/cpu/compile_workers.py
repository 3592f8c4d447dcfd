"""Running a compile's independent jobs (one module each: conversion, translation, LLVM) on all
cores, in forked worker processes.

A job is a closure over IR the parent built; forked workers inherit it, so nothing but the job's
index goes to a worker and only its (picklable) result comes back. Forking happens while
llvmlite's lock is held, so no worker inherits LLVM in the middle of another thread's call. A
worker that dies raises BackendError; the pool is always shut down and its processes joined.
With one job, one usable core, no `fork` or in a daemon process, the jobs run in this process.
"""
from __future__ import annotations

import gc
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Callable, TypeVar

import llvmlite.binding as llvm

from pyflame_rt.errors import BackendError

T = TypeVar("T")

_jobs: list[Callable[[], object]] = []  # in a worker: the jobs of the pool that forked it


def worker_count(jobs: int) -> int:
    """How many processes run `jobs` jobs: one per usable core, at most one per job; one (this
    process) where `fork` is missing or in a daemon process, which may not have children."""
    if "fork" not in multiprocessing.get_all_start_methods() or multiprocessing.current_process().daemon:
        return 1
    return max(1, min(jobs, len(os.sched_getaffinity(0))))


def run_jobs(jobs: list[Callable[[], T]], workers: int | None = None) -> list[T]:
    """The results of `jobs`, in order; `workers` defaults to `worker_count(len(jobs))`."""
    workers = worker_count(len(jobs)) if workers is None else workers
    if workers <= 1:
        return [job() for job in jobs]
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"),
                               initializer=_receive, initargs=(jobs,))
    try:
        gc.freeze()  # the inherited IR stays shared with the parent instead of copied by the collector
        try:
            with llvm.ffi.lib._lock:  # fork start: the workers are forked by the first submit
                futures = [pool.submit(_run, i) for i in range(len(jobs))]
        finally:
            gc.unfreeze()
        return [f.result() for f in futures]
    except BrokenProcessPool as e:
        raise BackendError(f"a compile worker process died: {e}") from None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _receive(jobs: list[Callable[[], object]]) -> None:
    global _jobs
    _jobs = jobs


def _run(index: int):
    return _jobs[index]()
