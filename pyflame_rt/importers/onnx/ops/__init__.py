"""ONNX operator converters, one module per operator family; importing registers them."""
from pyflame_rt.importers.onnx.ops import bitwise, composite, core, index, layout, math, nn, reduce, sequence, tensor  # noqa: F401
from pyflame_rt.importers.onnx.ops import control, deform_conv, detection, linalg, quant, recurrent  # noqa: F401
from pyflame_rt.importers.onnx.ops import resample, signal, transformer, unpool  # noqa: F401
