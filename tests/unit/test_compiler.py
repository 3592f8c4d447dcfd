"""The compile driver's process-wide settings: the collector runs less often during a compile and
is as it was afterwards, also after a compile that failed."""
import gc

import pytest
from onnx import helper

from pyflame_rt.compiler import compile_model
from pyflame_rt.errors import PyFlameRTError

from conftest import make_model


def relu_model():
    return make_model([helper.make_node("Relu", ["x"], ["y"])], [("x", ["n"])], [("y", ["n"])])


def test_a_compile_raises_the_collectors_threshold_and_restores_it():
    before = gc.get_threshold()
    during = []
    compile_model(relu_model(), log=lambda _: during.append(gc.get_threshold()))
    assert during and all(t[0] > before[0] and t[1:] == before[1:] for t in during)
    assert gc.get_threshold() == before
    with pytest.raises(PyFlameRTError):
        compile_model(b"not an onnx model")
    assert gc.get_threshold() == before
