"""Importers: external model formats -> graph dialect (weights as `graph.weight` ops)."""
from pyflame_rt.import_module.onnx_importer import ImportOptions, ImportResult, ONNXImporter, from_onnx

__all__ = ["ImportOptions", "ImportResult", "ONNXImporter", "from_onnx"]
