"""The exception hierarchy users catch (names follow the seed API)."""


class PyFlameRTError(Exception):
    """Base class of every error PyFlameRT raises on purpose."""


class InvalidModelError(PyFlameRTError):
    """The model or artifact file is missing, truncated, corrupt or semantically invalid."""


class UnsupportedFormatError(PyFlameRTError):
    """The file is not in a format PyFlameRT reads (or an unsupported version of it)."""


class UnsupportedOperatorError(PyFlameRTError):
    """The model uses an operator (or operator variant) the compiler does not implement."""


class ShapeMismatchError(PyFlameRTError):
    """Tensor shapes are incompatible: in the model or between a feed and the model's input."""


class DTypeMismatchError(PyFlameRTError):
    """A tensor has a different element type than required."""


class ValidationError(PyFlameRTError):
    """Options or IR failed validation; `errors` lists every problem found."""

    def __init__(self, message: str, errors: list[str] | None = None):
        super().__init__(message)
        self.errors = list(errors) if errors is not None else [message]


class BackendError(PyFlameRTError):
    """Code generation, native compilation or the runtime failed."""


class InputError(PyFlameRTError):
    """A run() call was given bad feeds or output names."""


class RunTimeoutError(PyFlameRTError, TimeoutError):
    """A run() exceeded RunOptions.timeout_ms; it was stopped between kernels."""


class RunCancelledError(PyFlameRTError):
    """A run's request was cancelled (AsyncSession.cancel); it was stopped between kernels and has
    no outputs."""


class CacheSecurityError(PyFlameRTError):
    """The compile cache directory is not private: another user owns it, or group or others can
    write it (or read its signing key). Fix its permissions or choose another CacheConfig.dir."""


class MemoryAccessError(PyFlameRTError):
    """A checked build's generated code tried to read or write outside the buffer it was
    accessing (a compiler bug or an unchecked shape assumption); the access was skipped."""


class MemoryLimitError(PyFlameRTError, MemoryError):
    """An allocation (e.g. a run's scratch arena) would take the memory pool past its
    PoolConfig.memory_limit; the run was refused before any kernel ran."""


class QueueFullError(PyFlameRTError):
    """An AsyncSession or batcher queue holds its capacity of pending requests: the request was
    refused at once (back-pressure); retry later or raise the capacity."""


class QueueClosedError(PyFlameRTError):
    """A request was submitted to an AsyncSession or batcher that is not started or was stopped."""


class UnsupportedQuantizationError(PyFlameRTError, NotImplementedError):
    """The requested quantization mode has no kernels in this build (the int8 modes until the
    quantized GEMM / convolution kernels land); the model was not compiled."""
