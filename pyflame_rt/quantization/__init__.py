"""The guide's quantization API: `QuantConfig` (modes FP16, BFloat16, DynamicInt8, StaticInt8),
`Calibrator`, `Quantizer` and the report a quantized session or artifact carries
(docs/quantization.md)."""
from pyflame_rt.quantization.calibration import Calibrator, GraphQuantInfo
from pyflame_rt.options import CalibrationMethod, QuantConfig, QuantGranularity, QuantMode
from pyflame_rt.quantization.params import QuantParams
from pyflame_rt.quantization.quantizer import QuantizationResult, QuantizationStats, Quantizer
from pyflame_rt.quantization.report import LayerReport, QuantizationReport

__all__ = ["CalibrationMethod", "Calibrator", "GraphQuantInfo", "LayerReport", "QuantConfig", "QuantGranularity",
           "QuantMode", "QuantParams", "QuantizationReport", "QuantizationResult", "QuantizationStats", "Quantizer"]
