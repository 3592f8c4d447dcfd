"""The compile cache: first open compiles and stores, the second open is a real hit; limits and keys."""
import os
import time

import numpy as np
import pytest

from conftest import assert_close, ort_run
from test_artifact import mlp
from pyflame_rt import InferenceSession, OptLevel, SessionOptions, ValidationError
import pyflame_rt.compiler as compiler
from pyflame_rt.cache import ArtifactLoader, CacheConfig, CompileCache
from pyflame_rt.compiler import CompileOptions


@pytest.fixture
def cache_dir(tmp_path):
    return str(tmp_path / "cache")


def opts(cache_dir, **kw):
    return SessionOptions(cache=CacheConfig(dir=cache_dir, **kw))


def stored(cache_dir):
    """The cache's entries (next to them: its signing key)."""
    return sorted(n for n in os.listdir(cache_dir) if n.endswith(".pfm"))


def test_second_open_is_a_cache_hit_without_compiling(tmp_path, cache_dir, monkeypatch):
    model = mlp()
    path = tmp_path / "m.onnx"
    path.write_bytes(model.SerializeToString())
    first = InferenceSession(str(path), opts(cache_dir))
    assert not first.cache_hit and len(stored(cache_dir)) == 1

    def boom(*a, **k):
        raise AssertionError("a cache hit must not compile")

    monkeypatch.setattr(compiler, "compile_model", boom)  # the session looks it up when it compiles
    for source in (str(path), model.SerializeToString(), model):
        second = InferenceSession(source, opts(cache_dir))
        assert second.cache_hit
        x = np.random.default_rng(0).standard_normal((4, 32)).astype(np.float32)
        assert_close(second.run(None, {"x": x})[0], ort_run(model, {"x": x})[0])


def test_key_covers_model_options_and_cpu(cache_dir):
    cache = CompileCache(CacheConfig(dir=cache_dir))
    a, b = mlp().SerializeToString(), mlp(hidden=48).SerializeToString()
    keys = {cache.key(a, CompileOptions()), cache.key(b, CompileOptions()),
            cache.key(a, CompileOptions(cpu="x86-64-v3")), cache.key(a, CompileOptions(cpu="x86-64-v2"))}
    keys.add(cache.key(a, CompileOptions(opt_level=OptLevel.NONE)))
    assert len(keys) == 5
    assert cache.key(a, CompileOptions()) == cache.key(a, CompileOptions(cpu="host"))
    assert cache.key(a, CompileOptions()) == cache.key(a, CompileOptions(verbose_optimization=True))


def test_key_covers_the_compiler_sources(cache_dir, monkeypatch):
    """New kernels or lowerings at the same version number must not be served stale artifacts."""
    from pyflame_rt import cache as cache_module

    cache = CompileCache(CacheConfig(dir=cache_dir))
    a = mlp().SerializeToString()
    before = cache.key(a, CompileOptions())
    assert len(cache_module.compiler_fingerprint()) == 64
    monkeypatch.setattr(cache_module, "compiler_fingerprint", lambda: "edited sources")
    assert cache.key(a, CompileOptions()) != before


@pytest.mark.slow
def test_a_corrupt_entry_is_recompiled(cache_dir):
    model = mlp()
    InferenceSession(model, opts(cache_dir))
    (entry,) = [os.path.join(cache_dir, n) for n in stored(cache_dir)]
    data = bytearray(open(entry, "rb").read())
    data[-200] ^= 1
    os.remove(entry)  # a new inode, as any writer of a changed file produces
    open(entry, "wb").write(bytes(data))
    sess = InferenceSession(model, opts(cache_dir))
    assert not sess.cache_hit
    assert InferenceSession(model, opts(cache_dir)).cache_hit


@pytest.mark.slow
def test_max_entries_ttl_and_size_evict(cache_dir):
    models = [mlp(hidden=h) for h in (16, 24, 40)]
    for m in models:
        InferenceSession(m, opts(cache_dir, max_entries=2))
    assert len(stored(cache_dir)) == 2
    assert not InferenceSession(models[0], opts(cache_dir, max_entries=2)).cache_hit  # the oldest went first
    cache = CompileCache(CacheConfig(dir=cache_dir, ttl_seconds=60))
    for p, _, _ in cache.entries():
        os.utime(p, (time.time() - 3600, time.time() - 3600))
    cache.evict()
    assert cache.entries() == []
    InferenceSession(models[1], opts(cache_dir, max_size_bytes=1))
    assert stored(cache_dir) == []  # larger than the whole cache: not stored


def test_disabled_cache_and_bad_config(cache_dir):
    assert not InferenceSession(mlp(), opts(cache_dir, enabled=False)).cache_hit
    assert not os.path.exists(cache_dir)
    with pytest.raises(ValidationError, match="max_entries"):
        InferenceSession(mlp(), opts(cache_dir, max_entries=0))
    with pytest.raises(ValidationError, match="cache must be a CacheConfig"):
        InferenceSession(mlp(), SessionOptions(cache="yes"))


def test_loader_shares_one_verified_copy(tmp_path):
    from pyflame_rt import artifact

    p = tmp_path / "m.pfm"
    artifact.save(compiler.compile_model(mlp()), p)
    loader = ArtifactLoader()
    a, b = loader.load(p), loader.load(p)
    assert a is b and a.weights.ctypes.data == b.weights.ctypes.data


def test_an_unusable_cache_directory_does_not_fail_the_open(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache directory should be")
    sess = InferenceSession(mlp(), opts(str(blocker)))
    assert not sess.cache_hit
    assert sess.run(None, {"x": np.ones((2, 32), np.float32)})[0].shape == (2, 10)


def test_binary_cache_guide_api_warmup_has_get_put(tmp_path, cache_dir, monkeypatch):
    import pyflame_rt

    model = mlp()
    path = tmp_path / "m.onnx"
    path.write_bytes(model.SerializeToString())
    config = pyflame_rt.cache.CacheConfig()
    config.cache_dir, config.max_size_bytes = cache_dir, 1 << 30  # the guide's spelling of `dir`
    cache = pyflame_rt.cache.BinaryCache(config)
    assert cache.entry_count() == 0 and cache.list_entries() == []
    assert cache.warmup([str(path)]) == [False]  # compiled and stored
    assert cache.warmup([str(path)]) == [True]
    (key,) = cache.list_entries()
    info = cache.get_info(key)
    assert cache.has(key) and info.is_valid and info.size_bytes == cache.total_size() > 0
    compiled = cache.get(key)
    assert compiled.header["cache_key"] == key and cache.get("0" * 64) is None and not cache.has("0" * 64)
    assert cache.put("1" * 64, compiled) and cache.entry_count() == 2
    with pytest.raises(ValidationError, match="CompiledModel"):
        cache.put("2" * 64, b"not a model")
    # the global config is what sessions without SessionOptions.cache use
    monkeypatch.setattr(pyflame_rt.cache, "_global_config", None)  # restored after the test
    pyflame_rt.cache.set_global_cache_config(config)
    assert InferenceSession(str(path)).cache_hit
    cache.clear()
    assert cache.entry_count() == 0 and cache.get_info(key) is None
