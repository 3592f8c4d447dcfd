"""Loading and running a compiled artifact imports only the runtime side (no xDSL, no onnx)."""
import json
import subprocess
import sys

import numpy as np
import onnx
from onnx import helper

from conftest import make_model
from pyflame_rt import artifact
from pyflame_rt.compiler import compile_model
from pyflame_rt.dtype import DType

COMPILER_SIDE = ("xdsl", "onnx", "ml_dtypes", "pyflame_rt.compiler", "pyflame_rt.importers.onnx",
                 "pyflame_rt.targets.cpu.lower_graph", "pyflame_rt.transforms")

CHILD = """
import json, sys
import numpy as np
import pyflame_rt
sess = pyflame_rt.InferenceSession(sys.argv[1])
y = sess.run(None, {"x": np.ones((3, 8), np.float32)})[0]
heavy = sorted({m for m in sys.modules for p in json.loads(sys.argv[2]) if m == p or m.startswith(p + ".")})
print(json.dumps({"heavy": heavy, "y": y.tolist()}))
"""


def _mlp_artifact(tmp_path, rng) -> tuple[str, np.ndarray]:
    w = rng.standard_normal((8, 5)).astype(np.float32)
    model = make_model([helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Relu", ["h"], ["y"])],
                       [("x", ["batch", 8])], [("y", ["batch", 5])], {"w": w})
    path = str(tmp_path / "m.pfm")
    artifact.save(compile_model(model), path)
    return path, np.maximum(np.ones((3, 8), np.float32) @ w, 0)


def test_running_an_artifact_imports_no_compiler_side(tmp_path, rng):
    path, want = _mlp_artifact(tmp_path, rng)
    out = subprocess.run([sys.executable, "-c", CHILD, path, json.dumps(COMPILER_SIDE)],
                         check=True, capture_output=True, text=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["heavy"] == []
    np.testing.assert_allclose(np.array(result["y"], np.float32), want, rtol=1e-5)


def test_cli_run_imports_no_compiler_side(tmp_path, rng):
    path, _ = _mlp_artifact(tmp_path, rng)
    code = ("import json, sys; from pyflame_rt.cli import main; main(['run', sys.argv[1], '--dim', 'batch=2']); "
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('xdsl', 'onnx'))))")
    out = subprocess.run([sys.executable, "-c", code, path], check=True, capture_output=True, text=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_importer_names_still_load_on_first_use():
    import pyflame_rt
    from pyflame_rt.dialects import Graph

    assert callable(pyflame_rt.from_onnx) and pyflame_rt.ImportOptions and pyflame_rt.ImportResult
    assert Graph.name == "graph"


def test_dtype_onnx_codes_match_onnx():
    for dt in DType:
        assert dt.onnx == getattr(onnx.TensorProto, {"FLOAT32": "FLOAT", "FLOAT64": "DOUBLE"}.get(dt.name, dt.name))
        assert DType.from_onnx(dt.onnx) is dt
        assert DType.from_numpy(dt.numpy) is dt
