"""What to quantize and how: the guide's `QuantConfig`, `QuantMode`, `QuantGranularity` and
`CalibrationMethod`."""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from pyflame_rt.dtype import DType
from pyflame_rt.errors import ValidationError


class _NamedEnum(Enum):
    """Members are given as themselves or by name in any case ("fp16", "int8-dynamic" via `parse`)."""

    @classmethod
    def parse(cls, value) -> "_NamedEnum":
        if isinstance(value, cls):
            return value
        if isinstance(value, str):
            for member in cls:
                if value.replace("-", "").replace("_", "").lower() in (member.name.lower(), *member.value):
                    return member
        raise ValidationError(f"invalid {cls.__name__} {value!r}: one of {[m.name for m in cls]}")


class QuantMode(_NamedEnum):
    """The guide's modes; the value lists the spellings the CLI and strings accept."""

    FP16 = ("fp16", "float16", "half")
    BFloat16 = ("bf16", "bfloat16")
    DynamicInt8 = ("int8dynamic", "dynamicint8")
    StaticInt8 = ("int8static", "staticint8")

    @property
    def is_half(self) -> bool:
        return self in (QuantMode.FP16, QuantMode.BFloat16)

    @property
    def half_dtype(self) -> DType:
        return DType.FLOAT16 if self is QuantMode.FP16 else DType.BFLOAT16


class QuantGranularity(_NamedEnum):
    PerTensor = ("pertensor",)
    PerChannel = ("perchannel",)


class CalibrationMethod(_NamedEnum):
    MinMax = ("minmax",)
    Entropy = ("entropy", "kl")
    Percentile = ("percentile",)


_INT8_TYPES = (DType.INT8, DType.UINT8)


@dataclass
class QuantConfig:
    """mode: what the float32 model becomes. weight_dtype / activation_dtype: the storage of
    weights and activations (the half type for FP16 / BFloat16; int8 or uint8 for the integer
    modes). granularity: one scale per tensor or per output channel of a weight.
    calibration_method / calibration_samples / percentile: how static INT8 ranges are found.
    symmetric: zero point 0 (int8) or 128 (uint8). exclude_ops: op types ("Softmax") or ONNX node
    names kept in float32. sqnr_budget_db: the accuracy budget per layer; a layer whose output
    signal-to-quantization-noise ratio against float32 is below it stays float32 (None: every
    eligible layer is converted)."""

    mode: QuantMode = QuantMode.DynamicInt8
    weight_dtype: DType = DType.INT8
    activation_dtype: DType = DType.UINT8
    granularity: QuantGranularity = QuantGranularity.PerTensor
    calibration_method: CalibrationMethod = CalibrationMethod.MinMax
    calibration_samples: int = 100
    percentile: float = 99.99
    symmetric: bool = True
    exclude_ops: list[str] = field(default_factory=list)
    sqnr_budget_db: float | None = None

    @classmethod
    def fp16(cls) -> "QuantConfig":
        return cls(QuantMode.FP16, DType.FLOAT16, DType.FLOAT16)

    @classmethod
    def bfloat16(cls) -> "QuantConfig":
        return cls(QuantMode.BFloat16, DType.BFLOAT16, DType.BFLOAT16)

    @classmethod
    def dynamic_int8(cls) -> "QuantConfig":
        return cls(QuantMode.DynamicInt8, DType.INT8, DType.UINT8)

    @classmethod
    def static_int8(cls, calibration_samples: int = 100) -> "QuantConfig":
        return cls(QuantMode.StaticInt8, DType.INT8, DType.INT8, calibration_samples=calibration_samples)

    def validated(self) -> "QuantConfig":
        """These settings normalized (names to members); ValidationError naming the first bad one."""
        self.mode = QuantMode.parse(self.mode)
        self.granularity = QuantGranularity.parse(self.granularity)
        self.calibration_method = CalibrationMethod.parse(self.calibration_method)
        allowed = (self.mode.half_dtype,) if self.mode.is_half else _INT8_TYPES
        for name in ("weight_dtype", "activation_dtype"):
            try:
                dtype = DType(getattr(self, name))
            except ValueError:
                dtype = None
            if dtype not in allowed:
                raise ValidationError(f"QuantConfig.{name} must be one of {[d.value for d in allowed]} for mode "
                                      f"{self.mode.name}, got {getattr(self, name)!r}")
            setattr(self, name, dtype)
        if type(self.calibration_samples) is not int or self.calibration_samples < 1:
            raise ValidationError(f"QuantConfig.calibration_samples must be an int >= 1, "
                                  f"got {self.calibration_samples!r}")
        if isinstance(self.percentile, bool) or not isinstance(self.percentile, (int, float)) \
                or not 50 < self.percentile <= 100:
            raise ValidationError(f"QuantConfig.percentile must be in (50, 100], got {self.percentile!r}")
        if not isinstance(self.symmetric, bool):
            raise ValidationError(f"QuantConfig.symmetric must be a bool, got {self.symmetric!r}")
        if not isinstance(self.exclude_ops, (list, tuple)) or not all(isinstance(o, str) for o in self.exclude_ops):
            raise ValidationError(f"QuantConfig.exclude_ops must be a list of op types or node names, "
                                  f"got {self.exclude_ops!r}")
        budget = self.sqnr_budget_db
        if budget is not None and (isinstance(budget, bool) or not isinstance(budget, (int, float))):
            raise ValidationError(f"QuantConfig.sqnr_budget_db must be a number of dB or None, got {budget!r}")
        return self
