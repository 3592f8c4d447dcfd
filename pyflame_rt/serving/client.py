"""HTTP clients of the model server (httpx): ModelClient (blocking) and AsyncModelClient, speaking
the guide's v1 API or the Open Inference Protocol v2 (binary tensor data) for inference.

Both build requests and read responses through the same functions; only the transport differs.
Connection errors, 429 and 5xx responses are retried with exponential backoff; other 4xx are not."""
from __future__ import annotations

import asyncio
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx
import numpy as np

from pyflame_rt.errors import ValidationError
from pyflame_rt.serving.protocol import (
    V2_DTYPES, V2_HEADER_LENGTH, RequestError, decode_v1_tensor, encode_v1_tensor, little_endian_bytes, parse_json,
    tensor_from_bytes, v2_datatype,
)

@dataclass
class InferResponse:
    success: bool
    outputs: dict[str, np.ndarray] = field(default_factory=dict)
    latency_ms: float = 0.0
    error_message: str = ""
    status_code: int = 0
    request_id: str = ""
    model_version: str = ""


@dataclass
class TensorInfo:
    name: str
    dtype: str
    shape: list


@dataclass
class ModelInfo:
    name: str
    ready: bool
    versions: list[str]


@dataclass
class ModelMetadata:
    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]


@dataclass(frozen=True)
class _Call:
    method: str
    path: str
    content: bytes | None = None
    headers: dict | None = None


def _infer_call(protocol: str, model: str, inputs: dict, outputs, request_id: str, version: str | None) -> _Call:
    inputs = {k: np.asarray(v) for k, v in inputs.items()}
    if protocol == "v1":
        doc = {"request_id": request_id, "inputs": {k: encode_v1_tensor(v) for k, v in inputs.items()}}
        if outputs:
            doc["outputs"] = list(outputs)
        query = f"?version={version}" if version else ""
        return _Call("POST", f"/v1/models/{model}/infer{query}", json.dumps(doc).encode(),
                     {"content-type": "application/json"})
    blobs = [little_endian_bytes(v) for v in inputs.values()]
    doc = {"id": request_id, "parameters": {"binary_data_output": True},
           "inputs": [{"name": k, "shape": list(v.shape), "datatype": v2_datatype(v.dtype),
                       "parameters": {"binary_data_size": len(b)}} for (k, v), b in zip(inputs.items(), blobs)]}
    if outputs:
        doc["outputs"] = [{"name": o, "parameters": {"binary_data": True}} for o in outputs]
    header = json.dumps(doc).encode()
    path = f"/v2/models/{model}" + (f"/versions/{version}" if version else "") + "/infer"
    return _Call("POST", path, header + b"".join(blobs),
                 {"content-type": "application/octet-stream", V2_HEADER_LENGTH: str(len(header))})


def _infer_response(protocol: str, r: httpx.Response, latency_ms: float) -> InferResponse:
    if r.status_code != 200:
        return InferResponse(False, latency_ms=latency_ms, error_message=_error_text(r), status_code=r.status_code)
    try:
        if protocol == "v1":
            doc = parse_json(r.content, "response")
            outputs = {k: decode_v1_tensor(v | {"name": k}) for k, v in doc["outputs"].items()}
            return InferResponse(True, outputs, latency_ms, "", 200, doc.get("request_id", ""),
                                 doc.get("model_version", ""))
        return _v2_response(r, latency_ms)
    except (RequestError, KeyError, TypeError, ValueError) as e:
        return InferResponse(False, latency_ms=latency_ms, error_message=f"malformed response: {e}", status_code=200)


def _v2_response(r: httpx.Response, latency_ms: float) -> InferResponse:
    length = r.headers.get(V2_HEADER_LENGTH)
    n = int(length) if length is not None else len(r.content)
    doc, blob, offset, outputs = parse_json(r.content[:n], "response"), r.content[n:], 0, {}
    for o in doc["outputs"]:
        dtype = np.dtype(V2_DTYPES[o["datatype"]])
        size = (o.get("parameters") or {}).get("binary_data_size")
        if size is None:
            outputs[o["name"]] = np.asarray(o["data"], dtype).reshape(o["shape"])
            continue
        outputs[o["name"]] = tensor_from_bytes(blob[offset:offset + size], dtype, tuple(o["shape"]), o["name"])
        offset += size
    return InferResponse(True, outputs, latency_ms, "", 200, doc.get("id", ""), doc.get("model_version", ""))


def _error_text(r: httpx.Response) -> str:
    try:
        return str(r.json().get("error", r.text))
    except ValueError:
        return r.text or f"HTTP {r.status_code}"


def _retryable(r: httpx.Response | None) -> bool:
    return r is None or r.status_code == 429 or r.status_code >= 500


def _metadata(doc: dict) -> ModelMetadata:
    def tensors(items):
        return [TensorInfo(t["name"], t.get("dtype") or V2_DTYPES.get(t.get("datatype"), ""), t["shape"])
                for t in items]

    return ModelMetadata(doc["name"], doc.get("versions", []), doc.get("platform", ""),
                         tensors(doc["inputs"]), tensors(doc["outputs"]))


class _Settings:
    def __init__(self, url: str, timeout: float, protocol: str, retries: int, backoff_s: float, api_key: str | None):
        if protocol not in ("v1", "v2"):
            raise ValidationError(f"protocol must be 'v1' or 'v2', got {protocol!r}")
        self.url, self.timeout, self.protocol = url.rstrip("/"), timeout, protocol
        self.retries, self.backoff_s = retries, backoff_s
        self.headers = {"authorization": f"Bearer {api_key}"} if api_key else {}

    def backoffs(self):
        """The retry policy's waits, one per attempt: backoff_s, 2*backoff_s, ... seconds before
        the next attempt, then None at the last attempt (whose outcome stands)."""
        yield from (self.backoff_s * 2 ** attempt for attempt in range(self.retries))
        yield None

    def metadata_path(self, model: str, version: str | None) -> str:
        if self.protocol == "v1":
            return f"/v1/models/{model}" + (f"?version={version}" if version else "")
        return f"/v2/models/{model}" + (f"/versions/{version}" if version else "")


def _model_list(r: httpx.Response) -> list[ModelInfo]:
    r.raise_for_status()
    return [ModelInfo(m["name"], m["ready"], m["versions"]) for m in r.json()["models"]]


def _model_metadata(r: httpx.Response) -> ModelMetadata:
    r.raise_for_status()
    return _metadata(r.json())


class ModelClient:
    """Blocking client. `retries` extra attempts on connection errors, 429 and 5xx, after
    backoff_s, 2*backoff_s, ... seconds."""

    def __init__(self, url: str, timeout: float = 30.0, protocol: str = "v1", retries: int = 2,
                 backoff_s: float = 0.05, api_key: str | None = None, verify=True):
        self._s = _Settings(url, timeout, protocol, retries, backoff_s, api_key)
        self._http = httpx.Client(base_url=self._s.url, timeout=timeout, headers=self._s.headers, verify=verify)

    def _send(self, call: _Call) -> httpx.Response:
        for wait in self._s.backoffs():
            try:
                r = self._http.request(call.method, call.path, content=call.content, headers=call.headers)
                if wait is None or not _retryable(r):
                    return r
            except httpx.TransportError:
                if wait is None:
                    raise
            time.sleep(wait)

    def is_live(self) -> bool:
        return self._probe("/health/live")

    def is_ready(self) -> bool:
        return self._probe("/health/ready")

    def _probe(self, path: str) -> bool:
        try:
            return self._http.get(path).status_code == 200
        except httpx.TransportError:
            return False

    def wait_for_ready(self, timeout: float = 60.0, interval_s: float = 0.1) -> bool:
        deadline = time.monotonic() + timeout
        while not self.is_ready():
            if time.monotonic() >= deadline:
                return False
            time.sleep(interval_s)
        return True

    def list_models(self) -> list[ModelInfo]:
        return _model_list(self._send(_Call("GET", "/v1/models")))

    def get_model_metadata(self, model: str, version: str | None = None) -> ModelMetadata:
        return _model_metadata(self._send(_Call("GET", self._s.metadata_path(model, version))))

    def infer(self, model: str, inputs: dict, outputs: list[str] | None = None, request_id: str = "",
              version: str | None = None) -> InferResponse:
        call = _infer_call(self._s.protocol, model, inputs, outputs, request_id, version)
        start = time.perf_counter()
        try:
            r = self._send(call)
        except httpx.HTTPError as e:
            return InferResponse(False, latency_ms=1000 * (time.perf_counter() - start), error_message=str(e))
        return _infer_response(self._s.protocol, r, 1000 * (time.perf_counter() - start))

    def infer_batch(self, model: str, batch_inputs: list[dict], max_workers: int = 4, **kwargs) -> list[InferResponse]:
        with ThreadPoolExecutor(max_workers) as pool:
            return list(pool.map(lambda inputs: self.infer(model, inputs, **kwargs), batch_inputs))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "ModelClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class AsyncModelClient:
    """The asyncio client; the same methods as ModelClient, awaited."""

    def __init__(self, url: str, timeout: float = 30.0, protocol: str = "v1", retries: int = 2,
                 backoff_s: float = 0.05, api_key: str | None = None, verify=True):
        self._s = _Settings(url, timeout, protocol, retries, backoff_s, api_key)
        self._http = httpx.AsyncClient(base_url=self._s.url, timeout=timeout, headers=self._s.headers, verify=verify)

    async def _send(self, call: _Call) -> httpx.Response:
        for wait in self._s.backoffs():
            try:
                r = await self._http.request(call.method, call.path, content=call.content, headers=call.headers)
                if wait is None or not _retryable(r):
                    return r
            except httpx.TransportError:
                if wait is None:
                    raise
            await asyncio.sleep(wait)

    async def is_live(self) -> bool:
        return await self._probe("/health/live")

    async def is_ready(self) -> bool:
        return await self._probe("/health/ready")

    async def _probe(self, path: str) -> bool:
        try:
            return (await self._http.get(path)).status_code == 200
        except httpx.TransportError:
            return False

    async def wait_for_ready(self, timeout: float = 60.0, interval_s: float = 0.1) -> bool:
        deadline = time.monotonic() + timeout
        while not await self.is_ready():
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(interval_s)
        return True

    async def list_models(self) -> list[ModelInfo]:
        return _model_list(await self._send(_Call("GET", "/v1/models")))

    async def get_model_metadata(self, model: str, version: str | None = None) -> ModelMetadata:
        return _model_metadata(await self._send(_Call("GET", self._s.metadata_path(model, version))))

    async def infer(self, model: str, inputs: dict, outputs: list[str] | None = None, request_id: str = "",
                    version: str | None = None) -> InferResponse:
        call = _infer_call(self._s.protocol, model, inputs, outputs, request_id, version)
        start = time.perf_counter()
        try:
            r = await self._send(call)
        except httpx.HTTPError as e:
            return InferResponse(False, latency_ms=1000 * (time.perf_counter() - start), error_message=str(e))
        return _infer_response(self._s.protocol, r, 1000 * (time.perf_counter() - start))

    async def infer_batch(self, model: str, batch_inputs: list[dict], max_concurrent: int = 10,
                          **kwargs) -> list[InferResponse]:
        gate = asyncio.Semaphore(max_concurrent)

        async def one(inputs):
            async with gate:
                return await self.infer(model, inputs, **kwargs)

        return list(await asyncio.gather(*(one(i) for i in batch_inputs)))

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> "AsyncModelClient":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()
