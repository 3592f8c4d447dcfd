"""Out-of-tree passes: the decorator (a module imported or --load-ed) and the `pyflame_rt.passes`
entry point, both seen by pyflame-opt and nameable in the PassManager."""
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
from onnx import helper

from conftest import ROOT, assert_close, make_model, ort_run
from pyflame_rt import opt
from pyflame_rt.importers.onnx import from_onnx
from pyflame_rt.dialects import graph
from pyflame_rt.transforms.registry import all_passes, load_pass_plugin

OPT = str(Path(sys.executable).parent / "pyflame-opt")


def test_the_documented_example_registers_and_runs_in_the_pass_manager(rng):
    load_pass_plugin(str(ROOT / "examples" / "div_to_mul_pass.py"))
    assert "div-to-mul" in all_passes()
    c = np.array([2.0, 4.0, -8.0], np.float32)
    model = make_model([helper.make_node("Div", ["x", "c"], ["y"])], [("x", ["N", 3])], [("y", ["N", 3])],
                       {"c": c})
    res = from_onnx(model)
    r = opt.PassManager(["div-to-mul", "eliminate-dead-code"]).run(res)
    ops = [op.name for op in graph.entry_function(res.module).body.block.ops]
    assert "graph.div" not in ops and "graph.mul" in ops and r.stats.initializers_removed == 1
    x = rng.standard_normal((4, 3), np.float32)
    from pyflame_rt.dialects.reference import evaluate
    assert_close(evaluate(res.module, res.weights, {"x": x})[0], ort_run(model, {"x": x})[0], 1e-6)


def test_an_entry_point_pass_appears_in_pyflame_opt(tmp_path):
    (tmp_path / "my_passes.py").write_text(textwrap.dedent('''
        from dataclasses import dataclass
        from pyflame_rt.transforms.graph_pass import GraphPass

        @dataclass(frozen=True)
        class CountNodes(GraphPass):
            """Writes the node count on the module (an entry-point pass, not decorated)."""
            name = "count-nodes"

            def rewrite(self, module, weights, stats):
                from xdsl.dialects.builtin import IntegerAttr, i64
                from pyflame_rt.transforms.graph_pass import node_census
                module.attributes["graph.node_count"] = IntegerAttr(sum(node_census(module).values()), i64)
                return True
    '''))
    dist = tmp_path / "my_passes-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: my-passes\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[pyflame_rt.passes]\ncount-nodes = my_passes:CountNodes\n")
    env = {"PYTHONPATH": str(tmp_path), "PATH": str(Path(sys.executable).parent)}
    r = subprocess.run([OPT, "--list-passes"], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "count-nodes" in r.stdout and "Writes the node count" in r.stdout
    r = subprocess.run([OPT, str(ROOT / "examples" / "mlp.onnx"), "-p", "count-nodes"],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "graph.node_count = 6 : i64" in r.stdout


def test_bad_plugins_are_named_errors(tmp_path):
    r = subprocess.run([OPT, "--load", str(tmp_path / "missing.py"), "--list-passes"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 1 and "cannot load pass plugin" in r.stderr and "missing.py" in r.stderr
    r = subprocess.run([OPT, "--load", "no_such_module_xyz", "--list-passes"], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 1 and "no_such_module_xyz" in r.stderr
