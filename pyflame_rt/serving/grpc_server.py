"""The Open Inference Protocol v2 over gRPC (KServe v2 / Triton's GRPCInferenceService, on the
service definitions tritonclient ships): health, server and model metadata, model readiness and
inference with raw or typed tensor contents. It runs a grpc.aio server on its own event loop in a
background thread and shares the InferenceService (leases, stats, metrics) with the HTTP app."""
from __future__ import annotations

import asyncio
import functools
import threading
import time
import uuid

import grpc
import numpy as np
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

from pyflame_rt.errors import BackendError
from pyflame_rt.serving.config import ServerConfig
from pyflame_rt.serving.inference import InferenceService
from pyflame_rt.serving.policy import REQUEST_ID_HEADER, AccessPolicy, log_access
from pyflame_rt.serving.protocol import (
    InferRequest, RequestError, check_shape, element_count, little_endian_bytes, tensor_from_bytes, v2_datatype,
    v2_dtype, v2_shape,
)
from pyflame_rt.serving.registry import ModelNotFoundError
from pyflame_rt.version import __version__


def _contents_field(dtype: np.dtype) -> str | None:
    """The InferTensorContents field of typed (not raw) values of `dtype`; None: raw only (FP16)."""
    if dtype.kind == "b":
        return "bool_contents"
    if dtype.kind == "f":
        return {4: "fp32_contents", 8: "fp64_contents"}.get(dtype.itemsize)
    wide = dtype.itemsize == 8
    return ("int64_contents" if wide else "int_contents") if dtype.kind == "i" else \
        ("uint64_contents" if wide else "uint_contents")


# HTTP statuses of RequestError and Refusal as gRPC status codes.
_STATUS = {400: grpc.StatusCode.INVALID_ARGUMENT, 401: grpc.StatusCode.UNAUTHENTICATED,
           404: grpc.StatusCode.NOT_FOUND, 429: grpc.StatusCode.RESOURCE_EXHAUSTED,
           503: grpc.StatusCode.UNAVAILABLE, 504: grpc.StatusCode.DEADLINE_EXCEEDED}


def _rpc(method):
    """Runs an RPC under the server's policy, as HTTP requests are: the access policy (API key,
    rate limit per client), one access-log line with the request id (`x-request-id` metadata, else
    a new one), and the server's errors mapped to gRPC status codes."""

    @functools.wraps(method)
    async def wrapper(self, request, context):
        start, status = time.perf_counter(), grpc.StatusCode.OK
        metadata = {k.lower(): v for k, v in context.invocation_metadata() or ()}
        request_id = metadata.get(REQUEST_ID_HEADER) or uuid.uuid4().hex
        peer = context.peer() or "?"
        try:
            refusal = self._policy.refusal(metadata, peer.rsplit(":", 1)[0])
            if refusal is not None:
                raise RequestError(refusal.message, refusal.status)
            return await method(self, request, context)
        except ModelNotFoundError as e:
            status = grpc.StatusCode.NOT_FOUND
            await context.abort(status, str(e))
        except RequestError as e:
            status = _STATUS.get(e.status, grpc.StatusCode.INTERNAL)
            await context.abort(status, str(e))
        except asyncio.CancelledError:  # the client went away
            status = grpc.StatusCode.CANCELLED
            raise
        except BaseException:
            status = grpc.StatusCode.INTERNAL
            raise
        finally:
            if self._log_access:
                log_access(request_id, peer, "grpc", method.__name__, status.name, start)

    return wrapper


class GrpcInferenceService(pb_grpc.GRPCInferenceServiceServicer):
    """ServerLive and ServerReady are probes: open to all, not logged (as /v2/health/* over HTTP)."""

    def __init__(self, service: InferenceService, config: ServerConfig):
        self.service = service
        self.registry = service.registry
        self._policy = AccessPolicy(config.security)
        self._log_access = config.access_log

    async def ServerLive(self, request, context):
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request, context):
        return pb.ServerReadyResponse(ready=bool(self.registry.list_models()))

    @_rpc
    async def ModelReady(self, request, context):
        return pb.ModelReadyResponse(ready=self.registry.has(request.name, request.version or None))

    @_rpc
    async def ServerMetadata(self, request, context):
        return pb.ServerMetadataResponse(name="pyflame-rt", version=__version__, extensions=[])

    @_rpc
    async def ModelMetadata(self, request, context):
        mv = self.registry.get(request.name, request.version or None)

        def tensors(specs):
            return [pb.ModelMetadataResponse.TensorMetadata(name=t.name, datatype=v2_datatype(t.dtype),
                                                            shape=v2_shape(t.shape)) for t in specs]

        versions = [v.version for v in self.registry.list_versions(mv.name)]
        return pb.ModelMetadataResponse(name=mv.name, versions=versions, platform="pyflame_rt",
                                        inputs=tensors(mv.runner.inputs), outputs=tensors(mv.runner.outputs))

    @_rpc
    async def ModelInfer(self, request, context):
        decoded = decode_infer_request(request)
        mv, outputs = await self.service.infer(request.model_name, request.model_version or None, decoded)
        response = pb.ModelInferResponse(model_name=mv.name, model_version=mv.version, id=request.id)
        for name, array in outputs.items():
            response.outputs.add(name=name, datatype=v2_datatype(array.dtype), shape=list(array.shape))
            response.raw_output_contents.append(little_endian_bytes(array))
        return response


def decode_infer_request(request) -> InferRequest:
    raw = list(request.raw_input_contents)
    if raw and len(raw) != len(request.inputs):
        raise RequestError(f"{len(raw)} raw_input_contents for {len(request.inputs)} inputs")
    inputs = {}
    for i, t in enumerate(request.inputs):
        where = f"input '{t.name}'"
        dtype, shape = v2_dtype(t.datatype, where), check_shape(list(t.shape), where)
        if raw:
            inputs[t.name] = tensor_from_bytes(raw[i], dtype, shape, where)
            continue
        field = _contents_field(dtype)
        if field is None:
            raise RequestError(f"{where}: {t.datatype} values must come in raw_input_contents")
        values = getattr(t.contents, field)
        if len(values) != element_count(shape):
            raise RequestError(f"{where}: {len(values)} values given, shape {list(shape)} needs {element_count(shape)}")
        inputs[t.name] = np.asarray(values, dtype).reshape(shape)
    if not inputs:
        raise RequestError("the request has no inputs")
    return InferRequest(request.id, inputs, [o.name for o in request.outputs] or None, set())


class GrpcServer:
    """A grpc.aio server in a background thread with its own event loop."""

    def __init__(self, service: InferenceService, config: ServerConfig):
        self._servicer = GrpcInferenceService(service, config)
        self._config = config
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="pyflame-serve-grpc", daemon=True)
        self._server = None
        self.port = 0

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result()

    async def _start(self) -> None:
        http, grpc_config = self._config.http, self._config.grpc
        server = grpc.aio.server(options=[("grpc.max_receive_message_length", self._config.security.max_body_bytes),
                                          ("grpc.max_send_message_length", -1), ("grpc.so_reuseport", 0)])
        pb_grpc.add_GRPCInferenceServiceServicer_to_server(self._servicer, server)
        address = f"{grpc_config.host}:{grpc_config.port}"
        if http.ssl_certfile:
            with open(http.ssl_keyfile, "rb") as key, open(http.ssl_certfile, "rb") as cert:
                credentials = grpc.ssl_server_credentials([(key.read(), cert.read())])
            self.port = server.add_secure_port(address, credentials)
        else:
            self.port = server.add_insecure_port(address)
        if not self.port:
            raise BackendError(f"the gRPC server could not bind {address}")
        await server.start()
        self._server = server

    def stop(self) -> None:
        if self._server is not None:
            asyncio.run_coroutine_threadsafe(self._server.stop(grace=5), self._loop).result()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()
