"""Artifact loading into private memory, and the compile cache behind opening `.onnx` models.

`ArtifactLoader` reads a `.pfm` file whole into private memory and verifies it there, so the
session never depends on the file again; sessions that open the same unchanged file (and
key) share one loaded copy. `CompileCache` keys a compiled artifact by sha256(model bytes,
external-data digests, compile options, compiler version and sources, artifact format,
target CPU and features) and stores it as `<key>.pfm` in a private cache directory, signed
with a per-user key kept there and bound to its key (the key is recorded in the header). It
evicts its own entries only, by TTL, then least-recently-used, down to the entry and size
limits. The kernel cache (`KernelCacheConfig`, targets/cpu/kernel_cache.py) is a second
`CompileCache` of the same kind, beside it: one entry per compiled kernel object, keyed by the
kernel's spec. docs/security.md describes the trust model.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.util
import json
import os
import re
import secrets
import stat
import threading
import time
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyflame_rt import artifact
from pyflame_rt.compiled_model import CompiledModel
from pyflame_rt.errors import CacheSecurityError, PyFlameRTError, ValidationError
from pyflame_rt.files import atomic_write, identity, open_regular
from pyflame_rt.mapped_file import MMapAdvice, MMapLoader, MappedFile
from pyflame_rt.options import ENV_DIR, CacheConfig, KernelCacheConfig
from pyflame_rt.targets.cpu.target import CPUTarget
from pyflame_rt.version import __version__

if TYPE_CHECKING:  # the compiler side (xDSL, onnx) loads only when a model is compiled
    from pyflame_rt.compiler import CompileOptions
    from pyflame_rt.options import SessionOptions

__all__ = ["ArtifactLoader", "BinaryCache", "CacheConfig", "CacheEntryInfo", "CompileCache", "KernelCacheConfig",
           "MMapAdvice", "MMapLoader", "MappedFile", "global_cache_config", "set_global_cache_config"]

KEY_FILE = "signing.key"  # the per-user key cache entries are signed with
KEY_BYTES = 32
TOUCH_INTERVAL = 3600.0  # seconds
_ENTRY = re.compile(r"[0-9a-f]{64}\.pfm")


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


class ArtifactLoader:
    """Load verified artifacts into private memory; one loaded copy per unchanged file and key."""

    def __init__(self):
        self._loaded: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
        self._lock = threading.Lock()

    def load(self, path: str | os.PathLike, sign_key: bytes | None = None,
             dir_fd: int | None = None) -> CompiledModel:
        """sign_key: refuse artifacts not signed with it. dir_fd: `path` is relative to it and
        must not be a symlink."""
        where = os.fspath(path)
        fd = open_regular(path, "artifact", dir_fd, follow_symlinks=dir_fd is None)
        try:
            key_id = hashlib.sha256(sign_key).digest() if sign_key is not None else None
            with self._lock:
                compiled = self._loaded.get((identity(os.fstat(fd)), key_id))
            if compiled is None:
                compiled, read_identity = artifact.read(fd, where, sign_key)
                with self._lock:
                    self._loaded[(read_identity, key_id)] = compiled
        finally:
            os.close(fd)
        return compiled


LOADER = ArtifactLoader()


@dataclass
class CacheResult:
    compiled: CompiledModel
    hit: bool
    path: str | None  # where the artifact is stored (None: not stored)


class CompileCache:
    def __init__(self, config: CacheConfig | None = None, loader: ArtifactLoader = LOADER):
        self.config = (config or CacheConfig()).validate()
        self.dir = os.fspath(self.config.resolved_dir())
        self.loader = loader

    def key(self, model_bytes: bytes, options: CompileOptions, external: list[tuple[str, str]] = ()) -> str:
        """external: (location, sha256) of each external-data file (importers.onnx.external_data)."""
        target = CPUTarget.named(options.cpu)
        settings = dataclasses.asdict(options)
        settings.pop("cpu")  # the resolved target below stands for it ("host" == None)
        settings.pop("verbose_optimization", None)  # logging only: the artifact is the same
        settings.pop("kernel_cache", None)  # where kernel objects come from: the artifact computes the same
        h = hashlib.sha256()
        for part in (__version__, compiler_fingerprint(), str(artifact.FORMAT_VERSION), target.triple, target.cpu,
                     ",".join(target.features), json.dumps(settings, sort_keys=True, default=str),
                     json.dumps(sorted(external))):
            h.update(part.encode() + b"\0")
        h.update(model_bytes)
        return h.hexdigest()

    def path(self, key: str) -> str:
        return os.path.join(self.dir, f"{key}.pfm")

    def open(self, model, model_bytes: bytes, options: CompileOptions, compile_fn,
             external: list[tuple[str, str]] = ()) -> CacheResult:
        """The cached artifact for `model`, or `compile_fn(model, options)` stored for next time.
        CacheSecurityError if the directory is not private; a directory that cannot be created
        or opened only costs the cache (the model is compiled and not stored)."""
        key = self.key(model_bytes, options, external)
        try:
            directory = _CacheDir.open(self.dir)
        except OSError:
            return CacheResult(compile_fn(model, options), False, None)
        with directory:
            try:
                sign_key = directory.signing_key()
            except OSError:  # e.g. a read-only directory: no entry can be trusted or stored
                return CacheResult(compile_fn(model, options), False, None)
            name = f"{key}.pfm"
            compiled = self._lookup(directory, name, key, sign_key)
            if compiled is not None:
                return CacheResult(compiled, True, self.path(key))
            compiled = compile_fn(model, options)
            stored = self._store(directory, name, key, compiled, sign_key)
        return CacheResult(compiled, False, self.path(key) if stored else None)

    def lookup(self, key: str) -> CompiledModel | None:
        """The entry stored under `key`, if there is one that verifies (see `open`)."""
        try:
            with _CacheDir.open(self.dir) as directory:
                return self._lookup(directory, f"{key}.pfm", key, directory.signing_key())
        except OSError:
            return None

    def store(self, key: str, compiled: CompiledModel) -> bool:
        """Store `compiled` under `key` (replacing any entry); whether it is now in the cache."""
        try:
            with _CacheDir.open(self.dir) as directory:
                return self._store(directory, f"{key}.pfm", key, compiled, directory.signing_key())
        except OSError:
            return False

    def _lookup(self, directory: "_CacheDir", name: str, key: str, sign_key: bytes) -> CompiledModel | None:
        """The entry `name` if it verifies with the cache's key and was stored under `key`."""
        if not directory.exists(name):
            return None
        try:
            compiled = self.loader.load(name, sign_key, directory.fd)
        except PyFlameRTError:
            return None  # corrupt, stale or planted: compiled again and replaced
        if compiled.header.get("cache_key") != key:
            return None
        directory.touch(name)  # recently used: evicted last
        return compiled

    def _store(self, directory: "_CacheDir", name: str, key: str, compiled: CompiledModel, sign_key: bytes) -> bool:
        if compiled.weights.nbytes + sum(map(len, compiled.objects)) > self.config.max_size_bytes:
            return False
        entry = CompiledModel(dict(compiled.header, cache_key=key), compiled.weights, compiled.objects)
        try:
            artifact.save(entry, name, sign_key, mode=0o600, dir_fd=directory.fd)
        except OSError:
            return False  # an unwritable cache slows the next open, it does not fail this one
        self._evict(directory)
        return directory.exists(name)

    def entries(self) -> list[tuple[str, float, int]]:
        """(path, mtime, size) of every entry of this cache, oldest first."""
        try:
            with _CacheDir.open(self.dir, create=False) as directory:
                return [(os.path.join(self.dir, n), m, s) for n, m, s in directory.entries()]
        except OSError:
            return []

    def evict(self) -> None:
        try:
            with _CacheDir.open(self.dir, create=False) as directory:
                self._evict(directory)
        except OSError:
            pass

    def clear(self) -> None:
        try:
            with _CacheDir.open(self.dir, create=False) as directory:
                for name, _, _ in directory.entries():
                    directory.remove(name)
        except OSError:
            pass

    def _evict(self, directory: "_CacheDir") -> None:
        now = time.time()
        live = []
        for name, mtime, size in directory.entries():
            if now - mtime > self.config.ttl_seconds:
                directory.remove(name)
            else:
                live.append((name, size))
        total = sum(size for _, size in live)
        while live and (len(live) > self.config.max_entries or total > self.config.max_size_bytes):
            name, size = live.pop(0)
            directory.remove(name)
            total -= size


@dataclass(frozen=True)
class CacheEntryInfo:
    key: str
    path: str
    size_bytes: int
    mtime: float
    is_valid: bool  # it verifies with the cache's key and was stored under `key`


class BinaryCache(CompileCache):
    """The guide's name for the compile cache, with its entry-level API. Keys are `CompileCache.key`
    values; values are compiled models (what `InferenceSession` runs), verified on every `get`."""

    def has(self, key: str) -> bool:
        return self.lookup(key) is not None

    def get(self, key: str) -> CompiledModel | None:
        return self.lookup(key)

    def put(self, key: str, compiled: CompiledModel) -> bool:
        if not isinstance(compiled, CompiledModel):
            raise ValidationError(f"BinaryCache.put stores a CompiledModel, got {type(compiled).__name__}")
        return self.store(key, compiled)

    def list_entries(self) -> list[str]:
        """Keys of the entries, least recently used first."""
        return [os.path.basename(path)[:-len(".pfm")] for path, _, _ in self.entries()]

    def entry_count(self) -> int:
        return len(self.entries())

    def total_size(self) -> int:
        return sum(size for _, _, size in self.entries())

    def get_info(self, key: str) -> CacheEntryInfo | None:
        for path, mtime, size in self.entries():
            if path == self.path(key):
                return CacheEntryInfo(key, path, size, mtime, self.has(key))
        return None

    def warmup(self, model_paths, session_options: SessionOptions | None = None) -> list[bool]:
        """Compile every ONNX model not cached yet into this cache, as a session with these options
        would open it (`.pfm` artifacts are verified and loaded). Whether each was already cached."""
        from pyflame_rt.options import SessionOptions
        from pyflame_rt.session import InferenceSession

        options = dataclasses.replace(session_options or SessionOptions(), cache=self.config)
        return [InferenceSession(path, options).cache_hit for path in model_paths]


_global_config: CacheConfig | None = None


def set_global_cache_config(config: CacheConfig | None) -> None:
    """The compile cache sessions use when their SessionOptions.cache is None (None: the default)."""
    global _global_config
    if config is not None and not isinstance(config, CacheConfig):
        raise ValidationError(f"expected a CacheConfig or None, got {type(config).__name__}")
    _global_config = config.validate() if config is not None else None


def global_cache_config() -> CacheConfig:
    return _global_config or CacheConfig()


class _CacheDir:
    """The open cache directory; every file operation is relative to its descriptor, so the
    directory checked is the one used even if its path is swapped afterwards."""

    def __init__(self, path: str, fd: int):
        self.path, self.fd = path, fd

    @classmethod
    def open(cls, path: str, create: bool = True) -> "_CacheDir":
        """Create the directory (mode 0700) if needed; CacheSecurityError unless this user owns it
        and neither group nor others can write it. OSError if it cannot be created or opened."""
        if create:
            parent = os.path.dirname(os.path.abspath(path))
            os.makedirs(parent, exist_ok=True)
            try:
                os.mkdir(path, 0o700)
            except FileExistsError:
                pass
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        st = os.fstat(fd)
        problem = _not_private(st, 0o022, "writable by group or others")
        if problem:
            os.close(fd)
            raise CacheSecurityError(
                f"compile cache directory {path} {problem}; it must belong to this user and be writable "
                f"by no one else (chmod 700 it), or set CacheConfig.dir / ${ENV_DIR} to another directory")
        return cls(path, fd)

    def __enter__(self) -> "_CacheDir":
        return self

    def __exit__(self, *exc) -> None:
        os.close(self.fd)

    def exists(self, name: str) -> bool:
        try:
            os.stat(name, dir_fd=self.fd, follow_symlinks=False)
            return True
        except FileNotFoundError:
            return False

    def touch(self, name: str) -> None:
        """Mark as recently used, at most once per TOUCH_INTERVAL: an hour is precise enough for
        LRU, and an entry left alone keeps its identity, so sessions share one loaded copy."""
        try:
            if time.time() - os.stat(name, dir_fd=self.fd, follow_symlinks=False).st_mtime > TOUCH_INTERVAL:
                os.utime(name, dir_fd=self.fd, follow_symlinks=False)
        except OSError:
            pass

    def remove(self, name: str) -> None:
        try:
            os.unlink(name, dir_fd=self.fd)
        except OSError:
            pass

    def signing_key(self) -> bytes:
        """The per-user key entries are signed with, created on first use."""
        try:
            return self._read_key()
        except FileNotFoundError:
            pass
        try:
            atomic_write(KEY_FILE, [secrets.token_bytes(KEY_BYTES)], 0o600, self.fd, replace=False)
        except FileExistsError:
            pass  # another process created it first: use theirs
        return self._read_key()

    def _read_key(self) -> bytes:
        fd = os.open(KEY_FILE, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=self.fd)
        try:
            st = os.fstat(fd)
            problem = (_not_private(st, 0o077, "accessible to group or others") if stat.S_ISREG(st.st_mode)
                       else "is not a regular file")
            if problem or st.st_size != KEY_BYTES:
                raise CacheSecurityError(
                    f"compile cache signing key {os.path.join(self.path, KEY_FILE)} "
                    f"{problem or f'holds {st.st_size} bytes, not {KEY_BYTES}'}; delete it (a new one is "
                    f"created) or choose another cache directory")
            return os.pread(fd, KEY_BYTES, 0)
        finally:
            os.close(fd)

    def entries(self) -> list[tuple[str, float, int]]:
        """(name, mtime, size) of the cache's own entries, oldest first: regular files named
        `<64 hex digits>.pfm` whose header records that key. Anything else is left alone."""
        out = []
        try:
            names = os.listdir(self.fd)
        except OSError:
            return []
        for name in names:
            if not _ENTRY.fullmatch(name):
                continue
            try:
                st = os.stat(name, dir_fd=self.fd, follow_symlinks=False)
                if stat.S_ISREG(st.st_mode) and self._records_key(name, name[:-4]):
                    out.append((name, st.st_mtime, st.st_size))
            except OSError:
                continue
        return sorted(out, key=lambda e: e[1])

    def _records_key(self, name: str, key: str) -> bool:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=self.fd)
        try:
            return artifact.header_field(fd, "cache_key") == key
        finally:
            os.close(fd)


def _not_private(st: os.stat_result, forbidden_mode: int, meaning: str) -> str:
    """Why a file or directory with this stat is not private to this user ("" if it is)."""
    if st.st_uid != os.geteuid():
        return f"is owned by uid {st.st_uid}, not by this user (uid {os.geteuid()})"
    if st.st_mode & forbidden_mode:
        return f"has mode {stat.S_IMODE(st.st_mode):o} ({meaning})"
    return ""
