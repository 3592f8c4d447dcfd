"""Serving configuration: the server (ServerConfig, HttpConfig, SecurityConfig), each model
(ModelConfig with its BatchingConfig and VersionPolicy) and a model folder's config file."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from enum import Enum
from pathlib import Path

from pyflame_rt.errors import ValidationError

MODEL_FILES = ("model.pfm", "model.onnx")  # looked up in this order inside a version folder
CONFIG_FILES = ("config.yaml", "config.yml", "config.json")


class VersionPolicyKind(Enum):
    LATEST = "latest"
    SPECIFIC = "specific"
    ALL = "all"


@dataclass
class VersionPolicy:
    """Which versions of a repository model are served (Triton's version_policy): the newest
    `num_versions`, the listed `versions`, or all."""

    kind: VersionPolicyKind = VersionPolicyKind.LATEST
    num_versions: int = 1
    versions: list[str] = field(default_factory=list)

    def select(self, available: list[str]) -> list[str]:
        """The served subset of `available` (sorted oldest first), oldest first."""
        if self.kind is VersionPolicyKind.ALL:
            return list(available)
        if self.kind is VersionPolicyKind.SPECIFIC:
            return [v for v in available if v in set(self.versions)]
        return list(available[-self.num_versions:])

    @staticmethod
    def parse(value) -> "VersionPolicy":
        """From a config file: {"latest": {"num_versions": N}} | {"latest": N} | {"specific":
        {"versions": [...]}} | {"specific": [...]} | {"all": {}} | "all"."""
        if value is None:
            return VersionPolicy()
        if value == "all":
            return VersionPolicy(VersionPolicyKind.ALL)
        if not isinstance(value, dict) or len(value) != 1:
            raise ValidationError(f"version_policy must be one of latest / specific / all, got {value!r}")
        (kind, arg), = value.items()
        if kind == "all":
            return VersionPolicy(VersionPolicyKind.ALL)
        if kind == "latest":
            n = arg.get("num_versions", 1) if isinstance(arg, dict) else arg
            if not isinstance(n, int) or isinstance(n, bool) or n < 1:
                raise ValidationError(f"version_policy latest needs num_versions >= 1, got {n!r}")
            return VersionPolicy(VersionPolicyKind.LATEST, num_versions=n)
        if kind == "specific":
            versions = arg.get("versions") if isinstance(arg, dict) else arg
            if not isinstance(versions, list) or not versions:
                raise ValidationError(f"version_policy specific needs a non-empty list of versions, got {arg!r}")
            return VersionPolicy(VersionPolicyKind.SPECIFIC, versions=[str(v) for v in versions])
        raise ValidationError(f"unknown version_policy {kind!r}; use latest, specific or all")


@dataclass
class BatchingConfig:
    """Dynamic batching settings (validated now; applied by the runtime's batcher)."""

    enabled: bool = False
    max_batch_size: int = 32
    max_queue_delay_us: int = 5000
    preferred_batch_sizes: list[int] = field(default_factory=list)

    def validate(self) -> "BatchingConfig":
        _check_int("batching.max_batch_size", self.max_batch_size, 1)
        _check_int("batching.max_queue_delay_us", self.max_queue_delay_us, 0)
        for size in self.preferred_batch_sizes:
            _check_int("batching.preferred_batch_sizes", size, 1)
            if size > self.max_batch_size:
                raise ValidationError(f"batching.preferred_batch_sizes: {size} exceeds max_batch_size "
                                      f"{self.max_batch_size}")
        return self


@dataclass
class ModelConfig:
    """One served model. `model_path` is a .pfm or .onnx file; repository models get it from their
    version folders. `max_concurrency` runs of this model at once (Triton's instance count), with
    at most `max_queue_size` more requests waiting (0 = no limit; beyond it: 503), `num_threads`
    worker threads per run (0 = one per core), `request_timeout_ms` (0 = none) per inference;
    `inputs` optionally pins input shapes: name -> dims, -1 for any."""

    name: str = ""
    model_path: str = ""
    version: str = "1"
    enable_batching: bool = False
    max_batch_size: int = 32
    batch_timeout_us: int = 5000
    preferred_batch_sizes: list[int] = field(default_factory=list)
    max_concurrency: int = 1
    max_queue_size: int = 0
    num_threads: int = 0
    request_timeout_ms: int = 0
    version_policy: VersionPolicy = field(default_factory=VersionPolicy)
    inputs: dict[str, list[int]] = field(default_factory=dict)

    @property
    def batching(self) -> BatchingConfig:
        return BatchingConfig(self.enable_batching, self.max_batch_size, self.batch_timeout_us,
                              list(self.preferred_batch_sizes))

    def validate(self) -> "ModelConfig":
        if not self.name or "/" in self.name:
            raise ValidationError(f"model name must be non-empty and contain no '/', got {self.name!r}")
        _check_int("max_concurrency", self.max_concurrency, 1)
        _check_int("max_queue_size", self.max_queue_size, 0)
        _check_int("num_threads", self.num_threads, 0)
        _check_int("request_timeout_ms", self.request_timeout_ms, 0)
        self.batching.validate()
        for name, dims in self.inputs.items():
            if not isinstance(dims, list) or not all(isinstance(d, int) and d >= -1 for d in dims):
                raise ValidationError(f"inputs.{name}: dims must be a list of ints >= -1, got {dims!r}")
        return self

    def with_file(self, path: Path) -> "ModelConfig":
        """This configuration updated from a model folder's config file (YAML or JSON)."""
        import yaml

        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise ValidationError(f"{path}: not valid YAML/JSON: {e}") from None
        if not isinstance(data, dict):
            raise ValidationError(f"{path}: must be a mapping")
        return _apply(self, data, path)


_FILE_KEYS = {"max_concurrency", "max_queue_size", "num_threads", "request_timeout_ms", "inputs"}


def _apply(config: ModelConfig, data: dict, path: Path) -> ModelConfig:
    unknown = set(data) - _FILE_KEYS - {"version_policy", "batching", "instance"}
    if unknown:
        raise ValidationError(f"{path}: unknown key(s) {sorted(unknown)}")
    values = asdict(config) | {k: data[k] for k in _FILE_KEYS & set(data)}
    values["version_policy"] = VersionPolicy.parse(data.get("version_policy"))
    instance = data.get("instance", {})
    if not isinstance(instance, dict):
        raise ValidationError(f"{path}: instance must be a mapping (count, num_threads)")
    values["max_concurrency"] = instance.get("count", values["max_concurrency"])
    values["num_threads"] = instance.get("num_threads", values["num_threads"])
    batching = data.get("batching", {})
    if not isinstance(batching, dict):
        raise ValidationError(f"{path}: batching must be a mapping")
    try:
        parsed = BatchingConfig(**batching).validate()
    except TypeError as e:
        raise ValidationError(f"{path}: batching: {e}") from None
    values |= {"enable_batching": parsed.enabled, "max_batch_size": parsed.max_batch_size,
               "batch_timeout_us": parsed.max_queue_delay_us, "preferred_batch_sizes": parsed.preferred_batch_sizes}
    try:
        return ModelConfig(**values).validate()
    except ValidationError as e:
        raise ValidationError(f"{path}: {e}") from None


@dataclass
class HttpConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    num_workers: int = 1
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None


@dataclass
class GrpcConfig:
    """The Open Inference Protocol v2 over gRPC, beside HTTP (TLS and API keys as for HTTP)."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 8001


@dataclass
class SecurityConfig:
    """Request limits and access control shared by every model. `api_keys` empty = no auth; else a
    request needs `X-API-Key: KEY` or `Authorization: Bearer KEY` (health probes excepted).
    `rate_limit_rps` > 0 limits each client (API key, else address) to that many requests per
    second with bursts of `rate_limit_burst`. A body larger than `max_body_bytes` is refused, and
    so is one still arriving after `body_timeout_s` at less than `min_body_rate` bytes/s on average
    (a slow-dripping client)."""

    api_keys: list[str] = field(default_factory=list)
    max_body_bytes: int = 64 << 20
    body_timeout_s: float = 1.0
    min_body_rate: float = 64 << 10
    rate_limit_rps: float = 0.0
    rate_limit_burst: int = 10


@dataclass
class ServerConfig:
    http: HttpConfig = field(default_factory=HttpConfig)
    grpc: GrpcConfig = field(default_factory=GrpcConfig)
    security: SecurityConfig = field(default_factory=SecurityConfig)
    enable_metrics: bool = True
    access_log: bool = True
    model_dir: str = ""
    models: list[ModelConfig] = field(default_factory=list)
    hot_reload: bool = False
    poll_interval_s: float = 1.0

    def validate(self) -> "ServerConfig":
        _check_int("http.port", self.http.port, 0)
        _check_int("http.num_workers", self.http.num_workers, 1)
        _check_int("grpc.port", self.grpc.port, 0)
        if self.grpc.enabled and self.http.num_workers > 1:
            raise ValidationError("gRPC is served by a single-process server: use http.num_workers 1 with it")
        if (self.http.ssl_certfile is None) != (self.http.ssl_keyfile is None):
            raise ValidationError("TLS needs both http.ssl_certfile and http.ssl_keyfile")
        _check_int("security.max_body_bytes", self.security.max_body_bytes, 1)
        if not self.security.body_timeout_s > 0 or not self.security.min_body_rate > 0 or \
                not self.poll_interval_s > 0:
            raise ValidationError("security.body_timeout_s, security.min_body_rate and poll_interval_s must be > 0")
        if self.security.rate_limit_rps < 0:
            raise ValidationError("security.rate_limit_rps must be >= 0")
        _check_int("security.rate_limit_burst", self.security.rate_limit_burst, 1)
        for model in self.models:
            model.validate()
        return self

    def to_dict(self) -> dict:
        return asdict(self) | {"models": [_model_to_dict(m) for m in self.models]}

    @staticmethod
    def from_dict(data: dict) -> "ServerConfig":
        models = [ModelConfig(**(m | {"version_policy": _policy_from_dict(m["version_policy"])}))
                  for m in data.get("models", [])]
        return ServerConfig(HttpConfig(**data["http"]), GrpcConfig(**data["grpc"]), SecurityConfig(**data["security"]),
                            **{f.name: data[f.name] for f in fields(ServerConfig)
                               if f.name not in ("http", "grpc", "security", "models")}, models=models)


def _model_to_dict(model: ModelConfig) -> dict:
    d = asdict(model)
    d["version_policy"]["kind"] = model.version_policy.kind.value
    return d


def _policy_from_dict(d: dict) -> VersionPolicy:
    return VersionPolicy(VersionPolicyKind(d["kind"]), d["num_versions"], list(d["versions"]))


def _check_int(name: str, value, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValidationError(f"{name} must be an int >= {minimum}, got {value!r}")
