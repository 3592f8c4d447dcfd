"""Artifact loading by memory mapping, and the compile cache behind opening `.onnx` models.

`MMapLoader` maps `.pfm` files (zero copy); sessions that open the same unchanged
file share one mapping and its checksum verification. `CompileCache` keys a
compiled artifact by sha256(model bytes, compile options, compiler version and sources,
artifact format, target CPU and features), stores it as `<key>.pfm` in the
cache directory and evicts by TTL, then least-recently-used, down to the
entry and size limits.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.util
import json
import os
import threading
import time
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyflame_rt import __version__, artifact
from pyflame_rt.compiled_model import CompiledModel
from pyflame_rt.errors import PyFlameRTError, ValidationError
from pyflame_rt.mapped_file import MappedFile
from pyflame_rt.targets.cpu.target import CPUTarget

if TYPE_CHECKING:  # the compiler side (xDSL, onnx) loads only when a model is compiled
    from pyflame_rt.compiler import CompileOptions

__all__ = ["CacheConfig", "CompileCache", "MMapLoader", "MappedFile"]

ENV_DIR = "PYFLAME_RT_CACHE_DIR"


@dataclass
class CacheConfig:
    """dir None: $PYFLAME_RT_CACHE_DIR, else ~/.cache/pyflame-rt. Limits apply after each store."""

    dir: str | None = None
    max_size_bytes: int = 4 << 30
    max_entries: int = 256
    ttl_seconds: float = 30 * 24 * 3600.0
    enabled: bool = True

    def resolved_dir(self) -> str:
        return self.dir or os.environ.get(ENV_DIR) or os.path.join(os.path.expanduser("~"), ".cache", "pyflame-rt")

    def validate(self) -> "CacheConfig":
        if self.dir is not None and not isinstance(self.dir, (str, os.PathLike)):
            raise ValidationError(f"CacheConfig.dir must be a path or None, got {self.dir!r}")
        for name in ("max_size_bytes", "max_entries"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValidationError(f"CacheConfig.{name} must be an int >= 1, got {v!r}")
        if not isinstance(self.ttl_seconds, (int, float)) or self.ttl_seconds <= 0:
            raise ValidationError(f"CacheConfig.ttl_seconds must be > 0, got {self.ttl_seconds!r}")
        return self


@functools.lru_cache(maxsize=1)
def compiler_fingerprint() -> str:
    """sha256 of the compiler's Python sources, so that a code change (new kernels, another
    lowering) invalidates cached artifacts even when the version number stays the same."""
    h = hashlib.sha256()
    for package in ("pyflame_rt", "pyflame_rt.dialects", "pyflame_rt.targets", "pyflame_rt.transforms"):
        for root in importlib.util.find_spec(package).submodule_search_locations:
            for dirpath, dirnames, filenames in os.walk(root):
                dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
                for name in sorted(f for f in filenames if f.endswith(".py")):
                    with open(os.path.join(dirpath, name), "rb") as f:
                        h.update(name.encode() + b"\0" + f.read())
    return h.hexdigest()


class MMapLoader:
    """Load artifacts by mapping them; one mapping (verified once) per unchanged file."""

    def __init__(self):
        self._loaded: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
        self._lock = threading.Lock()

    def load(self, path: str | os.PathLike) -> CompiledModel:
        mf = MappedFile(path)
        with self._lock:
            compiled = self._loaded.get(mf.identity)
        if compiled is None:
            compiled = artifact.from_mapping(mf)
            with self._lock:
                self._loaded[mf.identity] = compiled
        mf.close()
        return compiled


LOADER = MMapLoader()


@dataclass
class CacheResult:
    compiled: CompiledModel
    hit: bool
    path: str | None  # where the artifact is stored (None: too big for the cache)


class CompileCache:
    def __init__(self, config: CacheConfig | None = None, loader: MMapLoader = LOADER):
        self.config = (config or CacheConfig()).validate()
        self.dir = os.fspath(self.config.resolved_dir())
        self.loader = loader

    def key(self, model_bytes: bytes, options: CompileOptions) -> str:
        target = CPUTarget.named(options.cpu)
        settings = dataclasses.asdict(options)
        settings.pop("cpu")  # the resolved target below stands for it ("host" == None)
        settings.pop("verbose_optimization", None)  # logging only: the artifact is the same
        h = hashlib.sha256()
        for part in (__version__, compiler_fingerprint(), str(artifact.FORMAT_VERSION), target.triple, target.cpu,
                     ",".join(target.features), json.dumps(settings, sort_keys=True, default=str)):
            h.update(part.encode() + b"\0")
        h.update(model_bytes)
        return h.hexdigest()

    def path(self, key: str) -> str:
        return os.path.join(self.dir, f"{key}.pfm")

    def open(self, model, model_bytes: bytes, options: CompileOptions, compile_fn) -> CacheResult:
        """The cached artifact for `model`, or `compile_fn(model, options)` stored for next time."""
        key = self.key(model_bytes, options)
        path = self.path(key)
        if os.path.exists(path):
            try:
                compiled = self.loader.load(path)
                os.utime(path)  # recently used: evicted last
                return CacheResult(compiled, True, path)
            except PyFlameRTError:
                _remove(path)  # a corrupt or stale entry is recompiled
        compiled = compile_fn(model, options)
        stored = self._store(path, compiled)
        return CacheResult(compiled, False, path if stored else None)

    def _store(self, path: str, compiled: CompiledModel) -> bool:
        if compiled.weights.nbytes + len(compiled.object_code) > self.config.max_size_bytes:
            return False
        try:
            os.makedirs(self.dir, exist_ok=True)
            artifact.save(compiled, path)
        except OSError:
            return False  # an unwritable cache slows the next open, it does not fail this one
        self.evict()
        return os.path.exists(path)

    def entries(self) -> list[tuple[str, float, int]]:
        """(path, mtime, size) of every cached artifact, oldest first."""
        out = []
        try:
            names = os.listdir(self.dir)
        except OSError:
            return []
        for name in names:
            if name.endswith(".pfm"):
                p = os.path.join(self.dir, name)
                try:
                    st = os.stat(p)
                except OSError:
                    continue
                out.append((p, st.st_mtime, st.st_size))
        return sorted(out, key=lambda e: e[1])

    def evict(self) -> None:
        now = time.time()
        live = []
        for p, mtime, size in self.entries():
            if now - mtime > self.config.ttl_seconds:
                _remove(p)
            else:
                live.append((p, size))
        total = sum(size for _, size in live)
        while live and (len(live) > self.config.max_entries or total > self.config.max_size_bytes):
            p, size = live.pop(0)
            _remove(p)
            total -= size

    def clear(self) -> None:
        for p, _, _ in self.entries():
            _remove(p)


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass
