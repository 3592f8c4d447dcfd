"""Session and run options (ONNX Runtime-style names)."""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

from pyflame_rt.errors import ValidationError


class OptLevel(IntEnum):
    NONE = 0
    BASIC = 1
    EXTENDED = 2
    ALL = 3


class ExecutionMode(IntEnum):
    SEQUENTIAL = 0
    PARALLEL = 1


@dataclass
class SessionOptions:
    """num_threads: worker threads (0 = one per core). cpu: compile target for .onnx inputs."""

    num_threads: int = 0
    optimization_level: OptLevel = OptLevel.EXTENDED
    execution_mode: ExecutionMode = ExecutionMode.SEQUENTIAL
    device: str = "cpu"
    cpu: str | None = None
    log_severity_level: int = 2
    enable_profiling: bool = False
    verbose_optimization: bool = False
    custom_metadata: dict = field(default_factory=dict)

    # onnxruntime spelling, so migrated code keeps working
    @property
    def intra_op_num_threads(self) -> int:
        return self.num_threads

    @intra_op_num_threads.setter
    def intra_op_num_threads(self, n: int) -> None:
        self.num_threads = n

    @property
    def graph_optimization_level(self) -> OptLevel:
        return self.optimization_level

    @graph_optimization_level.setter
    def graph_optimization_level(self, level) -> None:
        self.optimization_level = OptLevel(int(level))

    def validate(self) -> "SessionOptions":
        if not isinstance(self.num_threads, int) or self.num_threads < 0:
            raise ValidationError(f"num_threads must be an int >= 0, got {self.num_threads!r}")
        if self.num_threads > 1024:
            raise ValidationError(f"num_threads {self.num_threads} is unreasonable (max 1024)")
        if self.device != "cpu":
            raise ValidationError(f"device '{self.device}' is not available; PyFlameRT runs on 'cpu'")
        try:
            self.optimization_level = OptLevel(int(self.optimization_level))
        except ValueError:
            raise ValidationError(f"invalid optimization_level {self.optimization_level!r}") from None
        if self.log_severity_level not in range(5):
            raise ValidationError(f"log_severity_level must be 0..4, got {self.log_severity_level}")
        return self


@dataclass
class RunOptions:
    tag: str = ""
    log_severity_level: int = 2
    timeout_ms: int = 0  # 0 = no timeout
