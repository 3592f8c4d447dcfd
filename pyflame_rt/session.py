"""`InferenceSession`: the ONNX Runtime-compatible API over compiled artifacts."""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from pyflame_rt import artifact
from pyflame_rt.compiler import CompiledModel, CompileOptions, compile_model
from pyflame_rt.dialects.symbolic import dim_to_public
from pyflame_rt.errors import DTypeMismatchError, InputError, InvalidModelError, ValidationError
from pyflame_rt.executable import Executable
from pyflame_rt.options import RunOptions, SessionOptions
from pyflame_rt.tensor import Tensor

PROVIDERS = ["PyFlameCPUExecutionProvider"]
_ALIASES = {"CPUExecutionProvider", "PyFlameCPUExecutionProvider", "cpu"}


@dataclass(frozen=True)
class NodeArg:
    """What get_inputs()/get_outputs() return: name, shape (int | str per dim), type."""

    name: str
    shape: list
    type: str


@dataclass(frozen=True)
class ModelMetadata:
    producer_name: str
    graph_name: str
    domain: str
    description: str
    version: int
    custom_metadata_map: dict


class InferenceSession:
    """Open a compiled `.pfm` artifact, or an ONNX model (compiled on open)."""

    def __init__(self, path_or_bytes, sess_options: SessionOptions | None = None,
                 providers: list | None = None, **kwargs):
        self._options = (sess_options or SessionOptions()).validate()
        for p in providers or []:
            name = p[0] if isinstance(p, tuple) else p
            if name not in _ALIASES:
                raise ValidationError(f"execution provider '{name}' is not available; use {PROVIDERS}")
        self._compiled = _open(path_or_bytes, self._options)
        self._exec = Executable(self._compiled, self._options.num_threads)
        self._input_names = [i.name for i in self._exec.inputs]
        self._output_index = {o.name: j for j, o in enumerate(self._exec.outputs)}

    # ------------------------------------------------------------ metadata
    def get_inputs(self) -> list[NodeArg]:
        return [NodeArg(i.name, [dim_to_public(d) for d in i.shape], i.dtype.ort_type) for i in self._exec.inputs]

    def get_outputs(self) -> list[NodeArg]:
        return [NodeArg(o.name, [dim_to_public(d) for d in o.shape], o.dtype.ort_type) for o in self._exec.outputs]

    def get_modelmeta(self) -> ModelMetadata:
        m = self._compiled.header["model"]
        return ModelMetadata(m.get("producer", ""), m.get("graph_name", ""), "", "", 0,
                             dict(m.get("metadata", {})))

    def get_providers(self) -> list[str]:
        return list(PROVIDERS)

    def get_session_options(self) -> SessionOptions:
        return self._options

    @property
    def header(self) -> dict:
        return self._compiled.header

    # ----------------------------------------------------------------- run
    def run(self, output_names, input_feed: dict, run_options: RunOptions | None = None) -> list[np.ndarray]:
        arrays = self._feeds(input_feed)
        outs = self._exec.run(arrays)
        if output_names is None:
            return outs
        if isinstance(output_names, str):
            raise InputError("output_names must be a list of names or None, not a string")
        picked = []
        for name in output_names:
            if name not in self._output_index:
                raise InputError(f"unknown output name '{name}'; the model's outputs are {list(self._output_index)}")
            picked.append(outs[self._output_index[name]])
        return picked

    def _feeds(self, input_feed) -> list[np.ndarray]:
        if not isinstance(input_feed, dict):
            raise InputError(f"input_feed must be a dict of name -> array, got {type(input_feed).__name__}")
        unknown = [k for k in input_feed if k not in self._input_names]
        if unknown:
            raise InputError(f"unknown input name(s) {unknown}; the model's inputs are {self._input_names}")
        missing = [k for k in self._input_names if k not in input_feed]
        if missing:
            raise InputError(f"missing input(s) {missing}; the model's inputs are {self._input_names}")
        arrays = []
        for spec in self._exec.inputs:
            v = input_feed[spec.name]
            if isinstance(v, Tensor):
                v = v.numpy()
            if not isinstance(v, np.ndarray):
                raise InputError(f"input '{spec.name}' must be a numpy array or Tensor, got {type(v).__name__}")
            if v.dtype != spec.dtype.numpy:
                raise DTypeMismatchError(
                    f"input '{spec.name}' expects {spec.dtype.ort_type} ({spec.dtype.value}), got {v.dtype}")
            arrays.append(np.asarray(v, order="C"))  # keeps 0-d feeds 0-d
        return arrays


def _open(path_or_bytes, options: SessionOptions) -> CompiledModel:
    copts = CompileOptions(cpu=options.cpu)
    if isinstance(path_or_bytes, (bytes, bytearray)):
        if bytes(path_or_bytes[:4]) == artifact.MAGIC:
            raise InvalidModelError("load .pfm artifacts from a file path")
        return compile_model(bytes(path_or_bytes), copts)
    if not isinstance(path_or_bytes, (str, os.PathLike)):
        return compile_model(path_or_bytes, copts)  # ModelProto
    path = os.fspath(path_or_bytes)
    if not os.path.exists(path):
        raise InvalidModelError(f"model file not found: {path}")
    if artifact.is_artifact(path):
        return artifact.load(path)
    return compile_model(path, copts)
