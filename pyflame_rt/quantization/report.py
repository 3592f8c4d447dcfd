"""`QuantizationReport`: what a quantization did, stored in the `.pfm` header (`quantization`)
so a loaded artifact reports it too; `LayerReport`: one eligible layer's precision and error."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

# an SQNR above this is reported as it (a layer exact in the narrow type has infinite SQNR)
SQNR_CAP_DB = 200.0


@dataclass(frozen=True)
class LayerReport:
    """node: the ONNX node; precision: the element type it computes in; sqnr_db: its output's
    signal-to-quantization-noise ratio against float32 on the calibration data (None: not
    measured); reason: why it stayed float32 ("" when it did not)."""

    node: str
    op_type: str
    precision: str
    sqnr_db: float | None = None
    reason: str = ""


@dataclass(frozen=True)
class QuantizationReport:
    """Sizes are of the graph's weights before and after quantization; stored_size_mb is what the
    compiled artifact holds (the CPU's GEMM and convolution kernels read float32 panels packed at
    compile time, so half weights they read are widened there)."""

    mode: str
    nodes_quantized: int
    nodes_total: int
    original_size_mb: float
    quantized_size_mb: float
    weights_quantized: bool
    activations_quantized: bool
    sqnr_budget_db: float | None = None
    layers: list[LayerReport] = field(default_factory=list)
    stored_size_mb: float | None = None

    @property
    def compression_ratio(self) -> float:
        """Weight bytes of the float32 model over those of the quantized one."""
        return self.original_size_mb / self.quantized_size_mb if self.quantized_size_mb else 1.0

    @property
    def kept_float32(self) -> list[LayerReport]:
        """The eligible layers left in float32, each with its reason."""
        return [layer for layer in self.layers if layer.reason]

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "QuantizationReport":
        return cls(**{**data, "layers": [LayerReport(**layer) for layer in data.get("layers", [])]})

    def summary(self) -> str:
        """The report as `pyflame-rt inspect` prints it."""
        lines = [f"mode {self.mode}: {self.nodes_quantized} / {self.nodes_total} nodes quantized, weights "
                 f"{self.original_size_mb:.3f} MB -> {self.quantized_size_mb:.3f} MB "
                 f"({self.compression_ratio:.2f}x)"
                 + (f", {self.stored_size_mb:.3f} MB stored" if self.stored_size_mb is not None else "")]
        if self.sqnr_budget_db is not None:
            lines.append(f"per-layer SQNR budget {self.sqnr_budget_db:g} dB")
        for layer in self.layers:
            sqnr = "-" if layer.sqnr_db is None else f"{layer.sqnr_db:.1f} dB"
            lines.append(f"  {layer.node} ({layer.op_type}): {layer.precision}, SQNR {sqnr}"
                         + (f" ({layer.reason})" if layer.reason else ""))
        return "\n".join(lines)
