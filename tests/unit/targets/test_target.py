"""The Target interface: the compiler driver runs whichever target it is given, and graph passes
learn what a target's kernels support from the target object they are handed.

`ChannelsFirstCPU` is a second target defined here: the CPU's real lowering and code generation,
but capabilities without channels-last kernels and a graph pipeline of its own (no fusions).
Compiling through it changes nothing in the driver."""
from dataclasses import dataclass, replace

import numpy as np
import pytest
from onnx import helper

from conftest import assert_close, make_model, ort_run
from pyflame_rt import OptLevel, ValidationError
from pyflame_rt.importers.onnx import from_onnx
from pyflame_rt.compiler import CompileOptions, compile_model
from pyflame_rt.dialects import graph_nn as nn
from pyflame_rt.executable import Executable
from pyflame_rt.targets.cpu.target import CPUTarget
from pyflame_rt.targets.target import Capabilities, Target, no_op
from pyflame_rt.transforms.pass_manager import BASIC_PASSES, PassManager
from pyflame_rt.transforms.optimize_layout import OptimizeLayout

CPU = CPUTarget.named("x86-64-v3")


@dataclass(frozen=True)
class ChannelsFirstCPU(Target):
    cpu: CPUTarget

    @property
    def capabilities(self) -> Capabilities:
        return replace(self.cpu.capabilities, channels_last=no_op)

    @property
    def legalizations(self) -> tuple[str, ...]:
        return self.cpu.legalizations

    def pipeline(self, level: OptLevel) -> tuple[str, ...]:
        return (*BASIC_PASSES, "optimize-layout") if level > OptLevel.NONE else ()

    def lower(self, module, options):
        return self.cpu.lower(module, options)

    def emit(self, lowered, options, times):
        return self.cpu.emit(lowered, options, times)


def conv_relu_pool(rng):
    w = (rng.standard_normal((8, 3, 3, 3)) * 0.3).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("MaxPool", ["r"], ["y"], kernel_shape=[2, 2], strides=[2, 2])]
    return make_model(nodes, [("x", [1, 3, 8, 8])], [("y", [1, 8, 4, 4])], {"w": w})


def run_compiled(compiled, feeds):
    return Executable(compiled, 1).run(list(feeds.values()))[0]


def test_the_driver_runs_the_target_it_is_given(rng):
    model = conv_relu_pool(rng)
    feeds = {"x": rng.standard_normal((1, 3, 8, 8)).astype(np.float32)}
    expected = ort_run(model, feeds)[0]
    cpu = compile_model(model, target=CPU)
    second = compile_model(model, target=ChannelsFirstCPU(CPU))
    # the CPU's optimize-layout converts the conv and the pool to its channels-last kernels; handed
    # the second target, the same pass finds no channels-last kernel and leaves them NCHW
    assert any("nhwc" in k for k in cpu.header["kernels"])
    assert not any("nhwc" in k for k in second.header["kernels"])
    assert set(second.header["optimization"]["passes"]) == {*CPU.legalizations, *BASIC_PASSES, "optimize-layout"}
    assert "fuse-activation" in cpu.header["optimization"]["passes"]
    for compiled in (cpu, second):
        assert compiled.header["target"]["cpu"] == "x86-64-v3"
        assert_close(run_compiled(compiled, feeds), expected)


def test_the_default_target_is_the_cpu_of_the_options(rng):
    header = compile_model(conv_relu_pool(rng), CompileOptions(cpu="x86-64-v3")).header
    assert header["target"]["cpu"] == "x86-64-v3"
    with pytest.raises(ValidationError, match="target must be a Target"):
        compile_model(conv_relu_pool(rng), target="x86-64-v3")


def test_a_target_dependent_pass_is_handed_its_target(rng):
    module = from_onnx(conv_relu_pool(rng)).module
    with pytest.raises(ValidationError, match="pass 'optimize-layout' depends on the target"):
        PassManager(["optimize-layout"]).run(module)
    PassManager([OptimizeLayout(target=ChannelsFirstCPU(CPU))], target=CPU).run(module)  # its own target wins
    assert not any(op.layout.data == "NHWC" for op in module.walk() if isinstance(op, (nn.ConvOp, nn.MaxPoolOp)))
    PassManager(["optimize-layout"], target=CPU).run(module)
    assert all(op.layout.data == "NHWC" for op in module.walk() if isinstance(op, (nn.ConvOp, nn.MaxPoolOp)))


def test_the_cpu_target_states_its_capabilities():
    caps = CPU.capabilities
    assert nn.ConvOp in caps.float32_only and nn.MaxPoolOp in caps.float32_only
    assert Capabilities().float32_only == frozenset() and not Capabilities().channels_last(None)
    assert "lower-graph-to-cpu" in {p.name for p in CPU.passes}
