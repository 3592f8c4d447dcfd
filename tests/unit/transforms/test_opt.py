"""The graph optimizer: passes, the PassManager, the pyflame_rt.opt API and its wiring into compile."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper

from conftest import ROOT, assert_close, make_model, ort_run
from pyflame_rt import InferenceSession, OptLevel, SessionOptions, ValidationError, opt
from pyflame_rt.importers.onnx import from_onnx
from pyflame_rt.compiler import CompileOptions, compile_model
from pyflame_rt.dialects import graph
from pyflame_rt.dialects.graph_attrs import ActivationAttr
from pyflame_rt.dialects.weights import WeightOp, WeightTable
from pyflame_rt.executable import Executable
from pyflame_rt.dialects.reference import evaluate
from pyflame_rt.transforms.graph_pass import node_census


def _ops(module) -> list[str]:
    return [op.name for op in graph.entry_function(module).body.block.ops]


def _folded_model(rng):
    """y = relu(x @ (w1 + w2)) through an Identity, a duplicated Add and a dead branch."""
    w1, w2 = rng.standard_normal((6, 5), np.float32), rng.standard_normal((6, 5), np.float32)
    nodes = [helper.make_node("Add", ["w1", "w2"], ["w"]), helper.make_node("Identity", ["x"], ["xi"]),
             helper.make_node("MatMul", ["xi", "w"], ["h"]), helper.make_node("MatMul", ["xi", "w"], ["h2"]),
             helper.make_node("Add", ["h", "h2"], ["s"]), helper.make_node("Relu", ["s"], ["y"]),
             helper.make_node("Relu", ["h"], ["unused"])]
    return make_model(nodes, [("x", ["N", 6])], [("y", ["N", 5])], {"w1": w1, "w2": w2})


def test_import_puts_the_weights_in_the_module(rng):
    res = from_onnx(_folded_model(rng))
    assert isinstance(res.weights, WeightTable)
    assert [op.sym_name.data for op in res.module.ops if isinstance(op, WeightOp)] == ["w1", "w2"]
    assert res.weights.add("w1", np.zeros(2, np.float32)) == "w1_1"
    assert sorted(WeightTable.of(res.module)) == ["w1", "w1_1", "w2"]  # every view reads the module


def test_basic_level_folds_dedups_and_cleans_up(rng):
    model = _folded_model(rng)
    res = from_onnx(model)
    x = rng.standard_normal((3, 6), np.float32)
    before = evaluate(res.module, res.weights, {"x": x})
    result = opt.optimize(res, OptLevel.BASIC)
    assert _ops(res.module) == ["graph.constant", "graph.matmul", "graph.add", "graph.relu", "func.return"]
    assert list(res.weights) == ["w_folded"]  # w1 + w2 folded into one new weight, both originals dropped
    s = result.stats
    assert (s.nodes_before, s.nodes_after) == (7, 3)
    assert s.constants_folded == 1 and s.initializers_removed == 2 and s.nodes_removed == 4
    per_pass = {p.name: p.stats for p in result.passes}
    assert per_pass["eliminate-common-subexpressions"].nodes_removed == 1
    assert result.iterations >= 2  # the last sweep changed nothing
    after = evaluate(res.module, res.weights, {"x": x})
    assert_close(after[0], before[0], 1e-6)
    assert_close(after[0], ort_run(model, {"x": x})[0], 1e-5)


def test_cse_merges_initializers_with_identical_bytes(rng):
    w = rng.standard_normal((4, 4), np.float32)
    nodes = [helper.make_node("MatMul", ["x", "wa"], ["a"]), helper.make_node("MatMul", ["x", "wb"], ["b"]),
             helper.make_node("Add", ["a", "b"], ["y"])]
    res = from_onnx(make_model(nodes, [("x", ["N", 4])], [("y", ["N", 4])], {"wa": w, "wb": w.copy()}))
    opt.eliminate_common_subexpressions(res)
    r = opt.eliminate_dead_code(res)
    assert _ops(res.module).count("graph.matmul") == 1
    assert list(res.weights) == ["wa"] and r.stats.initializers_removed == 1


def test_fold_limits_are_options(rng):
    res = from_onnx(_folded_model(rng))
    r = opt.fold_constants(res, max_bytes=16)  # the 6x5 float sum is 120 bytes
    assert r.stats.constants_folded == 0 and sorted(res.weights) == ["w1", "w2"]
    r = opt.fold_constants(res, exclude=("graph.add",))
    assert r.stats.constants_folded == 0 and not r.changed
    r = opt.fold_constants(res, fold_expensive=False)
    assert r.stats.constants_folded == 1 and r.changed and "w_folded" in res.weights


def test_pass_manager_levels_and_skip():
    assert opt.PassManager.create_default(OptLevel.NONE).pass_names == []
    basic = opt.PassManager.create_default(OptLevel.BASIC).pass_names
    assert basic == ["fold-constants", "eliminate-dead-code", "eliminate-common-subexpressions"]
    ext = opt.PassManager.create_default(OptLevel.EXTENDED).pass_names
    assert ext[:3] == basic and set(opt.LEVEL_PIPELINES[OptLevel.ALL]) >= set(ext)
    pm = opt.PassManager.create_default(OptLevel.BASIC, skip_passes=("fold-constants",))
    assert pm.pass_names == basic[1:]
    with pytest.raises(ValidationError, match="unknown passes.*no-such-pass"):
        opt.PassManager.create_default(OptLevel.BASIC, skip_passes=("no-such-pass",))
    with pytest.raises(ValidationError, match="max_iterations"):
        opt.PassManager(["fold-constants"], opt.PassManagerConfig(max_iterations=0))
    with pytest.raises(ValidationError, match="bad pass 'fold-constants{nope=1}'"):
        opt.PassManager(["fold-constants{nope=1}"])
    with pytest.raises(ValidationError, match="invalid optimization level"):
        opt.PassManager.create_default(7)


def test_pass_specs_with_options_and_verbose_log(rng):
    res = from_onnx(_folded_model(rng))
    lines = []
    pm = opt.PassManager(["fold-constants{max-bytes=16}", "eliminate-dead-code"],
                         opt.PassManagerConfig(verbose=True), log=lines.append)
    r = pm.run(res)
    assert r.passes[0].stats.constants_folded == 0
    assert any("fold-constants: nodes 7 -> 6" in line for line in lines)
    assert any("eliminate-dead-code: nodes 6 -> 5" in line for line in lines)
    assert "pipeline: nodes 7 -> 5" in r.report()


def test_validation_names_the_pass_that_broke_the_ir(rng):
    from dataclasses import dataclass

    from xdsl.dialects.builtin import SymbolRefAttr

    @dataclass(frozen=True)
    class LoseAWeight(opt.GraphPass):
        name = "test-lose-a-weight"

        def rewrite(self, module, weights, stats):
            for op in module.walk():
                if isinstance(op, graph.ConstantOp):
                    op.weight = SymbolRefAttr("nowhere")
            return True

    res = from_onnx(_folded_model(rng))
    with pytest.raises(ValidationError, match="after pass 'test-lose-a-weight' weights \\['nowhere'\\]"):
        opt.PassManager([LoseAWeight()]).run(res)


def _outputs_agree_across_levels(model, rng, rtol=1e-5, oracle_rtol=None):
    """Compile unoptimized (NONE) and at EXTENDED, run both on one random feed (dynamic dims: batch 1,
    others 16; integer inputs 0/1): outputs within rtol of each other, and, with oracle_rtol, the
    optimized outputs within oracle_rtol of onnxruntime's."""
    res = from_onnx(model)
    args = graph.entry_function(res.module).args
    feeds = []
    for arg in args:
        shape = [d if d >= 0 else (1 if i == 0 else 16) for i, d in enumerate(arg.type.get_shape())]
        dtype = graph.dtype_of(arg.type).numpy
        feeds.append(rng.integers(0, 2, shape).astype(dtype) if np.issubdtype(dtype, np.integer)
                     else rng.standard_normal(shape).astype(dtype))
    outs = {}
    for level in (OptLevel.NONE, OptLevel.EXTENDED):
        compiled = compile_model(res, CompileOptions(opt_level=level))
        o = compiled.header["optimization"]
        assert o["level"] == level.name and o["nodes_before"] == sum(node_census(res.module).values())
        outs[level] = Executable(compiled, 2).run(feeds)
    for a, b in zip(outs[OptLevel.NONE], outs[OptLevel.EXTENDED]):
        assert_close(b, a, rtol)
    if oracle_rtol is not None:
        proto = onnx.load(model)
        inits = {i.name for i in proto.graph.initializer}
        names = [i.name for i in proto.graph.input if i.name not in inits]
        for want, got in zip(ort_run(proto, dict(zip(names, feeds))), outs[OptLevel.EXTENDED]):
            assert_close(got, want, oracle_rtol)


@pytest.mark.slow
def test_compiled_outputs_agree_across_levels(rng):
    """The example MLP and the folding model: NONE vs EXTENDED within 1e-5, node counts reported."""
    for model in (str(ROOT / "examples" / "mlp.onnx"), _folded_model(rng)):
        _outputs_agree_across_levels(model, rng)


# BatchNorm is kept in the CNN exports so that fold-batch-norm is exercised; the transformers are small
# configurations. Unoptimized, the CNNs keep torch's weight Identities and run BatchNorm on its own.
BENCHMARK_CONFIGS = {
    "mlp": {}, "squeezenet": {}, "mobilenetv2": {"fold_batch_norm": False},
    "resnet50": {"fold_batch_norm": False},
    "bert": {"layers": 2, "d": 128, "heads": 2}, "gpt": {"layers": 2, "d": 128, "heads": 2},
}


@pytest.mark.slow
@pytest.mark.parametrize("name", BENCHMARK_CONFIGS)
def test_benchmark_models_agree_across_levels(name, benchmark_onnx, rng):
    """NONE vs EXTENDED within 1e-5, and EXTENDED (with optimize-layout) vs onnxruntime within 1e-4."""
    _outputs_agree_across_levels(benchmark_onnx(name, **BENCHMARK_CONFIGS[name]), rng, oracle_rtol=1e-4)


@pytest.mark.slow
def test_session_options_drive_the_optimizer(rng, capsys):
    model = _folded_model(rng)
    x = rng.standard_normal((2, 6), np.float32)
    sess = InferenceSession(model.SerializeToString(),
                            SessionOptions(optimization_level=OptLevel.BASIC, verbose_optimization=True))
    assert "fold-constants: nodes 7 -> 5, nodes removed 2, constants folded 1" in capsys.readouterr().err
    assert sess.header["optimization"]["nodes_after"] == 3
    assert_close(sess.run(None, {"x": x})[0], ort_run(model, {"x": x})[0], 1e-5)
    plain = InferenceSession(model.SerializeToString(), SessionOptions(optimization_level=OptLevel.NONE))
    assert plain.header["optimization"]["nodes_after"] == 7


def _chain_model(n_blocks: int, rng):
    """6 nodes per block: Add, Identity, Mul by a tied 0.5 vector, the same Relu twice, Add."""
    nodes, inits, x = [], {}, "x"
    for i in range(n_blocks):
        inits[f"b{i}"] = rng.standard_normal(8, np.float32)
        inits[f"s{i}"] = np.full(8, 0.5, np.float32)
        nodes += [helper.make_node("Add", [x, f"b{i}"], [f"a{i}"]),
                  helper.make_node("Identity", [f"a{i}"], [f"i{i}"]),
                  helper.make_node("Mul", [f"i{i}", f"s{i}"], [f"m{i}"]),
                  helper.make_node("Relu", [f"m{i}"], [f"r{i}"]),
                  helper.make_node("Relu", [f"m{i}"], [f"q{i}"]),
                  helper.make_node("Add", [f"r{i}", f"q{i}"], [f"o{i}"])]
        x = f"o{i}"
    return make_model(nodes, [("x", ["N", 8])], [(x, ["N", 8])], inits)


def test_a_thousand_node_graph_optimizes(rng):
    res = from_onnx(_chain_model(167, rng))
    assert sum(node_census(res.module).values()) == 1002
    x = rng.standard_normal((2, 8), np.float32)
    before = evaluate(res.module, res.weights, {"x": x})[0]
    r = opt.optimize(res, OptLevel.EXTENDED)
    assert r.stats.nodes_after <= 4 * 167  # Identity and one Relu of every block are gone
    assert r.stats.initializers_removed == 166  # the tied 0.5-vectors collapse into one
    assert_close(evaluate(res.module, res.weights, {"x": x})[0], before, 1e-6)


@pytest.mark.slow
def test_cli_opt_level_and_pyflame_opt_levels(tmp_path):
    exe = Path(sys.executable).parent
    out = tmp_path / "m.pfm"
    r = subprocess.run([str(exe / "pyflame-rt"), "compile", str(ROOT / "examples" / "mlp.onnx"), "-o", str(out),
                        "--opt-level", "0", "-q"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([str(exe / "pyflame-rt"), "inspect", str(out)], capture_output=True, text=True)
    assert "optimization  NONE: 6 -> 6 graph nodes" in r.stdout
    r = subprocess.run([str(exe / "pyflame-opt"), str(ROOT / "examples" / "mlp.onnx"), "-O1", "--print-stats"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "graph.gemm" in r.stdout and "pipeline: nodes 6 -> 6" in r.stderr


def _fusion_model(rng):
    """Every fusion of fuse-matmul-add / fuse-mul-add / fuse-activation, on 2-D and 3-D activations."""
    w = rng.standard_normal((8, 4), np.float32)
    b = rng.standard_normal(4, np.float32)
    b14 = rng.standard_normal((1, 4), np.float32)
    s = rng.standard_normal(4, np.float32)
    nodes = [helper.make_node("MatMul", ["x2", "w"], ["m2"]), helper.make_node("Add", ["m2", "b"], ["a2"]),
             helper.make_node("Relu", ["a2"], ["r2"]),                                   # -> gemm{relu}
             helper.make_node("MatMul", ["x3", "w"], ["m3"]), helper.make_node("Add", ["b14", "m3"], ["a3"]),
             helper.make_node("Relu", ["a3"], ["y3"]),                                   # -> matmul_bias{relu}
             helper.make_node("Mul", ["r2", "s"], ["ms"]), helper.make_node("Add", ["ms", "b"], ["mab"]),
             helper.make_node("Relu", ["mab"], ["rm"]),                                  # -> mul_add{relu}
             helper.make_node("Add", ["rm", "r2"], ["ar"]), helper.make_node("Relu", ["ar"], ["y2"]),  # add{relu}
             helper.make_node("Gemm", ["x2", "w"], ["g"], alpha=0.5, beta=2.0),
             helper.make_node("Add", ["g", "b"], ["y4"])]                               # gemm + C
    return make_model(nodes, [("x2", ["N", 8]), ("x3", ["N", 3, 8])],
                      [("y2", ["N", 4]), ("y3", ["N", 3, 4]), ("y4", ["N", 4])],
                      {"w": w, "b": b, "b14": b14, "s": s})


@pytest.mark.slow
def test_fusions_preserve_semantics_in_compiled_code(rng):
    model = _fusion_model(rng)
    res = from_onnx(model)
    r = opt.fuse_operators(res)
    ops = _ops(res.module)
    assert "graph.relu" not in ops and "graph.matmul" not in ops and "graph.mul" not in ops
    assert ops.count("graph.gemm") == 2 and "graph.matmul_bias" in ops and "graph.mul_add" in ops
    assert r.stats.nodes_fused == 8 and (r.stats.nodes_before, r.stats.nodes_after) == (13, 5)
    feeds = {"x2": rng.standard_normal((5, 8), np.float32), "x3": rng.standard_normal((5, 3, 8), np.float32)}
    want = ort_run(model, feeds)
    for level in (OptLevel.NONE, OptLevel.EXTENDED):
        sess = InferenceSession(model.SerializeToString(), SessionOptions(optimization_level=level))
        for got, w in zip(sess.run(None, feeds), want):
            assert_close(got, w, 1e-5)
    kernels = sess.header["kernels"]
    assert any("relu" in k for k in kernels if k.startswith("gemm")), kernels
    assert any(k.startswith("ew_mul_add_relu") for k in kernels), kernels


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("arch", ["bert", "gpt"])
def test_transformer_subgraphs_become_single_ops(arch):
    """Torch exports below opset 17/20 decompose LayerNorm and GELU; EXTENDED restores one op each,
    turns every Linear into matmul_bias (the GELU becomes the first FFN GEMM's epilogue), and the compiled outputs agree with NONE and onnxruntime."""
    tiny = pytest.importorskip("models.tiny_transformers")
    torch = tiny.torch
    torch.manual_seed(0)
    ids = torch.zeros(2, 5, dtype=torch.long)
    if arch == "bert":
        model = tiny.export(tiny.TinyBert(layers=1), (ids, torch.ones(2, 5, dtype=torch.long)), ["ids", "mask"],
                            {0: "batch", 1: "seq"}, opset=14)
    else:
        model = tiny.export(tiny.TinyGPT(layers=1), (ids,), ["ids"], {0: "batch", 1: "seq"}, opset=14)
    res = from_onnx(model)
    r = opt.optimize(res, OptLevel.EXTENDED)
    ops = node_census(res.module)
    print(f"\n{arch}: {r.stats.nodes_before} -> {r.stats.nodes_after} nodes\n{r.report()}")
    assert ops["graph.layer_norm"] == 3 and ops["graph.matmul_bias"] == 6 and "graph.gelu" not in ops
    acts = [graph.activation_of(op) for op in graph.entry_function(res.module).body.block.ops]
    assert acts.count(ActivationAttr("gelu" if arch == "bert" else "gelu_tanh")) == 1, acts  # in the first FFN GEMM
    assert "graph.sqrt" not in ops and "graph.erf" not in ops and "graph.tanh" not in ops
    rng = np.random.default_rng(0)
    feeds = {"ids": rng.integers(0, 100, (3, 9))}
    if arch == "bert":
        feeds["mask"] = np.ones((3, 9), np.int64)
        feeds["mask"][0, 7:] = 0
    outs = {level: InferenceSession(model.SerializeToString(), SessionOptions(optimization_level=level))
            .run(None, feeds)[0] for level in (OptLevel.NONE, OptLevel.EXTENDED)}
    assert_close(outs[OptLevel.EXTENDED], outs[OptLevel.NONE], 1e-5)
    assert_close(outs[OptLevel.EXTENDED], ort_run(model, feeds)[0], 1e-4)


def test_div_by_power_of_two_then_add_is_one_exact_mul_add(rng):
    """scores / 8 + mask (attention) becomes one mul_add whose results equal the Div's bit for bit;
    / 3 has no exact reciprocal and stays a Div."""
    nodes = [helper.make_node("Div", ["x", "eight"], ["d"]), helper.make_node("Add", ["d", "mask"], ["y"]),
             helper.make_node("Div", ["x", "three"], ["d3"]), helper.make_node("Add", ["d3", "mask"], ["z"])]
    model = make_model(nodes, [("x", ["N", 3, 16])], [("y", ["N", 3, 16]), ("z", ["N", 3, 16])],
                       {"eight": np.array(8, np.float32), "three": np.array(3, np.float32),
                        "mask": rng.standard_normal((1, 16), np.float32)})
    res = from_onnx(model)
    opt.fuse_operators(res)
    ops = _ops(res.module)
    assert ops.count("graph.mul_add") == 1 and ops.count("graph.div") == 1, ops
    feeds = {"x": rng.standard_normal((2, 3, 16), np.float32) * 100}
    got = InferenceSession(model.SerializeToString()).run(None, feeds)
    want = ort_run(model, feeds)
    assert np.array_equal(got[0], want[0])
    assert_close(got[1], want[1], 1e-6)
