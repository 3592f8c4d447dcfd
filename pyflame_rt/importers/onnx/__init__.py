"""Importers: external model formats -> graph dialect (weights as `graph.weight` ops)."""
from pyflame_rt.importers.onnx.importer import ImportResult, ONNXImporter, from_onnx
from pyflame_rt.options import ImportOptions

__all__ = ["ImportOptions", "ImportResult", "ONNXImporter", "from_onnx"]
