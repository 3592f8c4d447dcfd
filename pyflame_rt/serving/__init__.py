"""Model serving: an HTTP server (the guide's v1 REST API and the Open Inference Protocol v2),
a versioned model registry with hot reload, Prometheus metrics and HTTP clients.

The compiler side never imports this package; it needs the `serve` extra (fastapi, uvicorn,
prometheus-client, httpx, PyYAML)."""
from pyflame_rt.serving.client import AsyncModelClient, InferResponse, ModelClient
from pyflame_rt.serving.config import (
    BatchingConfig, GrpcConfig, HttpConfig, ModelConfig, SecurityConfig, ServerConfig, VersionPolicy,
    VersionPolicyKind,
)
from pyflame_rt.serving.metrics import MetricsRegistry
from pyflame_rt.serving.registry import ModelNotFoundError, ModelRegistry, ModelVersion
from pyflame_rt.serving.runner import BatchingRunner, ModelRunner, ThreadPoolRunner
from pyflame_rt.serving.server import ModelServer, ModelServerBuilder

__all__ = [
    "ServerConfig", "HttpConfig", "GrpcConfig", "SecurityConfig", "ModelConfig", "BatchingConfig", "VersionPolicy",
    "VersionPolicyKind", "ModelServer", "ModelServerBuilder", "ModelRegistry", "ModelVersion",
    "ModelNotFoundError", "ModelRunner", "ThreadPoolRunner", "BatchingRunner", "MetricsRegistry", "ModelClient",
    "AsyncModelClient", "InferResponse",
]
