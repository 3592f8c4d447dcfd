"""Importers: external model formats -> graph dialect + weight side table."""
from pyflame_rt.import_module.onnx_importer import ImportOptions, ImportResult, ONNXImporter, from_onnx

__all__ = ["ImportOptions", "ImportResult", "ONNXImporter", "from_onnx"]
