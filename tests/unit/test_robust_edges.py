"""Robust edges: odd paths, names, sizes, options and processes get a clear error or just work."""
import numpy as np
import onnx
from onnx import helper

from conftest import make_model
from test_cli import _cli


def _one_error_line(r) -> str:
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in r.stderr, r.stderr
    return lines[0]


def test_cli_save_dir_keeps_odd_output_names_inside_it(tmp_path):
    names = ["../../x", "/abs", "a/b", "a_b", ".hidden", "..", "A_B"]
    nodes = [helper.make_node("Relu", ["x"], [n]) for n in names]
    model = make_model(nodes, [("x", [2])], [(n, [2]) for n in names])
    onnx.save(model, tmp_path / "m.onnx")
    out = tmp_path / "deep" / "er" / "out"
    out.mkdir(parents=True)
    r = _cli("run", str(tmp_path / "m.onnx"), "--save-dir", str(out))
    assert r.returncode == 0, r.stderr
    files = sorted(p.name for p in out.iterdir())
    assert len(files) == len(names) and all(not f.startswith(".") for f in files)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.npy")) == \
        [f"deep/er/out/{f}" for f in files]


def test_cli_anticipated_errors_are_one_line_without_traceback(tmp_path):
    assert "required: artifact" in _one_error_line(_cli("run"))
    assert "invalid choice" in _one_error_line(_cli("frobnicate"))
    assert "--gemm" in _one_error_line(_cli("bench", "--gemm", "x"))
    onnx.save(make_model([helper.make_node("Relu", ["x"], ["y"])], [("x", [2])], [("y", [2])]),
              tmp_path / "m.onnx")
    assert "--dim" in _one_error_line(_cli("run", str(tmp_path / "m.onnx"), "--dim", "b=\u00b2"))
    line = _one_error_line(_cli("run", str(tmp_path / "m.onnx"), "--save-dir", str(tmp_path / "missing")))
    assert "cannot write" in line and "missing" in line
    line = _one_error_line(_cli("compile", str(tmp_path / "m.onnx"), "-q", "-o", str(tmp_path / "no" / "m.pfm")))
    assert "No such file or directory" in line
    debug = _cli("--debug", "run", str(tmp_path / "missing.pfm"))
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "InvalidModelError" in debug.stderr
