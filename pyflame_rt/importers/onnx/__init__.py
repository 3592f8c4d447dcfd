"""Importers: external model formats -> graph dialect + weight side table."""
from pyflame_rt.importers.onnx.importer import ImportOptions, ImportResult, ONNXImporter, from_onnx

__all__ = ["ImportOptions", "ImportResult", "ONNXImporter", "from_onnx"]
