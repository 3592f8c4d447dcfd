"""Running a compile's independent jobs (generating and compiling a kernel, or compiling a module)
on all cores, each in a worker process forked when the job starts.

A job is a closure over a kernel's spec or IR the parent holds; its worker inherits it, so nothing
is sent to the worker and only the job's (picklable) result comes back, through a pipe. Jobs start
as they are submitted, at most one per usable core at a time (the others when one finishes), so
workers compile kernels while the parent still lowers the graph. Forking happens while llvmlite's
lock is held, so no worker inherits LLVM in the middle of another thread's call. A job's exception
reaches the caller unchanged; a worker that dies raises BackendError. Workers are daemons, and
`JobPool.close` (also run when the results are in, or when the pool is collected) kills and joins
those still running, so none outlives its compile. With one usable core, no `fork` or in a daemon
process (which may not have children), the jobs run in this process when their results are asked for.
"""
from __future__ import annotations

import gc
import multiprocessing
import os
import weakref
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Callable, Generic, TypeVar

import llvmlite.binding as llvm

from pyflame_rt.errors import BackendError

T = TypeVar("T")


def worker_count(jobs: int | None = None) -> int:
    """How many processes run jobs at once: one per usable core, at most one per job (`jobs`, if
    known); 1 (this process) where `fork` is missing or in a daemon process."""
    if "fork" not in multiprocessing.get_all_start_methods() or multiprocessing.current_process().daemon:
        return 1
    cores = len(os.sched_getaffinity(0))
    return max(1, cores if jobs is None else min(jobs, cores))


class JobPool(Generic[T]):
    """Jobs submitted one by one, their results in submission order (`results`)."""

    def __init__(self, workers: int | None = None):
        self.workers = worker_count() if workers is None else workers
        self._jobs: list[Callable[[], T]] = []
        self._done: dict[int, tuple[bool, object]] = {}  # job index -> (succeeded, result or exception)
        self._running: dict[Connection, tuple[int, BaseProcess]] = {}
        self._started = 0  # jobs [0, _started) have started
        self._finalizer = weakref.finalize(self, _stop, self._running)

    def submit(self, job: Callable[[], T]) -> int:
        """Queue `job`, start it if a worker is free; its index in `results`."""
        self._jobs.append(job)
        if self.workers > 1:
            self._collect(block=False)
            self._start_queued()
        return len(self._jobs) - 1

    def results(self) -> list[T]:
        """Every job's result, waiting for the workers; raises the first failure met."""
        try:
            while len(self._done) < len(self._jobs):
                if self.workers <= 1:
                    self._run_here(len(self._done))
                else:
                    self._start_queued()
                    self._collect(block=True)
                failed = [outcome for ok, outcome in self._done.values() if not ok]
                if failed:
                    raise failed[0]
        finally:
            self.close()
        return [self._done[i][1] for i in range(len(self._jobs))]

    def close(self) -> None:
        """Kill and join the workers still running."""
        _stop(self._running)

    def _run_here(self, index: int) -> None:
        self._done[index] = (True, self._jobs[index]())

    def _start_queued(self) -> None:
        context = multiprocessing.get_context("fork")
        while self._started < len(self._jobs) and len(self._running) < self.workers:
            index = self._started
            receiver, sender = context.Pipe(duplex=False)
            worker = context.Process(target=_work, args=(self._jobs[index], sender), daemon=True)
            gc.freeze()  # the inherited IR stays shared with the parent instead of copied by the collector
            try:
                with llvm.ffi.lib._lock:
                    worker.start()
            finally:
                gc.unfreeze()
            sender.close()
            self._running[receiver] = (index, worker)
            self._started += 1

    def _collect(self, block: bool) -> None:
        for receiver in wait(list(self._running), timeout=None if block else 0):
            index, worker = self._running.pop(receiver)
            try:
                self._done[index] = receiver.recv()
            except (EOFError, OSError):
                worker.join()
                self._done[index] = (False, BackendError(
                    f"a compile worker process died (exit code {worker.exitcode})"))
            except Exception as e:  # a result that does not unpickle here
                self._done[index] = (False, BackendError(f"a compile job's result could not be read: {e}"))
            receiver.close()
            worker.join()


def run_jobs(jobs: list[Callable[[], T]], workers: int | None = None) -> list[T]:
    """The results of `jobs`, in order; `workers` defaults to `worker_count(len(jobs))`."""
    pool = JobPool(worker_count(len(jobs)) if workers is None else workers)
    for job in jobs:
        pool.submit(job)
    return pool.results()


def _work(job: Callable[[], object], sender: Connection) -> None:
    """In a worker: run `job`, send (True, result) or (False, the exception)."""
    try:
        outcome = (True, job())
    except BaseException as e:
        outcome = (False, e)
    try:
        sender.send(outcome)
    except Exception as e:  # an unpicklable result or exception
        sender.send((False, BackendError(f"a compile job's result could not be sent: {e}")))
    sender.close()


def _stop(running: dict[Connection, tuple[int, BaseProcess]]) -> None:
    for receiver, (_, worker) in list(running.items()):
        worker.kill()
        worker.join()
        receiver.close()
    running.clear()
