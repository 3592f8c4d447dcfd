"""ONNX's backend API (`onnx.backend.base.Backend`) over compiled PyFlameRT code.

`prepare` compiles the model to native code (or opens a `.pfm` artifact) and returns
a `PyFlameBackendRep` whose `run` runs the compiled model through an
`InferenceSession`, so onnx's standard backend test runner exercises the real
compiled path:

    import onnx.backend.test, pyflame_rt.backend
    globals().update(onnx.backend.test.BackendTest(pyflame_rt.backend, __name__).test_cases)

Operators the compiler does not implement raise `UnsupportedOperatorError` from `prepare`.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
from onnx.backend.base import Backend, BackendRep

from pyflame_rt.errors import InputError, ValidationError
from pyflame_rt.options import SessionOptions
from pyflame_rt.session import InferenceSession

DEVICES = ("CPU",)


class PyFlameBackendRep(BackendRep):
    """A prepared (compiled) model; `run` takes inputs in graph-input order, as a dict, or one array."""

    def __init__(self, session: InferenceSession):
        self.session = session
        self.input_names = [i.name for i in session.get_inputs()]
        self.output_names = [o.name for o in session.get_outputs()]

    def run(self, inputs: Any, **kwargs: Any) -> list[np.ndarray]:
        return self.session.run(None, self._feeds(inputs))

    def _feeds(self, inputs: Any) -> dict[str, np.ndarray]:
        if isinstance(inputs, Mapping):
            return {k: _array(v) for k, v in inputs.items()}
        if isinstance(inputs, np.ndarray):
            inputs = [inputs]
        if not isinstance(inputs, Sequence):
            raise InputError(f"inputs must be a list, dict or numpy array, got {type(inputs).__name__}")
        if len(inputs) != len(self.input_names):
            raise InputError(f"model takes {len(self.input_names)} inputs {self.input_names}, got {len(inputs)}")
        return dict(zip(self.input_names, map(_array, inputs)))


def _array(v: Any) -> Any:
    """numpy scalars (np.float32(0.5)) are 0-d tensors in the backend API; other values pass unchanged."""
    return np.asarray(v) if isinstance(v, np.generic) else v


class PyFlameBackend(Backend):
    """Compiles with PyFlameRT for the CPU; keyword arguments become `SessionOptions` fields."""

    @classmethod
    def supports_device(cls, device: str) -> bool:
        return str(device).split(":")[0].upper() in DEVICES

    @classmethod
    def prepare(cls, model, device: str = "CPU", **kwargs: Any) -> PyFlameBackendRep:
        """model: a ModelProto, ONNX bytes, or a path to an `.onnx` model or `.pfm` artifact.

        The importer runs onnx's checker (InvalidModelError) and names unsupported operators
        (UnsupportedOperatorError) before any code is generated."""
        if not cls.supports_device(device):
            raise ValidationError(f"device '{device}' is not supported; PyFlameRT runs on {list(DEVICES)}")
        return PyFlameBackendRep(InferenceSession(model, _session_options(kwargs)))

    @classmethod
    def run_model(cls, model, inputs: Any, device: str = "CPU", **kwargs: Any) -> list[np.ndarray]:
        return cls.prepare(model, device, **kwargs).run(inputs)

    @classmethod
    def is_compatible(cls, model, device: str = "CPU", **kwargs: Any) -> bool:
        """Device check only: unsupported operators are reported by `prepare`, with the op named."""
        return cls.supports_device(device)


def _session_options(kwargs: dict) -> SessionOptions:
    options = SessionOptions()
    for key, value in kwargs.items():
        if not hasattr(options, key):
            raise ValidationError(f"unknown backend option '{key}'; use SessionOptions field names")
        setattr(options, key, value)
    return options


# onnx's runner takes a backend module or class; these make the module itself one
prepare = PyFlameBackend.prepare
run_model = PyFlameBackend.run_model
run_node = PyFlameBackend.run_node
supports_device = PyFlameBackend.supports_device
is_compatible = PyFlameBackend.is_compatible

__all__ = ["PyFlameBackend", "PyFlameBackendRep", "prepare", "run_model", "run_node", "supports_device",
           "is_compatible"]
