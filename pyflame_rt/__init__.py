"""PyFlameRT: an ahead-of-time deep-learning compiler and inference runtime."""
from pyflame_rt import memory
from pyflame_rt.dtype import DType
from pyflame_rt.errors import (
    BackendError,
    CacheSecurityError,
    DTypeMismatchError,
    InputError,
    InvalidModelError,
    MemoryAccessError,
    MemoryLimitError,
    PyFlameRTError,
    QueueClosedError,
    QueueFullError,
    RunCancelledError,
    RunTimeoutError,
    ShapeMismatchError,
    UnsupportedFormatError,
    UnsupportedOperatorError,
    ValidationError,
)
from pyflame_rt.graph_builder import Graph, Node, TensorInfo
from pyflame_rt.options import ExecutionMode, LogLevel, OptLevel, RunOptions, SessionOptions
from pyflame_rt.session import InferenceSession, NodeArg, from_onnx
from pyflame_rt.tensor import Tensor, from_numpy, to_numpy
from pyflame_rt.version import __version__

_IMPORTER_NAMES = ("ImportOptions", "ImportResult")
_SUBMODULES = ("streaming", "batching", "serving", "quantization")  # `pyflame_rt.batching.BatchConfig()` after `import pyflame_rt`


def __getattr__(name: str):
    """The ONNX importer (onnx, xDSL) loads on first use: running a compiled artifact never needs it."""
    if name in _SUBMODULES:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    if name not in _IMPORTER_NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from pyflame_rt.importers import onnx

    value = getattr(onnx, name)
    globals()[name] = value
    return value


__all__ = [
    "__version__", "DType", "Tensor", "from_numpy", "to_numpy", "from_onnx", "ImportOptions", "ImportResult",
    "InferenceSession", "NodeArg", "Graph", "Node", "TensorInfo", "SessionOptions", "RunOptions", "OptLevel",
    "ExecutionMode", "LogLevel",
    "PyFlameRTError", "InvalidModelError", "UnsupportedFormatError", "UnsupportedOperatorError",
    "ShapeMismatchError", "DTypeMismatchError", "ValidationError", "BackendError", "InputError", "RunTimeoutError",
    "RunCancelledError",
    "CacheSecurityError",
    "MemoryAccessError", "MemoryLimitError", "QueueFullError", "QueueClosedError", "memory",
]
