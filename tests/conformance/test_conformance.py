"""CI subset of the ONNX backend conformance suite over every supported-op test.

A test passes, or is refused at compile time with a named UnsupportedOperatorError /
UnsupportedFormatError for a variant we do not lower (listed with its reason in
docs/conformance.md); a wrong result or any other error fails, unless in KNOWN_FAILURES.

One test per category, which compiles (two processes, artifact cache) and runs its tests. The full
classified run is `python tests/conformance/run.py` (docs/conformance.md).
"""
import warnings

import pytest

import conformance_suite as cs

pytestmark = pytest.mark.slow


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


@pytest.mark.parametrize("category", list(cs.CATEGORIES.values()))
def test_supported_op_tests_pass(category, supported_tests):
    results = category_outcomes(supported_tests, category)
    refused = [o for o in results if o.status != "pass" and o.kind == "unsupported variant"]
    failed = [o for o in results
              if o.status != "pass" and o.kind != "unsupported variant" and not cs.known_failure(o.name)]
    assert not failed, f"{len(failed)} of {len(results)} supported-op {category} tests fail:\n" + "\n".join(
        f"  {o.name}: [{o.kind}] {o.reason[:200]}" for o in failed)
    if refused:
        warnings.warn(f"{len(refused)} of {len(results)} {category} tests use refused variants "
                      f"(see docs/conformance.md)")
    fixed = [o.name for o in results if o.status == "pass" and cs.known_failure(o.name)]
    if fixed:
        warnings.warn(f"listed in KNOWN_FAILURES but pass now (remove them): {fixed}")


def test_deliberate_skips_are_classified():
    """The classification the report relies on: deliberate skips, missing converters, supported."""
    from onnx import helper

    def use(node, opset=17, elem=1):
        graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", elem, [2])],
                                  [helper.make_tensor_value_info("y", elem, [2])])
        return cs.ModelUse.of(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]))

    assert "training" in use(helper.make_node("Adam", ["x"], ["y"])).skip_reason()
    bn = helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y", "rm", "rv"], training_mode=1)
    assert use(bn).skip_reason().startswith("BatchNormalization with training_mode: training operators")
    assert "UINT16" in use(helper.make_node("Relu", ["x"], ["y"]), elem=4).skip_reason()
    # every operator up to opset 21 has a converter or a reason: a made-up op type stands in for a missing one
    assert use(helper.make_node("FutureOp", ["x"], ["y"])).missing_ops() == ["FutureOp"]
    assert use(helper.make_node("Det", ["x"], ["y"])).missing_ops() == []
    assert "graph input" in use(helper.make_node("Reshape", ["x", "x"], ["y"])).skip_reason()
    # a shape argument computed from an input's values (not its shape) cannot be planned statically
    shape_from_values = helper.make_graph(
        [helper.make_node("Abs", ["x"], ["t"]), helper.make_node("Reshape", ["x", "t"], ["y"])], "g",
        [helper.make_tensor_value_info("x", 7, [2])], [helper.make_tensor_value_info("y", 7, [2])])
    reason = cs.ModelUse.of(helper.make_model(shape_from_values)).skip_reason()
    assert "computed from a graph input's values" in reason
    assert cs.is_supported(use(helper.make_node("Shape", ["x"], ["y"]), elem=7))  # answered at import
    relu = use(helper.make_node("Relu", ["x"], ["y"]))
    assert relu.skip_reason() is None and cs.is_supported(relu)
