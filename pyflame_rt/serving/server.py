"""ModelServer: loads the configured models into a ModelRegistry and serves the HTTP app with
uvicorn; ModelServerBuilder: the same configuration, fluently."""
from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Callable

import uvicorn

from pyflame_rt.errors import BackendError, ValidationError
from pyflame_rt.serving.app import create_app
from pyflame_rt.serving.config import ModelConfig, ServerConfig
from pyflame_rt.serving.inference import InferenceService
from pyflame_rt.serving.metrics import MetricsRegistry
from pyflame_rt.serving.registry import ModelRegistry

CONFIG_ENV = "PYFLAME_RT_SERVE_CONFIG"  # how `num_workers` > 1 hands the configuration to each worker


class ModelServer:
    """`start()` serves in a background thread and returns once the port accepts requests;
    `wait()` blocks until `stop()`; `serve_forever()` serves in the calling thread (and with
    http.num_workers > 1, in that many uvicorn worker processes)."""

    def __init__(self, config: ServerConfig, metrics: MetricsRegistry | None = None):
        """`metrics`: where this server counts (default: the process-wide MetricsRegistry.instance())."""
        self.config = config.validate()
        self.metrics = metrics or MetricsRegistry.instance()
        self.registry = ModelRegistry(metrics=self.metrics)
        self._on_ready: list[Callable[[], None]] = []
        self._server: uvicorn.Server | None = None
        self._grpc = None
        self._thread: threading.Thread | None = None

    def on_ready(self, callback: Callable[[], None]) -> None:
        self._on_ready.append(callback)

    def load_models(self) -> None:
        if self.config.model_dir:
            self.registry.load_from_directory(self.config.model_dir)
        for model in self.config.models:
            self.registry.register_model(model)
        if self.config.hot_reload:
            self.registry.enable_hot_reload(True, self.config.poll_interval_s)

    def app(self):
        return create_app(self.registry, self.config, self.metrics)

    def _uvicorn_settings(self) -> dict:
        http = self.config.http
        return dict(host=http.host, port=http.port, ssl_certfile=http.ssl_certfile, ssl_keyfile=http.ssl_keyfile,
                    access_log=False, log_level="warning", timeout_graceful_shutdown=5)

    def start(self) -> None:
        if self.config.http.num_workers != 1:
            raise ValidationError("start() serves in one process; use serve_forever() for http.num_workers > 1")
        self.load_models()
        self._server = uvicorn.Server(uvicorn.Config(self.app(), **self._uvicorn_settings()))
        self._server.install_signal_handlers = lambda: None  # not the main thread
        self._thread = threading.Thread(target=_run_until_exit, args=(self._server,), name="pyflame-serve",
                                        daemon=True)
        self._thread.start()
        while not self._server.started:
            if not self._thread.is_alive():
                self._server = self._thread = None
                self.registry.close()
                raise BackendError(f"the server did not start on {self.config.http.host}:{self.config.http.port}")
            self._thread.join(0.01)
        if self.config.grpc.enabled:
            from pyflame_rt.serving.grpc_server import GrpcServer  # grpcio loads only when gRPC is on

            self._grpc = GrpcServer(InferenceService(self.registry, self.metrics), self.config)
            self._grpc.start()
        for callback in self._on_ready:
            callback()

    @property
    def port(self) -> int:
        """The bound port (the chosen one when http.port is 0)."""
        return self._server.servers[0].sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        scheme = "https" if self.config.http.ssl_certfile else "http"
        return f"{scheme}://{self.config.http.host}:{self.port}"

    def wait(self) -> None:
        if self._thread is not None:
            self._thread.join()

    @property
    def grpc_port(self) -> int:
        """The bound gRPC port (grpc.enabled only)."""
        return self._grpc.port

    def stop(self) -> None:
        if self._grpc is not None:
            self._grpc.stop()
            self._grpc = None
        if self._server is not None:
            self._server.should_exit = True
            self._thread.join()
            self._server = self._thread = None
        self.registry.close()

    def serve_forever(self) -> None:
        workers = self.config.http.num_workers
        if workers == 1:
            previous = signal.signal(signal.SIGTERM, _interrupt)  # before start(): no window without it
            try:
                self.start()
                self.wait()
            except KeyboardInterrupt:
                pass
            finally:
                signal.signal(signal.SIGTERM, previous)
                self.stop()
            return
        self.load_models()  # fails here, not in every worker; and fills the compile cache the workers read
        self.registry.close()
        os.environ[CONFIG_ENV] = json.dumps(self.config.to_dict())
        uvicorn.run(f"{__name__}:app_from_environment", factory=True, workers=workers, **self._uvicorn_settings())

    def __enter__(self) -> "ModelServer":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _interrupt(*_) -> None:
    """SIGTERM (Kubernetes, docker stop) stops the server like Ctrl-C: gracefully."""
    raise KeyboardInterrupt


def _run_until_exit(server: uvicorn.Server) -> None:
    try:
        server.run()
    except SystemExit:  # uvicorn exits when it cannot bind (and logs why); start() reports it
        pass


def app_from_environment():
    """The app of one uvicorn worker process, configured by the parent through CONFIG_ENV."""
    server = ModelServer(ServerConfig.from_dict(json.loads(os.environ[CONFIG_ENV])))
    server.load_models()
    return server.app()


class ModelServerBuilder:
    def __init__(self):
        self._config = ServerConfig()
        self._batching: tuple[int, int] | None = None

    def host(self, host: str) -> "ModelServerBuilder":
        self._config.http.host = host
        return self

    def port(self, port: int) -> "ModelServerBuilder":
        self._config.http.port = port
        return self

    def workers(self, n: int) -> "ModelServerBuilder":
        self._config.http.num_workers = n
        return self

    def enable_metrics(self, enabled: bool = True) -> "ModelServerBuilder":
        self._config.enable_metrics = enabled
        return self

    def model_repository(self, directory: str, hot_reload: bool = False) -> "ModelServerBuilder":
        self._config.model_dir, self._config.hot_reload = str(directory), hot_reload
        return self

    def add_model(self, name: str, path: str, version: str = "1", **settings) -> "ModelServerBuilder":
        self._config.models.append(ModelConfig(name=name, model_path=str(path), version=str(version), **settings))
        return self

    def enable_batching(self, max_batch_size: int = 32, timeout_us: int = 5000) -> "ModelServerBuilder":
        self._batching = (max_batch_size, timeout_us)
        return self

    def api_keys(self, *keys: str) -> "ModelServerBuilder":
        self._config.security.api_keys = list(keys)
        return self

    def tls(self, certfile: str, keyfile: str) -> "ModelServerBuilder":
        self._config.http.ssl_certfile, self._config.http.ssl_keyfile = str(certfile), str(keyfile)
        return self

    def grpc(self, port: int = 8001, host: str = "127.0.0.1") -> "ModelServerBuilder":
        self._config.grpc.enabled, self._config.grpc.port, self._config.grpc.host = True, port, host
        return self

    def rate_limit(self, requests_per_s: float, burst: int = 10) -> "ModelServerBuilder":
        self._config.security.rate_limit_rps, self._config.security.rate_limit_burst = requests_per_s, burst
        return self

    def build(self, metrics: MetricsRegistry | None = None) -> ModelServer:
        if self._batching:
            for model in self._config.models:
                model.enable_batching = True
                model.max_batch_size, model.batch_timeout_us = self._batching
        return ModelServer(self._config, metrics)
