"""The model registry: loaded model versions by name, from explicit files or a Triton-style
repository (DIR/<model>/<version>/model.pfm|model.onnx, optional DIR/<model>/config.yaml), with
version policies, load / unload / reload and hot reload on file changes.

A request holds a lease on the version it runs; a replaced or unloaded version stops taking new
leases at once and is closed when its last lease ends, so a swap fails no request."""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from pyflame_rt.errors import InvalidModelError, PyFlameRTError
from pyflame_rt.serving.config import CONFIG_FILES, MODEL_FILES, ModelConfig
from pyflame_rt.serving.metrics import MetricsRegistry
from pyflame_rt.serving.runner import ModelRunner, runner_for

log = logging.getLogger("pyflame_rt.serving")

RunnerFactory = Callable[[str, ModelConfig], ModelRunner]


class ModelNotFoundError(PyFlameRTError, KeyError):
    """No loaded model (or version) has that name."""

    def __str__(self) -> str:
        return self.args[0]


@dataclass
class ModelStats:
    """Counts of one version's requests; recorded from any protocol's thread."""

    requests: int = 0
    failures: int = 0
    total_latency_s: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def record(self, ok: bool, latency_s: float) -> None:
        with self._lock:
            self.requests += 1
            self.failures += not ok
            self.total_latency_s += latency_s

    def to_dict(self) -> dict:
        ok = self.requests - self.failures
        return {"request_count": self.requests, "success_count": ok, "failure_count": self.failures,
                "avg_latency_ms": 1000 * self.total_latency_s / ok if ok else 0.0}


@dataclass
class ModelVersion:
    """One loaded version; `runner` is valid while the version holds leases or is current."""

    name: str
    version: str
    path: str
    config: ModelConfig
    runner: ModelRunner
    loaded_at: float = field(default_factory=time.time)
    stats: ModelStats = field(default_factory=ModelStats)
    _leases: int = 0
    _retired: bool = False

    @property
    def ready(self) -> bool:
        return not self._retired


def version_key(version: str):
    """Numeric versions in numeric order, before any non-numeric ones (in text order)."""
    return (0, int(version), "") if version.isdigit() else (1, 0, version)


class ModelRegistry:
    def __init__(self, runner_factory: RunnerFactory = runner_for, metrics: MetricsRegistry | None = None):
        self._factory = runner_factory
        self._metrics = metrics or MetricsRegistry.instance()
        self._lock = threading.Lock()
        self._models: dict[str, dict[str, ModelVersion]] = {}
        self._configs: dict[str, ModelConfig] = {}  # how each model name was registered
        self._repositories: dict[str, Path] = {}  # repository models: name -> model folder
        self._snapshots: dict[str, tuple] = {}  # repository models: what their files were when loaded
        self._files: dict[tuple[str, str], tuple] = {}  # explicit models: (name, version) -> file stat
        self._failed: dict[str, tuple] = {}  # repository models: files of the last failed hot reload
        self._loading = threading.RLock()  # one load / unload at a time (the watcher and callers)
        self._on_reload: Callable[[str, str], None] | None = None
        self._watcher: threading.Thread | None = None
        self._stop = threading.Event()

    # ------------------------------------------------------------------ loading
    def register_model(self, config: ModelConfig) -> ModelVersion:
        """Load `config.model_path` as `config.name`@`config.version` (replacing that version)."""
        config.validate()
        with self._loading:
            stat = _stat(Path(config.model_path)) if Path(config.model_path).is_file() else ()
            loaded = self._load(config, config.version, config.model_path)
            self._configs[config.name] = config
            self._files[config.name, config.version] = stat
            self._install(config.name, {config.version: loaded})
        return loaded

    def load_from_path(self, name: str, path: str, version: str = "1") -> ModelVersion:
        return self.register_model(ModelConfig(name=name, model_path=str(path), version=str(version)))

    def load_from_directory(self, directory: str | Path) -> list[str]:
        """Load every model folder of a repository; returns the model names."""
        root = Path(directory)
        if not root.is_dir():
            raise InvalidModelError(f"model repository {root} is not a directory")
        names = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        for name in names:
            self._repositories[name] = root / name
            self.load(name)
        return names

    def load(self, name: str) -> list[str]:
        """(Re)load a repository model: the versions its policy selects, each reloaded only if its
        files changed; versions no longer selected are unloaded. Returns the served versions."""
        folder = self._repositories.get(name)
        if folder is None:
            raise ModelNotFoundError(f"model '{name}' is not in a model repository")
        with self._loading:
            return self._load_repository_model(name, folder)

    def _load_repository_model(self, name: str, folder: Path) -> list[str]:
        snapshot = _snapshot(folder)
        config = self._configs.get(name) or ModelConfig(name=name)
        config_file = _config_file(folder)
        config = config.with_file(config_file) if config_file else replace(config).validate()
        available = sorted((v for v, files in snapshot[1].items() if files), key=version_key)
        wanted = config.version_policy.select(available)
        if not wanted:
            raise InvalidModelError(f"model '{name}' in {folder} has no version folder with one of {MODEL_FILES} "
                                    f"that its version policy selects")
        old = self._snapshots.get(name)
        current = self._models.get(name, {})
        fresh = {}
        try:
            for v in wanted:
                unchanged = old and old[0] == snapshot[0] and old[1].get(v) == snapshot[1][v] and v in current
                if not unchanged:
                    fresh[v] = self._load(config, v, str(folder / v / snapshot[1][v][0]))
        except BaseException:
            for mv in fresh.values():  # all or nothing: the loaded versions stay as they were
                mv.runner.close()
            raise
        self._install(name, fresh, keep=set(wanted))
        self._snapshots[name] = snapshot
        return wanted

    def _load(self, config: ModelConfig, version: str, path: str) -> ModelVersion:
        if not Path(path).is_file():
            raise InvalidModelError(f"model '{config.name}' version {version}: no file {path}")
        runner = self._factory(path, replace(config, version=version))
        return ModelVersion(config.name, version, path, config, runner)

    def _install(self, name: str, fresh: dict[str, ModelVersion], keep: set[str] | None = None) -> None:
        """Make `fresh` current; of the other loaded versions keep those in `keep` (None: all)."""
        with self._lock:
            versions = self._models.get(name, {})
            reloading = bool(versions)
            gone = [mv for v, mv in versions.items() if v in fresh or (keep is not None and v not in keep)]
            versions = {v: mv for v, mv in versions.items() if mv not in gone} | fresh
            self._models[name] = dict(sorted(versions.items(), key=lambda kv: version_key(kv[0])))
        for mv in gone:
            self._retire(mv)
        for v in fresh:
            self._metrics.loaded.labels(name, v).set(1)
            log.info("loaded model %s version %s", name, v)
            if self._on_reload and reloading:
                self._on_reload(name, v)

    def unload(self, name: str, version: str | None = None) -> None:
        with self._loading, self._lock:
            versions = self._models.get(name)
            if versions is None or (version is not None and version not in versions):
                what = f"model '{name}'" + (f" version {version}" if version else "")
                raise ModelNotFoundError(f"{what} is not loaded")
            gone = list(versions.values()) if version is None else [versions.pop(version)]
            if version is None or not versions:
                del self._models[name]
                self._snapshots.pop(name, None)
            for mv in gone:
                self._files.pop((name, mv.version), None)
        for mv in gone:
            self._retire(mv)

    def reload(self, name: str, version: str | None = None) -> None:
        """Load the model's files again and swap them in (in-flight requests finish on the old)."""
        if name in self._repositories:
            with self._loading:
                self._snapshots.pop(name, None)
                self.load(name)
            return
        mv = self.get(name, version)
        self.register_model(replace(mv.config, version=mv.version, model_path=mv.path))

    def _retire(self, mv: ModelVersion) -> None:
        with self._lock:
            mv._retired = True
            idle = mv._leases == 0
        self._metrics.loaded.labels(mv.name, mv.version).set(0)
        if idle:
            mv.runner.close()

    # ------------------------------------------------------------------ access
    def has(self, name: str, version: str | None = None) -> bool:
        with self._lock:
            versions = self._models.get(name, {})
            return bool(versions) and (version is None or version in versions)

    def get(self, name: str, version: str | None = None) -> ModelVersion:
        """The given version, or the latest when None."""
        with self._lock:
            versions = self._models.get(name)
            if not versions:
                raise ModelNotFoundError(f"model '{name}' is not loaded; loaded models: {sorted(self._models)}")
            if version is None:
                return versions[next(reversed(versions))]
            if version not in versions:
                raise ModelNotFoundError(f"model '{name}' has no loaded version '{version}'; "
                                         f"loaded versions: {list(versions)}")
            return versions[version]

    def get_latest(self, name: str) -> ModelVersion:
        return self.get(name)

    def list_versions(self, name: str) -> list[ModelVersion]:
        with self._lock:
            return list(self._models.get(name, {}).values())

    def list_models(self) -> list[str]:
        with self._lock:
            return sorted(self._models)

    @contextmanager
    def lease(self, name: str, version: str | None = None) -> Iterator[ModelVersion]:
        """The version to run one request on, kept open until the block ends."""
        while True:
            mv = self.get(name, version)
            with self._lock:
                if not mv._retired:  # else swapped out between get and here: look again
                    mv._leases += 1
                    break
        try:
            yield mv
        finally:
            with self._lock:
                mv._leases -= 1
                close = mv._retired and mv._leases == 0
            if close:
                mv.runner.close()

    # --------------------------------------------------------------- hot reload
    def set_reload_callback(self, callback: Callable[[str, str], None] | None) -> None:
        self._on_reload = callback

    def enable_hot_reload(self, enabled: bool = True, interval_s: float = 1.0) -> None:
        """Poll the repository folders and explicit model files every `interval_s` and reload the
        models whose files changed."""
        if not enabled:
            self._stop_watcher()
            return
        if self._watcher is None:
            self._stop.clear()
            self._watcher = threading.Thread(target=self._watch, args=(interval_s,), daemon=True,
                                             name="pyflame-serve-reload")
            self._watcher.start()

    def _watch(self, interval_s: float) -> None:
        while not self._stop.wait(interval_s):
            self.poll()

    def poll(self) -> None:
        """One hot-reload check of every model (a failed load keeps the loaded versions)."""
        for name, folder in list(self._repositories.items()):
            snapshot = _snapshot(folder)
            if snapshot != self._snapshots.get(name) and snapshot != self._failed.get(name):
                if not self._logged(self.load, name):
                    self._failed[name] = snapshot  # retried once the files change again
        for (name, version), stat in list(self._files.items()):
            mv = self._loaded(name, version)
            if mv is not None and Path(mv.path).is_file() and _stat(Path(mv.path)) != stat:
                if not self._logged(self.reload, name, version):
                    self._files[name, version] = _stat(Path(mv.path))

    def _loaded(self, name: str, version: str) -> ModelVersion | None:
        with self._lock:
            return self._models.get(name, {}).get(version)

    @staticmethod
    def _logged(load: Callable, name: str, *args) -> bool:
        try:
            load(name, *args)
            return True
        except (PyFlameRTError, OSError) as e:
            log.error("hot reload of model %s failed, keeping the loaded versions: %s", name, e)
            return False

    def _stop_watcher(self) -> None:
        if self._watcher is not None:
            self._stop.set()
            self._watcher.join()
            self._watcher = None

    def close(self) -> None:
        self._stop_watcher()
        for name in self.list_models():
            self.unload(name)


def _config_file(folder: Path) -> Path | None:
    return next((folder / f for f in CONFIG_FILES if (folder / f).is_file()), None)


def _stat(path: Path) -> tuple:
    st = path.stat()
    return path.name, st.st_mtime_ns, st.st_size


def _snapshot(folder: Path) -> tuple:
    """(config file stat, {version: model file stat or ()}): what a hot reload compares."""
    config = _config_file(folder)
    versions = {}
    if folder.is_dir():
        for sub in folder.iterdir():
            if sub.is_dir() and not sub.name.startswith("."):
                model = next((sub / f for f in MODEL_FILES if (sub / f).is_file()), None)
                versions[sub.name] = _stat(model) if model else ()
    return (_stat(config) if config else (), versions)


__all__ = ["ModelRegistry", "ModelVersion", "ModelStats", "ModelNotFoundError"]
