"""`Quantizer`: a float32 graph in a reduced-precision mode, with accuracy-aware mixed precision.

The graph is prepared first (quantization/prepare.py: LayerNorm, GELU, Softmax fused). FP16 / BFloat16 run `convert-to-fp16` / `convert-to-bf16` (transforms/convert_to_half.py). Each
eligible layer's error is its output's SQNR against float32 on sample activations (the
calibration data's first batch; a random feed when none is given and a budget is set): the op is
evaluated by the numpy reference once on the float32 operands and once on operands rounded to
the half type, its result rounded too (what the compiled layer computes). A layer below the
config's `sqnr_budget_db` stays float32 and the report says so. The int8 modes calibrate but do
not compile yet: `UnsupportedQuantizationError` names the missing kernels."""
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
from pyflame_rt.dialects.weights import WeightTable
from pyflame_rt.dtype import DType
from pyflame_rt.errors import UnsupportedQuantizationError, ValidationError
from pyflame_rt.importers.onnx import ImportResult
from pyflame_rt.quantization.calibration import Calibrator, GraphQuantInfo, value_keys
from pyflame_rt.options import QuantConfig
from pyflame_rt.quantization.prepare import prepare
from pyflame_rt.quantization.report import SQNR_CAP_DB, LayerReport, QuantizationReport
from pyflame_rt.transforms.convert_to_half import ConvertToBF16, ConvertToFP16, node_name, op_type
from pyflame_rt.transforms.graph_pass import PassStats, constant_array, node_census

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
        if not mode.is_half:
            raise UnsupportedQuantizationError(
                f"{mode.name} quantization needs int8 GEMM / convolution kernels (the quant dialect's quantized "
                f"MatMul, Gemm and Conv), which this build does not have yet; use QuantConfig.fp16() or .bfloat16()")
        half = mode.half_dtype
        weights = WeightTable.of(module)
        original_bytes = _weight_bytes(weights)
        fn = graph.entry_function(prepare(module))
        nodes_total = sum(node_census(module).values())
        samples = quant_info.samples if quant_info is not None else {}
        if self.config.sqnr_budget_db is not None and not samples:
            samples = _random_samples(module, opset, self.config)
        layers = self._layers(fn, weights, samples, half)
        keep = tuple({*self.config.exclude_ops, *(layer.node for layer in layers if layer.reason)})
        _HALF_PASSES[half](exclude=keep).rewrite(module, weights, PassStats())
        return QuantizationReport(
            mode.name, sum(layer.precision == half.value for layer in layers), nodes_total,
            original_bytes / _MB, _weight_bytes(WeightTable.of(module)) / _MB,
            weights_quantized=True, activations_quantized=True, sqnr_budget_db=self.config.sqnr_budget_db,
            layers=layers)

    def _layers(self, fn: func.FuncOp, weights: WeightTable, samples: dict, half: DType) -> list[LayerReport]:
        """Every layer the mode converts, its error, and whether (why) it stays float32."""
        keys, excluded, budget = value_keys(fn), set(self.config.exclude_ops), self.config.sqnr_budget_db
        layers = []
        for op in fn.body.block.ops:
            kind = op_type(op)
            if kind is None or not any(graph.dtype_of(r.type) is DType.FLOAT32 for r in op.results):
                continue
            name = node_name(op) or op.name
            if kind in excluded or name in excluded:
                layers.append(LayerReport(name, kind, DType.FLOAT32.value, None, "excluded by exclude_ops"))
                continue
            inputs = [samples[keys[v]] if keys[v] in samples else constant_array(v, weights) for v in op.operands]
            sqnr = None if any(x is None for x in inputs) else layer_sqnr(op, inputs, rounding_to(half))
            if budget is not None and sqnr is not None and sqnr < budget and node_name(op) is not None:
                layers.append(LayerReport(name, kind, DType.FLOAT32.value, sqnr,
                                          f"SQNR {sqnr:.1f} dB is below the budget of {budget:g} dB"))
            else:
                layers.append(LayerReport(name, kind, half.value, sqnr))
        return layers


def layer_sqnr(op: Operation, inputs: list[np.ndarray], store: Callable[[np.ndarray], np.ndarray]) -> float:
    """The SQNR (dB) of `op`'s first result computed on stored operands with a stored result
    (`store`: a float32 array as the quantized layer holds it, e.g. rounded to float16), against
    the float32 computation."""
    exact = evaluate_op(op, inputs)[0].astype(np.float64)
    approx = store(evaluate_op(op, [store(np.asarray(x)) for x in inputs])[0]).astype(np.float64)
    return sqnr_db(exact, approx)


def sqnr_db(exact: np.ndarray, approx: np.ndarray) -> float:
    """10 log10(signal power / error power), capped at SQNR_CAP_DB (an exact result)."""
    noise = float(np.sum((exact - approx) ** 2))
    signal = float(np.sum(exact ** 2))
    if noise == 0 or signal / noise >= 10 ** (SQNR_CAP_DB / 10):
        return SQNR_CAP_DB
    return round(10 * math.log10(signal / noise), 2) if signal > 0 else 0.0


def rounding_to(half: DType) -> Callable[[np.ndarray], np.ndarray]:
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
