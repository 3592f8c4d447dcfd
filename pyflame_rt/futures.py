"""`RequestFuture`: the future of a request queued in the runtime (AsyncSession, the batchers).

A `concurrent.futures.Future` that asyncio code can also `await`. `cancel()` asks the runtime first:
only a request the runtime still holds can be cancelled, and the future then ends cancelled (its
`result()` raises `concurrent.futures.CancelledError`). The runtime's thread resolves the others.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from typing import Callable

_log = logging.getLogger("pyflame_rt")

OnComplete = Callable[[int, bool, dict, "BaseException | None"], None]


class RequestFuture(concurrent.futures.Future):
    def __init__(self, request_id: int, cancel_request: Callable[[int], bool]):
        super().__init__()
        self.request_id = request_id
        self._cancel_request = cancel_request

    def cancel(self) -> bool:
        if self.done() or not self._cancel_request(self.request_id):
            return self.cancelled()
        return super().cancel()

    def __await__(self):
        return asyncio.wrap_future(self).__await__()


def settle(future: RequestFuture | None, result=None, error: BaseException | None = None) -> bool:
    """Set the request's result (or exception); False if it was cancelled meanwhile."""
    if future is None:
        return True
    try:
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)
    except concurrent.futures.InvalidStateError:
        return False
    return True


def mark_cancelled(future: RequestFuture | None) -> None:
    """End a request the runtime dropped (cancelled) without asking the runtime again."""
    if future is not None:
        concurrent.futures.Future.cancel(future)


def notify(on_complete: OnComplete | None, request_id: int, success: bool, outputs: dict,
           error: BaseException | None) -> None:
    """Call a request's on_complete(request_id, success, outputs, error); its errors are logged."""
    if on_complete is None:
        return
    try:
        on_complete(request_id, success, outputs, error)
    except Exception:
        _log.exception("on_complete callback of request %d raised", request_id)
