"""`Quantizer`: a float32 graph in a reduced-precision mode, with accuracy-aware mixed precision.

The graph is prepared first (quantization/prepare.py: LayerNorm, GELU, Softmax fused). FP16 /
BFloat16 run `convert-to-fp16` / `convert-to-bf16` (transforms/convert_to_half.py), DynamicInt8
`quantize-dynamic-int8` (transforms/quantize_dynamic.py), StaticInt8 `quantize-static-int8`
(transforms/quantize_static.py) with the calibrated activation parameters. Each eligible layer's error is its
output's SQNR against float32 on sample activations (the calibration data's first batch; a random
feed when none is given and a budget is set): the op is evaluated by the numpy reference once on
the float32 operands and once on the operands as the quantized layer stores them (rounded to the
half type, result too; or fake-quantized: activation uint8 from its range or, static, with its
calibrated parameters, result too; weight int8 symmetric). A layer below the config's
`sqnr_budget_db` stays float32 and the report says so."""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Operation

from pyflame_rt.dialects import graph
from pyflame_rt.dialects.reference import evaluate_op
from pyflame_rt.dialects.reference.quant import dynamic_quantize
from pyflame_rt.dialects.weights import WeightTable
from pyflame_rt.dtype import DType
from pyflame_rt.errors import ValidationError
from pyflame_rt.importers.onnx import ImportResult
from pyflame_rt.quantization.calibration import Calibrator, GraphQuantInfo
from pyflame_rt.quantization.params import QuantParams
from pyflame_rt.options import QuantConfig, QuantGranularity, QuantMode
from pyflame_rt.quantization.prepare import prepare
from pyflame_rt.quantization.report import SQNR_CAP_DB, LayerReport, QuantizationReport
from pyflame_rt.transforms.convert_to_half import ConvertToBF16, ConvertToFP16, node_name, op_type
from pyflame_rt.transforms.graph_pass import GraphPass, PassStats, constant_array, node_census
from pyflame_rt.transforms.quantize_dynamic import QuantizeDynamicInt8, float_weight, int8_op_type, symmetric_int8
from pyflame_rt.transforms.quantize_static import (
    QuantizeStaticInt8, encode_activations, int8_weight, static_op_type, value_keys)

_HALF_PASSES = {DType.FLOAT16: ConvertToFP16, DType.BFLOAT16: ConvertToBF16}
_MB = 1 << 20


@dataclass(frozen=True)
class QuantizationStats:
    nodes_quantized: int
    nodes_total: int
    original_bytes: int
    quantized_bytes: int

    def compression_ratio(self) -> float:
        return self.original_bytes / self.quantized_bytes if self.quantized_bytes else 1.0


@dataclass(frozen=True)
class QuantizationResult:
    success: bool
    stats: QuantizationStats
    quantized_graph: ImportResult
    report: QuantizationReport


class Quantizer:
    def __init__(self, config: QuantConfig):
        if not isinstance(config, QuantConfig):
            raise ValidationError(f"Quantizer takes a QuantConfig, got {type(config).__name__}")
        self.config = config.validated()

    def quantize(self, graph_: ImportResult, quant_info: GraphQuantInfo | None = None) -> QuantizationResult:
        """A quantized copy of `graph_` (the importer's result); `quant_info` from a Calibrator."""
        if not isinstance(graph_, ImportResult):
            raise ValidationError(f"Quantizer.quantize takes an imported graph (ImportResult), "
                                  f"got {type(graph_).__name__}")
        module = graph_.module.clone()
        report = self.apply(module, graph_.opset, quant_info)
        stats = QuantizationStats(report.nodes_quantized, report.nodes_total,
                                  round(report.original_size_mb * _MB), round(report.quantized_size_mb * _MB))
        return QuantizationResult(True, stats, replace(graph_, module=module), report)

    def quantize_dynamic(self, graph_: ImportResult) -> QuantizationResult:
        """Quantize without calibration data (ranges of activations found at run time for int8)."""
        return self.quantize(graph_, None)

    def apply(self, module: ModuleOp, opset: int, quant_info: GraphQuantInfo | None) -> QuantizationReport:
        """Quantize `module` in place; what was done."""
        mode = self.config.mode
        if mode is QuantMode.StaticInt8 and quant_info is None:
            raise ValidationError("StaticInt8 quantization needs calibration results: give the session "
                                  "SessionOptions.calibration_data (or the CLI --calibration), or Quantizer.quantize "
                                  "a Calibrator's compute_quant_params()")
        weights = WeightTable.of(module)
        original_bytes = _weight_bytes(weights)
        fn = graph.entry_function(prepare(module))
        scheme = _half_scheme(mode.half_dtype) if mode.is_half else \
            _dynamic_int8_scheme(self.config) if mode is QuantMode.DynamicInt8 else \
            _static_int8_scheme(self.config, quant_info, value_keys(fn))
        nodes_total = sum(node_census(module).values())
        samples = quant_info.samples if quant_info is not None else {}
        if self.config.sqnr_budget_db is not None and not samples:
            samples = _random_samples(module, opset, self.config)
        layers = self._layers(fn, weights, samples, scheme)
        keep = tuple({*self.config.exclude_ops, *(layer.node for layer in layers if layer.reason)})
        scheme.rewrite(keep).rewrite(module, weights, PassStats())
        return QuantizationReport(
            mode.name, sum(layer.precision == scheme.precision for layer in layers), nodes_total,
            original_bytes / _MB, _weight_bytes(WeightTable.of(module)) / _MB,
            weights_quantized=True, activations_quantized=True, sqnr_budget_db=self.config.sqnr_budget_db,
            layers=layers)

    def _layers(self, fn: func.FuncOp, weights: WeightTable, samples: dict, scheme: _Scheme) -> list[LayerReport]:
        """Every layer the mode converts, its error, and whether (why) it stays float32."""
        keys, excluded, budget = value_keys(fn), set(self.config.exclude_ops), self.config.sqnr_budget_db
        layers = []
        for op in fn.body.block.ops:
            kind = scheme.op_type(op, weights)
            if kind is None:
                continue
            name = node_name(op) or op.name
            if kind in excluded or name in excluded:
                layers.append(LayerReport(name, kind, DType.FLOAT32.value, None, "excluded by exclude_ops"))
                continue
            inputs = [samples[keys[v]] if keys[v] in samples else constant_array(v, weights) for v in op.operands]
            sqnr = None if any(x is None for x in inputs) else layer_sqnr(op, inputs, scheme.stores(op))
            if budget is not None and sqnr is not None and sqnr < budget and node_name(op) is not None:
                layers.append(LayerReport(name, kind, DType.FLOAT32.value, sqnr,
                                          f"SQNR {sqnr:.1f} dB is below the budget of {budget:g} dB"))
            else:
                layers.append(LayerReport(name, kind, scheme.precision, sqnr))
        return layers


Store = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class _Scheme:
    """How a mode quantizes: the element type its layers compute in, which ops are its layers
    (their ONNX op type), how each layer's operands and result are stored (for its error), and its
    rewrite given the node names and op types kept in float32."""

    precision: str
    op_type: Callable[[Operation, WeightTable], str | None]
    stores: Callable[[Operation], list[Store]]
    rewrite: Callable[[tuple[str, ...]], GraphPass]


def _half_scheme(half: DType) -> _Scheme:
    def half_op_type(op: Operation, weights: WeightTable) -> str | None:
        kind = op_type(op)
        return kind if kind is not None and any(graph.dtype_of(r.type) is DType.FLOAT32 for r in op.results) else None

    store = rounding_to(half)
    return _Scheme(half.value, half_op_type, lambda op: [store] * (len(op.operands) + 1),
                   lambda keep: _HALF_PASSES[half](exclude=keep))


def _dynamic_int8_scheme(config: QuantConfig) -> _Scheme:
    per_channel = config.granularity is QuantGranularity.PerChannel

    def int8_op(op: Operation, weights: WeightTable) -> str | None:
        return int8_op_type(op) if float_weight(op, weights) is not None else None

    def stores(op: Operation) -> list[Store]:
        # activation: uint8 from its range; weight: int8 symmetric ([K, N], or [N, K] for trans_b);
        # a Gemm's C and the result stay float32
        transposed = isinstance(op, graph.GemmOp) and op.trans_b.value.data
        weight = _fake_int8_weight(per_channel, transposed)
        return [_fake_dynamic_uint8, weight] + [_exact] * (len(op.operands) - 1)

    return _Scheme(DType.INT8.value, int8_op, stores,
                   lambda keep: QuantizeDynamicInt8(exclude=keep, per_channel=per_channel))


def _static_int8_scheme(config: QuantConfig, quant_info: GraphQuantInfo, keys: dict) -> _Scheme:
    per_channel = config.granularity is QuantGranularity.PerChannel
    storage = "u8" if config.activation_dtype is DType.UINT8 else "i8"

    def stores(op: Operation) -> list[Store]:
        # activation and result with their calibrated parameters, weight int8 symmetric along its
        # output channels (Conv: axis 0; MatMul / Gemm: the columns of op(B)); bias / C exact
        axis = 0 if not isinstance(op, (graph.MatMulOp, graph.GemmOp)) or \
            isinstance(op, graph.GemmOp) and op.trans_b.value.data else 1
        fake = [_fake_static(quant_info.params.get(keys.get(v))) for v in (op.operands[0], op.results[0])]
        weight = _fake_int8_static_weight(axis if per_channel else None)
        return [fake[0], weight] + [_exact] * (len(op.operands) - 2) + [fake[1]]

    return _Scheme(DType.INT8.value, static_op_type, stores,
                   lambda keep: QuantizeStaticInt8(activations=encode_activations(quant_info.params),
                                                   activation_storage=storage, per_channel=per_channel,
                                                   exclude=keep))


def _fake_static(params: QuantParams | None) -> Store:
    """x quantized with calibrated parameters and dequantized (as it is when not calibrated)."""
    return _exact if params is None else lambda x: params.dequantize(params.quantize(x))


def _fake_int8_static_weight(axis: int | None) -> Store:
    def store(w: np.ndarray) -> np.ndarray:
        codes, t = int8_weight(np.asarray(w, np.float32), axis)
        return (codes.astype(np.float32) * t.scale_array(w.ndim)[0]).astype(np.float32)
    return store


def _exact(x: np.ndarray) -> np.ndarray:
    return x


def _fake_dynamic_uint8(x: np.ndarray) -> np.ndarray:
    """x quantized to uint8 from its range (DynamicQuantizeLinear) and dequantized."""
    q, scale, zero_point = dynamic_quantize(np.asarray(x, np.float32))
    return ((q.astype(np.float32) - np.float32(zero_point)) * scale).astype(np.float32)


def _fake_int8_weight(per_channel: bool, transposed: bool) -> Store:
    def store(w: np.ndarray) -> np.ndarray:
        kn = w.T if transposed else w
        codes, scale = symmetric_int8(kn, 1 if per_channel else None)
        out = (codes.astype(np.float32) * scale).astype(np.float32)
        return out.T if transposed else out
    return store


def layer_sqnr(op: Operation, inputs: list[np.ndarray], stores: list[Store]) -> float:
    """The SQNR (dB) of `op`'s first result computed on stored operands with a stored result
    (`stores`: one per operand, then the result's; each maps a float32 array to what the
    quantized layer holds, e.g. rounded to float16), against the float32 computation."""
    exact = evaluate_op(op, inputs)[0].astype(np.float64)
    approx = evaluate_op(op, [store(np.asarray(x)) for store, x in zip(stores, inputs)])[0]
    return sqnr_db(exact, stores[-1](approx).astype(np.float64))


def sqnr_db(exact: np.ndarray, approx: np.ndarray) -> float:
    """10 log10(signal power / error power), capped at SQNR_CAP_DB (an exact result)."""
    noise = float(np.sum((exact - approx) ** 2))
    signal = float(np.sum(exact ** 2))
    if noise == 0 or signal / noise >= 10 ** (SQNR_CAP_DB / 10):
        return SQNR_CAP_DB
    return round(10 * math.log10(signal / noise), 2) if signal > 0 else 0.0


def rounding_to(half: DType) -> Store:
    """Float32 arrays rounded to `half` (nearest even) and widened back; others as they are."""
    return lambda x: x.astype(half.numpy).astype(np.float32) if x.dtype == np.float32 else x


def _weight_bytes(weights: WeightTable) -> int:
    return sum(weights[name].nbytes for name in weights if weights.get(name) is not None)


def _random_samples(module: ModuleOp, opset: int, config: QuantConfig) -> dict[str, np.ndarray]:
    """Sample activations from one random feed (standard normal floats, zero integers, every
    symbolic dim 1) when no calibration data is given."""
    fn = graph.entry_function(module)
    rng = np.random.default_rng(0)
    feeds = {}
    for arg, attrs in zip(fn.args, fn.arg_attrs.data):
        shape = [d if isinstance(d, int) else 1 for d in graph.io_shape(attrs.data, arg.type)]
        dtype = graph.dtype_of(arg.type).numpy
        feeds[attrs.data[graph.ARG_NAME].data] = (rng.standard_normal(shape).astype(dtype)
                                                  if np.issubdtype(dtype, np.floating) else np.zeros(shape, dtype))
    calibrator = Calibrator(ImportResult(module=module, opset=opset), config)
    calibrator.observe(feeds)
    return calibrator.compute_quant_params().samples
