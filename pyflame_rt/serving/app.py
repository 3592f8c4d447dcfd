"""The HTTP application: the guide's v1 REST endpoints and the Open Inference Protocol v2
(KServe v2 / Triton HTTP, with the binary tensor data extension) over one ModelRegistry."""
from __future__ import annotations

import time

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from pyflame_rt.serving.config import ServerConfig
from pyflame_rt.serving.metrics import MetricsRegistry
from pyflame_rt.serving.policy import PolicyMiddleware
from pyflame_rt.serving.protocol import (
    V2_HEADER_LENGTH, RequestError, decode_v1, decode_v2, encode_v1_tensor, encode_v2, v2_datatype, v2_shape,
)
from pyflame_rt.serving.inference import InferenceService
from pyflame_rt.serving.registry import ModelNotFoundError, ModelRegistry
from pyflame_rt.version import __version__

PLATFORM = "pyflame_rt"


def create_app(registry: ModelRegistry, config: ServerConfig, metrics: MetricsRegistry | None = None) -> FastAPI:
    metrics = metrics or MetricsRegistry.instance()
    service = InferenceService(registry, metrics)
    app = FastAPI(title="PyFlameRT model server", version=__version__, docs_url=None, redoc_url=None)

    @app.exception_handler(RequestError)
    async def request_error(request, e: RequestError):
        return JSONResponse({"error": str(e)}, e.status)

    @app.exception_handler(ModelNotFoundError)
    async def not_found(request, e: ModelNotFoundError):
        return JSONResponse({"error": str(e)}, 404)

    @app.exception_handler(RequestValidationError)
    async def bad_parameters(request, e: RequestValidationError):
        return JSONResponse({"error": f"invalid request parameters: {e.errors()}"}, 400)

    def ready() -> bool:
        return bool(registry.list_models())

    # ------------------------------------------------------------ health, metrics
    @app.get("/health/live")
    @app.get("/v2/health/live")
    async def live():
        return {"live": True}

    @app.get("/health/ready")
    @app.get("/v2/health/ready")
    async def health_ready():
        ok = ready()
        return JSONResponse({"ready": ok, "models": registry.list_models()}, 200 if ok else 503)

    @app.get("/metrics")
    async def prometheus():
        if not config.enable_metrics:
            return JSONResponse({"error": "metrics are disabled"}, 404)
        return Response(metrics.export_prometheus(), media_type="text/plain; version=0.0.4; charset=utf-8")

    # ---------------------------------------------------------------------- v1
    @app.get("/v1/models")
    async def v1_models():
        return {"models": [{"name": n, "versions": [mv.version for mv in registry.list_versions(n)], "ready": True}
                           for n in registry.list_models()]}

    @app.get("/v1/models/{model}")
    async def v1_metadata(model: str, version: str | None = None):
        mv = registry.get(model, version)
        return {"name": model, "version": mv.version, "versions": [v.version for v in registry.list_versions(model)],
                "platform": PLATFORM, "ready": mv.ready,
                "inputs": [{"name": t.name, "dtype": t.dtype.name, "shape": t.shape} for t in mv.runner.inputs],
                "outputs": [{"name": t.name, "dtype": t.dtype.name, "shape": t.shape} for t in mv.runner.outputs]}

    @app.get("/v1/models/{model}/stats")
    async def v1_stats(model: str):
        versions = registry.list_versions(model)
        if not versions:
            raise ModelNotFoundError(f"model '{model}' is not loaded")
        return {"name": model, "versions": {mv.version: mv.stats.to_dict() for mv in versions}}

    @app.post("/v1/models/{model}/infer")
    async def v1_infer(model: str, request: Request, version: str | None = None):
        start = time.perf_counter()
        decoded = decode_v1(await request.body())
        mv, outputs = await service.infer(model, version, decoded)
        return {"request_id": decoded.id or request.scope["state"]["request_id"], "model_name": model,
                "model_version": mv.version, "outputs": {k: encode_v1_tensor(v) for k, v in outputs.items()},
                "success": True, "latency_us": int(1e6 * (time.perf_counter() - start))}

    # ---------------------------------------------------------------------- v2
    @app.get("/v2")
    async def v2_server():
        return {"name": "pyflame-rt", "version": __version__, "extensions": ["binary_tensor_data"]}

    @app.get("/v2/models/{model}")
    @app.get("/v2/models/{model}/versions/{version}")
    async def v2_metadata(model: str, version: str | None = None):
        mv = registry.get(model, version)
        return {"name": model, "versions": [v.version for v in registry.list_versions(model)], "platform": PLATFORM,
                "inputs": [_v2_spec(t) for t in mv.runner.inputs], "outputs": [_v2_spec(t) for t in mv.runner.outputs]}

    @app.get("/v2/models/{model}/config")
    @app.get("/v2/models/{model}/versions/{version}/config")
    async def v2_config(model: str, version: str | None = None):
        """Triton's model configuration (JSON form); batching is the model's own (max_batch_size 0)."""
        mv = registry.get(model, version)
        return {"name": model, "platform": PLATFORM, "max_batch_size": 0,
                "instance_group": [{"count": mv.config.max_concurrency, "kind": "KIND_CPU"}],
                "input": [_triton_config_tensor(t) for t in mv.runner.inputs],
                "output": [_triton_config_tensor(t) for t in mv.runner.outputs]}

    @app.post("/v2/repository/index")
    async def v2_repository_index():
        return [{"name": n, "version": mv.version, "state": "READY"}
                for n in registry.list_models() for mv in registry.list_versions(n)]

    @app.get("/v2/models/{model}/ready")
    @app.get("/v2/models/{model}/versions/{version}/ready")
    async def v2_model_ready(model: str, version: str | None = None):
        registry.get(model, version)
        return {"name": model, "ready": True}

    @app.post("/v2/models/{model}/infer")
    @app.post("/v2/models/{model}/versions/{version}/infer")
    async def v2_infer(model: str, request: Request, version: str | None = None):
        decoded = decode_v2(await request.body(), request.headers.get(V2_HEADER_LENGTH))
        mv, outputs = await service.infer(model, version, decoded)
        body, header_length = encode_v2(model, mv.version, decoded.id, outputs, decoded.binary_outputs)
        if header_length is None:
            return Response(body, media_type="application/json")
        return Response(body, media_type="application/octet-stream",
                        headers={V2_HEADER_LENGTH: str(header_length)})

    app.add_middleware(PolicyMiddleware, security=config.security, log_access=config.access_log)
    return app


def _v2_spec(t) -> dict:
    return {"name": t.name, "datatype": v2_datatype(t.dtype), "shape": v2_shape(t.shape)}


def _triton_config_tensor(t) -> dict:
    spec = _v2_spec(t)
    return {"name": t.name, "data_type": f"TYPE_{spec['datatype']}", "dims": spec["shape"]}
