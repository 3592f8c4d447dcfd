"""The request policy: authentication and per-client rate limits for every protocol
(`AccessPolicy`, used by HTTP and gRPC alike), structured access-log lines (`log_access`), and the
ASGI middleware every HTTP request passes before an endpoint sees it: a request id, the access
policy, the body size limit and body read deadline (the whole body is read here, so a
slow-dripping client costs one deadline, not a worker), and one access-log line."""
from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
import uuid
from dataclasses import dataclass

from pyflame_rt.serving.config import SecurityConfig

access_log = logging.getLogger("pyflame_rt.serving.access")

# Probes and scrapes must work without credentials (Kubernetes, Prometheus).
OPEN_PATHS = frozenset({"/health/live", "/health/ready", "/v2/health/live", "/v2/health/ready", "/metrics"})
REQUEST_ID_HEADER = "x-request-id"


class RateLimiter:
    """A token bucket per client: `rps` tokens a second, at most `burst` saved up."""

    MAX_CLIENTS = 10_000  # beyond this, buckets that are full again are forgotten

    def __init__(self, rps: float, burst: int):
        self.rps, self.burst = rps, burst
        self._buckets: dict[str, tuple[float, float]] = {}

    def allow(self, client: str) -> bool:
        now = time.monotonic()
        tokens, last = self._buckets.get(client, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rps)
        if len(self._buckets) > self.MAX_CLIENTS:
            self._forget_full(now)
        if tokens < 1:
            self._buckets[client] = (tokens, now)
            return False
        self._buckets[client] = (tokens - 1, now)
        return True

    def _forget_full(self, now: float) -> None:
        self._buckets = {c: (t, last) for c, (t, last) in self._buckets.items()
                         if t + (now - last) * self.rps < self.burst}


@dataclass(frozen=True)
class Refusal:
    """Why a request is not served: an HTTP status (gRPC maps it to a status code), a message and
    HTTP headers to send with it."""

    status: int
    message: str
    headers: tuple = ()


class AccessPolicy:
    """Authentication and per-client rate limits, the same for every protocol: `refusal` takes
    the request's headers (HTTP) or metadata (gRPC) with lower-case names."""

    def __init__(self, security: SecurityConfig):
        self.security = security
        self._keys = [k.encode() for k in security.api_keys]
        self._limiter = RateLimiter(security.rate_limit_rps, security.rate_limit_burst) \
            if security.rate_limit_rps > 0 else None

    def refusal(self, headers: dict, address: str, open_path: bool = False) -> Refusal | None:
        """None when the request may be served. `open_path`: a probe or scrape, never refused."""
        if open_path:
            return None
        key = _credential(headers)
        if self._keys:
            if key is None:
                return Refusal(401, "authentication required: send 'Authorization: Bearer KEY' or 'X-API-Key: KEY'",
                               ((b"www-authenticate", b"Bearer"),))
            if not any(hmac.compare_digest(key.encode(), k) for k in self._keys):
                return Refusal(401, "invalid API key", ((b"www-authenticate", b'Bearer error="invalid_token"'),))
        if self._limiter is not None and not self._limiter.allow(key if self._keys else address):  # keys checked
            return Refusal(429, f"rate limit of {self.security.rate_limit_rps:g} requests/s exceeded",
                           ((b"retry-after", b"1"),))
        return None


def log_access(request_id: str, client: str, method: str, path: str, status, start: float) -> None:
    """One structured (JSON) access-log line; `start` is the request's time.perf_counter()."""
    if access_log.isEnabledFor(logging.INFO):
        access_log.info(json.dumps({"request_id": request_id, "client": client, "method": method, "path": path,
                                    "status": status, "duration_ms": round(1000 * (time.perf_counter() - start), 3)}))


class PolicyMiddleware:
    def __init__(self, app, security: SecurityConfig, log_access: bool = True):
        self.app = app
        self.security = security
        self.log_access = log_access
        self._policy = AccessPolicy(security)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        request_id = headers.get(REQUEST_ID_HEADER) or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        start, status = time.perf_counter(), [0]

        async def send_with_id(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        client = scope.get("client") or ("?", 0)
        try:
            refusal = self._policy.refusal(headers, client[0], scope["path"] in OPEN_PATHS)
            if refusal is None:
                body, refusal = await self._read_body(headers, receive)
            if refusal is not None:
                await _respond(send_with_id, refusal)
            else:
                await self.app(scope, _replay(body, receive), send_with_id)
        finally:
            if self.log_access:
                log_access(request_id, f"{client[0]}:{client[1]}", scope["method"], scope["path"], status[0], start)

    async def _read_body(self, headers: dict, receive) -> tuple[bytes, Refusal | None]:
        limit = self.security.max_body_bytes
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return b"", Refusal(413, f"request body of {declared} bytes exceeds the limit of {limit} bytes")
        chunks, size, start = [], 0, time.monotonic()
        while True:
            message = await self._receive_in_time(receive, start, size)
            if message is None:
                return b"", Refusal(408, f"request body arriving slower than {self.security.min_body_rate:g} bytes/s "
                                  f"after {self.security.body_timeout_s:g} s")
            if message["type"] == "http.disconnect":
                return b"", Refusal(400, "client disconnected before sending the whole body")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return b"", Refusal(413, f"request body exceeds the limit of {limit} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks), None

    async def _receive_in_time(self, receive, start: float, size: int):
        """The next message, or None once the body is too slow: past `body_timeout_s` and below
        `min_body_rate` on average. The rate, not the time alone, decides, because a busy server
        reads bodies late; their bytes wait in the socket and then arrive at once."""
        task = asyncio.ensure_future(receive())
        deadline = start + self.security.body_timeout_s
        while True:
            done, _ = await asyncio.wait({task}, timeout=max(0.0, deadline - time.monotonic()))
            if not done:
                await asyncio.sleep(0)  # data buffered during a stall is delivered before timers
            if task.done():
                return task.result()
            elapsed = time.monotonic() - start
            if size < self.security.min_body_rate * elapsed:
                task.cancel()
                return None
            deadline = start + size / self.security.min_body_rate


def _credential(headers: dict) -> str | None:
    auth = headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return headers.get("x-api-key")


def _replay(body: bytes, receive):
    """An ASGI receive that yields the already-read body once, then waits on the connection."""
    sent = False

    async def replay():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _respond(send, refusal: Refusal) -> None:
    body = json.dumps({"error": refusal.message}).encode()
    await send({"type": "http.response.start", "status": refusal.status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close"), *refusal.headers]})
    await send({"type": "http.response.body", "body": body})
