"""Options in one module: every options / config class lives in pyflame_rt/options.py (the serving
package's in pyflame_rt/serving/config.py), and the
names the public API already exposed elsewhere are the same classes."""
from __future__ import annotations

import ast

import pytest

import pyflame_rt
from pyflame_rt import DType, ValidationError, cache, opt, options
from pyflame_rt.options import CalibrationMethod, QuantConfig, QuantGranularity, QuantMode
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
    assert pyflame_rt.quantization.QuantConfig is options.QuantConfig
    assert pyflame_rt.memory.PoolConfig is options.PoolConfig


def test_kernel_cache_defaults_beside_the_compile_cache(monkeypatch, tmp_path):
    monkeypatch.delenv(options.KERNEL_ENV_DIR, raising=False)
    monkeypatch.setenv(options.ENV_DIR, str(tmp_path))
    assert options.KernelCacheConfig().resolved_dir() == str(tmp_path / "kernels")
    assert options.KernelCacheConfig().max_entries > options.CacheConfig().max_entries


# ------------------------------------------------------------ QuantConfig (docs/quantization.md)
def test_factories_set_the_guide_fields():
    assert (QuantConfig.fp16().mode, QuantConfig.fp16().weight_dtype) == (QuantMode.FP16, DType.FLOAT16)
    assert QuantConfig.bfloat16().activation_dtype is DType.BFLOAT16
    dyn = QuantConfig.dynamic_int8()
    assert (dyn.mode, dyn.weight_dtype, dyn.activation_dtype) == (QuantMode.DynamicInt8, DType.INT8, DType.UINT8)
    static = QuantConfig.static_int8(calibration_samples=32)
    assert (static.mode, static.calibration_samples) == (QuantMode.StaticInt8, 32)


def test_fields_are_set_as_the_guide_sets_them():
    config = QuantConfig()
    config.mode = QuantMode.StaticInt8
    config.weight_dtype = DType.Int8
    config.activation_dtype = DType.Int8
    config.granularity = QuantGranularity.PerChannel
    config.calibration_method = CalibrationMethod.Entropy
    config.symmetric = False
    config.exclude_ops = ["Softmax", "LayerNormalization"]
    assert config.validated() is config


def test_names_are_normalized():
    config = QuantConfig(mode="int8-static", granularity="per_channel", calibration_method="percentile",
                         weight_dtype="int8", activation_dtype="uint8").validated()
    assert (config.mode, config.granularity, config.calibration_method) == (
        QuantMode.StaticInt8, QuantGranularity.PerChannel, CalibrationMethod.Percentile)
    assert config.activation_dtype is DType.UINT8
    assert QuantMode.parse("bf16") is QuantMode.BFloat16


@pytest.mark.parametrize("change, message", [
    ({"mode": "int4"}, "invalid QuantMode"),
    ({"calibration_method": "mse"}, "invalid CalibrationMethod"),
    ({"granularity": "per_row"}, "invalid QuantGranularity"),
    ({"weight_dtype": DType.FLOAT16}, "weight_dtype must be one of"),
    ({"calibration_samples": 0}, "calibration_samples"),
    ({"percentile": 40}, "percentile"),
    ({"symmetric": "yes"}, "symmetric"),
    ({"exclude_ops": "Softmax"}, "exclude_ops"),
    ({"sqnr_budget_db": "high"}, "sqnr_budget_db"),
])
def test_invalid_values_are_refused(change, message):
    config = QuantConfig.dynamic_int8()
    for k, v in change.items():
        setattr(config, k, v)
    with pytest.raises(ValidationError, match=message):
        config.validated()


def test_half_modes_take_only_their_half_type():
    config = QuantConfig.fp16()
    config.weight_dtype = DType.BFLOAT16
    with pytest.raises(ValidationError, match=r"\['float16'\] for mode FP16"):
        config.validated()
