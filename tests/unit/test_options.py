"""Options in one module: every options / config class lives in pyflame_rt/options.py (the serving
package's in pyflame_rt/serving/config.py), and the
names the public API already exposed elsewhere are the same classes."""
from __future__ import annotations

import ast

import pyflame_rt
from pyflame_rt import cache, opt, options
from test_import_graph import package_modules

OPTION_SUFFIXES = ("Options", "Config")


# the serving package (which the compiler and runtime never import) keeps its configs in one module
OPTION_MODULES = ("pyflame_rt.options", "pyflame_rt.serving.config")


def test_every_option_class_is_defined_in_options():
    elsewhere = [f"{name}.{node.name}" for name, path in package_modules().items()
                 if name not in OPTION_MODULES
                 for node in ast.walk(ast.parse(path.read_text()))
                 if isinstance(node, ast.ClassDef) and node.name.endswith(OPTION_SUFFIXES)]
    assert elsewhere == []


def test_public_names_are_the_options_classes():
    assert cache.CacheConfig is options.CacheConfig
    assert cache.KernelCacheConfig is options.KernelCacheConfig
    assert opt.PassManagerConfig is options.PassManagerConfig
    assert pyflame_rt.SessionOptions is options.SessionOptions
    assert pyflame_rt.batching.BatchConfig is options.BatchConfig
    assert pyflame_rt.streaming.AsyncOptions is options.AsyncOptions
    assert pyflame_rt.memory.PoolConfig is options.PoolConfig


def test_kernel_cache_defaults_beside_the_compile_cache(monkeypatch, tmp_path):
    monkeypatch.delenv(options.KERNEL_ENV_DIR, raising=False)
    monkeypatch.setenv(options.ENV_DIR, str(tmp_path))
    assert options.KernelCacheConfig().resolved_dir() == str(tmp_path / "kernels")
    assert options.KernelCacheConfig().max_entries > options.CacheConfig().max_entries
