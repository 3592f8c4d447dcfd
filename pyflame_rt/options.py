"""Every options class: import, compile, session and run options (ONNX Runtime-style names), the
compile and kernel caches' settings, the graph pass manager's and quantization's (`QuantConfig`,
exported by pyflame_rt.quantization)."""
from __future__ import annotations

import operator
import os
from dataclasses import dataclass, field
from enum import Enum, IntEnum
from numbers import Integral
from typing import Callable

from pyflame_rt.dtype import DType
from pyflame_rt.errors import ValidationError

ENV_DIR = "PYFLAME_RT_CACHE_DIR"
KERNEL_ENV_DIR = "PYFLAME_RT_KERNEL_CACHE_DIR"


class _OptionEnum(IntEnum):
    """An option's values, given as a member, its int, its name in any case (the guide's strings:
    "parallel", "warning") or onnxruntime's enum value (ORT_PARALLEL)."""

    @classmethod
    def _missing_(cls, value):
        name = value if isinstance(value, str) else getattr(value, "name", None)
        if isinstance(name, str):
            return cls.__members__.get(name.upper().removeprefix("ORT_"))
        if isinstance(value, (bool, int)):  # an int reaches here only when it is no member's value
            return None
        try:
            return cls(operator.index(value))  # numpy ints
        except (TypeError, ValueError):
            return None


class OptLevel(_OptionEnum):
    NONE = 0
    BASIC = 1
    EXTENDED = 2
    ALL = 3
    # onnxruntime's GraphOptimizationLevel names (its ORT_ENABLE_ALL is 99: matched by name)
    DISABLE_ALL = 0
    ENABLE_BASIC = 1
    ENABLE_EXTENDED = 2
    ENABLE_LAYOUT = 3
    ENABLE_ALL = 3


class ExecutionMode(_OptionEnum):
    """onnxruntime's inter-op modes: SEQUENTIAL runs a model's kernels one after another, PARALLEL
    lets independent ones overlap. Neither changes how many workers split each kernel (num_threads,
    onnxruntime's intra-op threads). The launch table is one linear order, so PARALLEL runs as
    SEQUENTIAL does (docs/api-compatibility.md)."""

    SEQUENTIAL = 0
    PARALLEL = 1


class LogLevel(_OptionEnum):
    """onnxruntime's severity levels; the guide's "debug" is VERBOSE."""

    VERBOSE = 0
    INFO = 1
    WARNING = 2
    ERROR = 3
    FATAL = 4
    DEBUG = 0


def _alias(field_name: str) -> property:
    """A second name for a field (onnxruntime's spelling next to ours)."""
    return property(lambda self: getattr(self, field_name),
                    lambda self, value: setattr(self, field_name, value))


class _QuantEnum(Enum):
    """Members are given as themselves or by name in any case ("fp16", "int8-dynamic" via `parse`)."""

    @classmethod
    def parse(cls, value) -> "_QuantEnum":
        if isinstance(value, cls):
            return value
        if isinstance(value, str):
            for member in cls:
                if value.replace("-", "").replace("_", "").lower() in (member.name.lower(), *member.value):
                    return member
        raise ValidationError(f"invalid {cls.__name__} {value!r}: one of {[m.name for m in cls]}")


class QuantMode(_QuantEnum):
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


class QuantGranularity(_QuantEnum):
    PerTensor = ("pertensor",)
    PerChannel = ("perchannel",)


class CalibrationMethod(_QuantEnum):
    MinMax = ("minmax",)
    Entropy = ("entropy", "kl")
    Percentile = ("percentile",)


_INT8_TYPES = (DType.INT8, DType.UINT8)


@dataclass
class QuantConfig:
    """mode: what the float32 model becomes. weight_dtype / activation_dtype: the storage of
    weights and activations (the half type for FP16 / BFloat16; int8 or uint8 for the integer
    modes). granularity: one scale per tensor or per output channel of a weight (per channel by
    default: as fast, and the per-tensor scale is set by a weight's largest column; onnxruntime's
    default is per tensor).
    calibration_method / percentile: how static INT8 ranges are found; calibration_samples: the
    calibration batches a session draws (SessionOptions.calibration_batches overrides it).
    symmetric: zero point 0 (int8) or 128 (uint8). exclude_ops: op types ("Softmax") or ONNX node
    names kept in float32. sqnr_budget_db: the accuracy budget per layer; a layer whose output
    signal-to-quantization-noise ratio against float32 is below it stays float32 (None: every
    eligible layer is converted)."""

    mode: QuantMode = QuantMode.DynamicInt8
    weight_dtype: DType = DType.INT8
    activation_dtype: DType = DType.UINT8
    granularity: QuantGranularity = QuantGranularity.PerChannel
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
        # activations as onnxruntime's quantize_static stores them: uint8, asymmetric
        return cls(QuantMode.StaticInt8, DType.INT8, DType.UINT8, calibration_samples=calibration_samples,
                   symmetric=False)

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


@dataclass
class CacheConfig:
    """dir None: $PYFLAME_RT_CACHE_DIR, else ~/.cache/pyflame-rt. Limits apply after each store."""

    dir: str | None = None
    max_size_bytes: int = 4 << 30
    max_entries: int = 256
    ttl_seconds: float = 30 * 24 * 3600.0
    enabled: bool = True

    cache_dir = property(lambda self: self.dir, lambda self, value: setattr(self, "dir", value))  # the guide's name

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


@dataclass
class KernelCacheConfig(CacheConfig):
    """The kernel cache: dir None: $PYFLAME_RT_KERNEL_CACHE_DIR, else `kernels` inside the compile
    cache's directory. Its entries are small and shared by models, so it keeps more of them."""

    max_entries: int = 4096

    def resolved_dir(self) -> str:
        return self.dir or os.environ.get(KERNEL_ENV_DIR) or os.path.join(CacheConfig().resolved_dir(), "kernels")


@dataclass
class ImportOptions:
    """How to import: shape inference through the graph, ONNX checker, opset bounds."""

    infer_shapes: bool = True
    check_model: bool = True


@dataclass
class CompileOptions:
    cpu: str | None = None  # None/"host" or a portable level such as "x86-64-v3"
    import_options: ImportOptions = field(default_factory=ImportOptions)
    opt_level: OptLevel = OptLevel.EXTENDED  # graph optimizer pipeline (pyflame_rt.opt)
    verbose_optimization: bool = False       # log every pass's statistics
    checked: bool = False  # bounds-check every load and store (MemoryAccessError), docs/checked-build.md
    kernel_cache: KernelCacheConfig | None = None  # None: the default; enabled=False compiles every kernel
    quantization: QuantConfig | None = None  # reduced precision (docs/quantization.md)


@dataclass
class SessionOptions:
    """num_threads: worker threads each kernel is split over; 0 = one per core. execution_mode:
    onnxruntime's inter-op mode (ExecutionMode). log_level / log_severity_level: the level of the package logger
    "pyflame_rt" (pyflame_rt.logs), set when a session is created. cpu: compile target for .onnx inputs.
    enable_profiling: write a Chrome-trace JSON of every kernel call (`end_profiling()` returns
    its path, `<profile_file_prefix>_<time>.json`). cache: where compiled .onnx models are kept
    (None = the default `CacheConfig()`; `CacheConfig(enabled=False)` turns caching off).
    sign_key_file: a signing key; `.pfm` artifacts must then carry a valid HMAC with it (None =
    $PYFLAME_RT_SIGN_KEY_FILE if set, else signatures are not required; docs/security.md).
    checked: compile .onnx inputs as checked builds (every load and store bounds-checked,
    MemoryAccessError on a violation; docs/checked-build.md). quantization: a QuantConfig to compile
    .onnx inputs in reduced precision (a .pfm must have been compiled in that mode);
    calibration_data: a callable returning one feed dict per call, called calibration_batches
    times (None: quantization.calibration_samples) before the compile (docs/quantization.md)."""

    num_threads: int = 0
    optimization_level: OptLevel = OptLevel.EXTENDED
    execution_mode: ExecutionMode = ExecutionMode.SEQUENTIAL
    device: str = "cpu"
    cpu: str | None = None
    log_severity_level: LogLevel = LogLevel.WARNING
    enable_profiling: bool = False
    profile_file_prefix: str = "pyflame_rt_profile"
    verbose_optimization: bool = False
    custom_metadata: dict = field(default_factory=dict)
    cache: CacheConfig | None = None
    sign_key_file: str | None = None
    checked: bool = False
    quantization: QuantConfig | None = None
    calibration_data: Callable[[], dict] | None = None
    calibration_batches: int | None = None  # None: quantization.calibration_samples

    # onnxruntime spellings, so migrated code keeps working
    intra_op_num_threads = _alias("num_threads")
    log_level = _alias("log_severity_level")

    @property
    def graph_optimization_level(self) -> OptLevel:
        return self.optimization_level

    @graph_optimization_level.setter
    def graph_optimization_level(self, level) -> None:
        try:
            self.optimization_level = OptLevel(level)
        except ValueError:
            raise ValidationError(f"invalid graph_optimization_level {level!r}") from None

    def validate(self) -> list[str]:
        """Every problem with these options, one message each (empty: valid). Values given in
        another accepted form (the guide's strings, onnxruntime's enums) are normalized."""
        return list(self._problems())

    def validated(self) -> "SessionOptions":
        """These options, normalized; ValidationError (with `.errors`) if any is invalid."""
        problems = self.validate()
        if problems:
            raise ValidationError("; ".join(problems), problems)
        return self

    def worker_threads(self) -> int:
        """Threads kernels are split over (0 = one per core)."""
        return self.num_threads

    def _problems(self):
        if isinstance(self.num_threads, bool) or not isinstance(self.num_threads, int) or self.num_threads < 0:
            yield f"num_threads must be an int >= 0, got {self.num_threads!r}"
        elif self.num_threads > 1024:
            yield f"num_threads {self.num_threads} is unreasonable (max 1024)"
        if self.device != "cpu":
            yield f"device '{self.device}' is not available; PyFlameRT runs on 'cpu'"
        try:
            self.optimization_level = OptLevel(self.optimization_level)
        except ValueError:
            yield f"invalid optimization_level {self.optimization_level!r}"
        try:
            self.execution_mode = ExecutionMode(self.execution_mode)
        except ValueError:
            yield f"invalid execution_mode {self.execution_mode!r}: 'sequential' or 'parallel'"
        try:
            self.log_severity_level = LogLevel(self.log_severity_level)
        except ValueError:
            yield f"invalid log_severity_level {self.log_severity_level!r}: 0..4 or {_LOG_LEVEL_NAMES}"
        if not isinstance(self.enable_profiling, bool):
            yield f"enable_profiling must be a bool, got {self.enable_profiling!r}"
        if not isinstance(self.profile_file_prefix, str) or not self.profile_file_prefix:
            yield f"profile_file_prefix must be a non-empty str, got {self.profile_file_prefix!r}"
        if self.sign_key_file is not None and not isinstance(self.sign_key_file, (str, os.PathLike)):
            yield f"sign_key_file must be a path or None, got {self.sign_key_file!r}"
        if not isinstance(self.checked, bool):
            yield f"checked must be a bool, got {self.checked!r}"
        if self.cache is not None and not isinstance(self.cache, CacheConfig):
            yield f"cache must be a CacheConfig or None, got {type(self.cache).__name__}"
        yield from self._quantization_problems()

    def _quantization_problems(self):
        if self.quantization is not None:
            if not isinstance(self.quantization, QuantConfig):
                yield f"quantization must be a QuantConfig or None, got {type(self.quantization).__name__}"
            else:
                try:
                    self.quantization.validated()
                except ValidationError as e:
                    yield str(e)
        if self.calibration_data is not None and not callable(self.calibration_data):
            yield f"calibration_data must be a callable returning a feed dict, got {type(self.calibration_data).__name__}"
        if self.calibration_data is not None and self.quantization is None:
            yield "calibration_data is given but quantization is not set"
        if self.calibration_batches is not None and (type(self.calibration_batches) is not int
                                                     or self.calibration_batches < 1):
            yield f"calibration_batches must be an int >= 1 or None, got {self.calibration_batches!r}"


@dataclass
class RunOptions:
    """timeout_ms > 0: run() raises RunTimeoutError once the run passes that deadline; the
    runtime checks it before every kernel call, so a run never overshoots by more than one kernel.
    Any int is accepted (numpy ints too); one beyond the clock's range means no deadline."""

    tag: str = ""
    log_severity_level: LogLevel = LogLevel.WARNING  # runs log nothing: accepted for compatibility
    timeout_ms: int = 0  # 0 = no timeout

    run_tag = _alias("tag")  # onnxruntime spelling
    log_level = _alias("log_severity_level")

    def validate(self) -> "RunOptions":
        if isinstance(self.timeout_ms, bool) or not isinstance(self.timeout_ms, Integral) or self.timeout_ms < 0:
            raise ValidationError(f"timeout_ms must be an int >= 0 (0 = no timeout), got {self.timeout_ms!r}")
        self.timeout_ms = int(self.timeout_ms)
        if not isinstance(self.tag, str):
            raise ValidationError(f"tag must be a str, got {type(self.tag).__name__}")
        try:
            self.log_severity_level = LogLevel(self.log_severity_level)
        except ValueError:
            raise ValidationError(f"invalid log_severity_level {self.log_severity_level!r}: 0..4 or "
                                  f"{_LOG_LEVEL_NAMES}") from None
        return self


_LOG_LEVEL_NAMES = [name.lower() for name in LogLevel.__members__]


@dataclass
class PassManagerConfig:
    """max_iterations: pipeline sweeps until nothing changes (1 = a single sweep)."""

    level: OptLevel = OptLevel.EXTENDED
    max_iterations: int = 10
    validate: bool = True
    skip_passes: tuple[str, ...] = ()
    verbose: bool = False


@dataclass
class AsyncOptions:
    """num_streams: runtime threads, each with its own queue; max_pending: requests queued or running
    at once over all streams (one more raises QueueFullError at once)."""

    num_streams: int = 2
    max_pending: int = 1024

    def validate(self) -> "AsyncOptions":
        for name in ("num_streams", "max_pending"):
            v = getattr(self, name)
            if type(v) is not int or not 1 <= v <= 1 << 20:
                raise ValidationError(f"AsyncOptions.{name} must be an int in [1, 2**20], got {v!r}")
        return self


@dataclass
class BatchConfig:
    """max_batch_size: rows per batched run; max_latency_us: how long the oldest request of a batch
    waits for more (once it has min_batch_size rows); preferred_sizes: batch sizes to run below
    max_batch_size (enable_padding: pad up to one, else cut down to one); num_workers: batches run at
    once; queue_capacity: queued requests (one more raises QueueFullError at once); timeout_us: a
    request still queued after it fails with RunTimeoutError (0: never; submit() may override);
    priority_aging_us: the wait worth one priority level (PriorityBatcher: low priority never starves)."""

    max_batch_size: int = 32
    max_latency_us: int = 1000
    min_batch_size: int = 1
    preferred_sizes: list = field(default_factory=list)
    enable_padding: bool = False
    num_workers: int = 1
    queue_capacity: int = 1024
    timeout_us: int = 0
    priority_aging_us: int = 10_000

    def validate(self) -> "BatchConfig":
        bounds = {"max_batch_size": (1, 1 << 20), "max_latency_us": (0, 1 << 40), "min_batch_size": (1, 1 << 20),
                  "num_workers": (1, 256), "queue_capacity": (1, 1 << 24), "timeout_us": (0, 1 << 40),
                  "priority_aging_us": (1, 1 << 40)}
        for name, (lo, hi) in bounds.items():
            v = getattr(self, name)
            if type(v) is not int or not lo <= v <= hi:
                raise ValidationError(f"BatchConfig.{name} must be an int in [{lo}, {hi}], got {v!r}")
        if self.min_batch_size > self.max_batch_size:
            raise ValidationError(f"BatchConfig.min_batch_size ({self.min_batch_size}) exceeds max_batch_size "
                                  f"({self.max_batch_size})")
        sizes = self.preferred_sizes
        if not isinstance(sizes, (list, tuple)) or any(type(s) is not int or not 1 <= s <= self.max_batch_size
                                                       for s in sizes):
            raise ValidationError(f"BatchConfig.preferred_sizes must be ints in [1, max_batch_size], got {sizes!r}")
        if type(self.enable_padding) is not bool:
            raise ValidationError(f"BatchConfig.enable_padding must be a bool, got {self.enable_padding!r}")
        return self


@dataclass
class PoolConfig:
    """size_classes: ascending block sizes in bytes (multiples of 16); a larger request gets a
    block of its own (the scratch arenas of most models). max_blocks_per_class: free blocks kept
    per class (and of the large ones). alignment: of every block, a power of two in [16, 4096].
    memory_limit: bytes the pool may hold, in use plus cached (0 = no limit). Trim policy: a
    cached block not reused within trim_idle_frees deallocations is given back to the system
    while more than trim_keep_bytes are cached (trim_idle_frees 0: only trim() gives back)."""

    size_classes: tuple[int, ...] = tuple(64 << i for i in range(11))  # 64 B .. 64 KiB
    max_blocks_per_class: int = 64
    alignment: int = 64
    memory_limit: int = 0
    trim_idle_frees: int = 8
    trim_keep_bytes: int = 32 << 20

    def validate(self) -> "PoolConfig":
        classes = list(self.size_classes)
        if (len(classes) > 64 or not all(is_size(c) and c > 0 and c % 16 == 0 for c in classes)
                or classes != sorted(set(classes))):
            raise ValidationError(f"size_classes must be at most 64 ascending distinct multiples of 16, "
                                  f"got {self.size_classes!r}")
        for name in ("max_blocks_per_class", "memory_limit", "trim_idle_frees", "trim_keep_bytes"):
            if not is_size(getattr(self, name)):
                raise ValidationError(f"{name} must be an int >= 0, got {getattr(self, name)!r}")
        a = self.alignment
        if not is_size(a) or not 16 <= a <= 4096 or a & (a - 1):
            raise ValidationError(f"alignment must be a power of two in [16, 4096], got {a!r}")
        return self


def is_size(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0
