"""CI subset of the ONNX backend conformance suite over every supported-op test.

Every supported-op test must pass: a wrong result, an error, or a variant of a supported operator
refused at compile time (UnsupportedOperatorError / UnsupportedFormatError) fails, unless the test is
listed in KNOWN_FAILURES with its reason.

One test per category, which compiles (two processes, artifact cache) and runs its tests. The full
classified run is `python tests/conformance/run.py` (docs/conformance.md).
"""
import unittest
import warnings

import numpy as np
import pytest
from onnx import helper

import conformance_suite as cs


@pytest.fixture(scope="module")
def supported_tests() -> list[tuple[str, type, str]]:
    return [t for t in cs.cpu_tests(cs.backend_test().test_cases) if cs.is_supported(cs.model_use(t[0], t[2]))]


def category_outcomes(tests, category: str) -> list[cs.Outcome]:
    """One category's tests, compiled (two processes, artifact cache) and run. Per category, not
    the whole subset per module: pytest-xdist may run two categories on two workers, and each then
    compiled every model (four compile processes on two cores)."""
    mine = [(cls, name) for c, cls, name in tests if c == category]
    cs.precompile([cs.model_of_category(category, name) for _, name in mine], jobs=2)
    return [cs.run_test(category, cls, name) for cls, name in mine]


@pytest.mark.slow
@pytest.mark.parametrize("category", list(cs.CATEGORIES.values()))
def test_supported_op_tests_pass(category, supported_tests):
    results = category_outcomes(supported_tests, category)
    failed = cs.unexpected(results)
    assert not failed, f"{len(failed)} of {len(results)} supported-op {category} tests fail:\n" + "\n".join(
        f"  {o.name}: [{o.kind}] {o.reason[:200]}" for o in failed)
    fixed = [o.name for o in results if o.status == "pass" and cs.known_failure(o.name)]
    if fixed:
        warnings.warn(f"listed in KNOWN_FAILURES but pass now (remove them): {fixed}")


def test_a_supported_op_refused_as_unsupported_fails(tmp_path, monkeypatch):
    """A supported operator's test that the compiler refuses (here a 4-D ConvTranspose) is an
    unexpected failure of the CI subset, not a warning."""
    monkeypatch.setattr(cs, "CACHE_DIR", tmp_path)
    node = helper.make_node("ConvTranspose", ["x", "w"], ["y"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", 1, [1, 1, 2, 2, 2, 2])],
                              [helper.make_tensor_value_info("y", 1, [1, 1, 2, 2, 2, 2])],
                              [helper.make_tensor("w", 1, [1, 1, 1, 1, 1, 1], np.ones(1, np.float32))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    assert cs.is_supported(cs.ModelUse.of(model))

    class Case(unittest.TestCase):
        def test_conv_transpose_4d_cpu(self):
            cs.ConformanceBackend.prepare(model)

    outcome = cs.run_test("node", Case, "test_conv_transpose_4d_cpu")
    assert (outcome.status, outcome.kind) == ("fail", "unsupported variant"), outcome
    assert outcome.reason.endswith("ConvTranspose, not 4-D"), outcome.reason
    assert cs.unexpected([outcome]) == [outcome]


def test_deliberate_skips_are_classified():
    """The classification the report relies on: deliberate skips, missing converters, supported."""
    def use(node, opset=17, elem=1):
        graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", elem, [2])],
                                  [helper.make_tensor_value_info("y", elem, [2])])
        return cs.ModelUse.of(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]))

    assert "training" in use(helper.make_node("Adam", ["x"], ["y"])).skip_reason()
    bn = helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y", "rm", "rv"], training_mode=1)
    assert use(bn).skip_reason().startswith("BatchNormalization with training_mode: training operators")
    assert "COMPLEX64" in use(helper.make_node("Relu", ["x"], ["y"]), elem=14).skip_reason()
    # every operator up to opset 21 has a converter or a reason: a made-up op type stands in for a missing one
    assert use(helper.make_node("FutureOp", ["x"], ["y"])).missing_ops() == ["FutureOp"]
    assert use(helper.make_node("Det", ["x"], ["y"])).missing_ops() == []
    # a shape argument fed as a graph input is not refused: its sizes are bound at run time
    assert use(helper.make_node("Reshape", ["x", "x"], ["y"])).skip_reason() is None
    assert cs.is_supported(use(helper.make_node("Shape", ["x"], ["y"]), elem=7))  # answered at import
    relu = use(helper.make_node("Relu", ["x"], ["y"]))
    assert relu.skip_reason() is None and cs.is_supported(relu)
