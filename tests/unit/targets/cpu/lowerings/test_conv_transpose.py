"""ConvTranspose compiled to native code (GEMM + col2im) vs onnxruntime, odd shapes and every attribute."""
import numpy as np
import pytest
from onnx import helper

from conftest import assert_close, make_model, ort_run
from pyflame_rt import InferenceSession
from pyflame_rt.errors import ShapeMismatchError, UnsupportedOperatorError


def _x(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def _run(rng, x_shape, w_shape, attrs, bias=True, batches=(1, 3), dyn=True):
    """One ConvTranspose node with constant weights; compiled once, run at each batch size."""
    nsp = len(x_shape) - 2
    inits = {"w": _x(rng, *w_shape), **({"b": _x(rng, w_shape[1] * attrs.get("group", 1))} if bias else {})}
    node = helper.make_node("ConvTranspose", ["x", "w"] + (["b"] if bias else []), ["y"], **attrs)
    lead = "N" if dyn else x_shape[0]
    model = make_model([node], [("x", [lead, *x_shape[1:]])], [("y", [lead] + [None] * (nsp + 1))], inits)
    sess = InferenceSession(model.SerializeToString())
    for b in batches if dyn else (x_shape[0],):
        feed = {"x": _x(rng, b, *x_shape[1:])}
        got, want = sess.run(None, feed)[0], ort_run(model, feed)[0]
        assert_close(got, want)


CASES_2D = [
    dict(),
    dict(strides=[2, 2]),
    dict(strides=[3, 2], pads=[1, 0, 2, 1]),
    dict(strides=[2, 3], output_padding=[1, 2]),
    dict(dilations=[2, 3], strides=[2, 1]),
    dict(strides=[2, 2], pads=[2, 2, 2, 2], dilations=[2, 1], output_padding=[1, 0]),
    dict(strides=[3, 2], output_shape=[10, 8]),
    dict(strides=[2, 2], output_shape=[12, 14]),  # one larger than the full output: zero border
    dict(strides=[2, 2], auto_pad="SAME_UPPER"),
    dict(strides=[3, 3], auto_pad="SAME_LOWER"),
    dict(auto_pad="VALID", strides=[2, 1]),
]


@pytest.mark.parametrize("case", range(len(CASES_2D)))
@pytest.mark.slow
def test_conv_transpose_2d(case, rng):
    _run(rng, (1, 5, 5, 6), (5, 7, 3, 3), CASES_2D[case], bias=case % 2 == 0)


@pytest.mark.parametrize("group,cin,mg,stride", [(2, 4, 3, 1), (3, 9, 1, 2), (5, 5, 2, 2)])
@pytest.mark.slow
def test_conv_transpose_grouped(group, cin, mg, stride, rng):
    _run(rng, (1, cin, 7, 4), (cin, mg, 3, 2), dict(group=group, strides=[stride] * 2, pads=[1, 0, 0, 1]))


@pytest.mark.parametrize("k", [(1, 1), (4, 4), (2, 5)])
@pytest.mark.slow
def test_conv_transpose_kernel_shapes(k, rng):
    _run(rng, (1, 6, 9, 11), (6, 11, *k), dict(strides=[2, 2]))


@pytest.mark.slow
def test_conv_transpose_1d(rng):
    _run(rng, (1, 3, 17), (3, 5, 4), dict(strides=[3], pads=[1, 2], dilations=[2], output_padding=[1]))


def test_conv_transpose_3d(rng):
    _run(rng, (1, 3, 4, 5, 3), (3, 2, 3, 2, 3), dict(strides=[2, 1, 3], pads=[1, 0, 0, 0, 1, 1]))


def test_conv_transpose_wide_rows_vectorized(rng):
    """Unit W stride over rows longer than several vectors: the vector path plus its scalar tail."""
    _run(rng, (2, 4, 3, 37), (4, 3, 2, 5), dict(pads=[0, 2, 1, 1]), dyn=False)


def test_conv_transpose_bad_group_is_refused():
    node = helper.make_node("ConvTranspose", ["x", "w"], ["y"], group=2)
    model = make_model([node], [("x", [1, 3, 4, 4])], [("y", [1, None, None, None])],
                       {"w": np.zeros((3, 2, 3, 3), np.float32)})
    with pytest.raises(ShapeMismatchError, match="divisible by group"):
        InferenceSession(model.SerializeToString())


def test_conv_transpose_output_shape_beyond_a_stride_is_refused():
    node = helper.make_node("ConvTranspose", ["x", "w"], ["y"], strides=[2, 2], output_shape=[13, 15])
    model = make_model([node], [("x", [1, 5, 5, 6])], [("y", [1, None, None, None])],
                       {"w": np.zeros((5, 7, 3, 3), np.float32)})
    with pytest.raises(UnsupportedOperatorError, match="exceeds the full output"):
        InferenceSession(model.SerializeToString())


def test_conv_transpose_runtime_weight_and_bias(rng):
    """Weights and bias fed as graph inputs: A is read through transposed strides."""
    node = helper.make_node("ConvTranspose", ["x", "w", "b"], ["y"], group=2, strides=[2, 3], pads=[1, 0, 0, 2])
    model = make_model([node], [("x", [2, 4, 5, 3]), ("w", [4, 3, 3, 4]), ("b", [6])], [("y", [2, None, None, None])])
    feed = {"x": _x(rng, 2, 4, 5, 3), "w": _x(rng, 4, 3, 3, 4), "b": _x(rng, 6)}
    assert_close(InferenceSession(model.SerializeToString()).run(None, feed)[0], ort_run(model, feed)[0])


@pytest.mark.parametrize("image,block,attrs", [
    ([5, 5], [1, 5], {}),
    ([6, 7], [2, 3], dict(strides=[2, 1], pads=[1, 0, 0, 2])),
    ([9, 8], [2, 2], dict(dilations=[3, 2], strides=[1, 2])),
    ([7], [3], dict(strides=[2], pads=[1, 1])),
    ([3, 4, 5], [1, 2, 2], dict(pads=[0, 1, 0, 0, 1, 1])),
])
def test_col2im_is_the_scatter_add_alone(image, block, attrs, rng):
    nsp = len(image)
    strides, dilations = attrs.get("strides", [1] * nsp), attrs.get("dilations", [1] * nsp)
    pads = attrs.get("pads", [0] * 2 * nsp)
    blocks = int(np.prod([(image[i] + pads[i] + pads[nsp + i] - dilations[i] * (block[i] - 1) - 1) // strides[i] + 1
                          for i in range(nsp)]))
    c = 3 * int(np.prod(block))
    node = helper.make_node("Col2Im", ["x", "image", "block"], ["y"], **attrs)
    model = make_model([node], [("x", ["N", c, blocks])], [("y", ["N", 3, *image])],
                       {"image": np.array(image), "block": np.array(block)}, opset=18)
    sess = InferenceSession(model.SerializeToString())
    for n in (1, 2):
        feed = {"x": _x(rng, n, c, blocks)}
        assert_close(sess.run(None, feed)[0], ort_run(model, feed)[0], rtol=1e-5)


def test_col2im_with_a_wrong_block_count_is_refused():
    node = helper.make_node("Col2Im", ["x", "image", "block"], ["y"])
    model = make_model([node], [("x", [1, 4, 10])], [("y", [1, 1, 4, 4])],
                       {"image": np.array([4, 4]), "block": np.array([2, 2])}, opset=18)
    with pytest.raises(ShapeMismatchError, match="differs from the 9 block positions"):
        InferenceSession(model.SerializeToString())


@pytest.mark.parametrize("x_shape, w_shape, attrs", [
    ((2, 4, 5, 6), (4, 3, 3, 3), dict(strides=[2, 1], pads=[1, 0, 0, 1])),
    ((1, 4, 7), (4, 2, 3), dict(group=2, strides=[2], dilations=[2])),
])
def test_float64_conv_transpose_in_double_precision(x_shape, w_shape, attrs, rng):
    """The GEMM's F64 panels and the col2im scatter-add in float64. onnxruntime has no double
    ConvTranspose: onnx's reference evaluator (float64) is the oracle, one group at a time (it
    mishandles groups)."""
    from onnx.reference import ReferenceEvaluator

    g = attrs.get("group", 1)
    w, b = rng.standard_normal(w_shape), rng.standard_normal(w_shape[1] * g)
    node = helper.make_node("ConvTranspose", ["x", "w", "b"], ["y"], **attrs)
    model = make_model([node], [("x", list(x_shape), np.float64)], [("y", [None] * len(x_shape), np.float64)],
                       {"w": w, "b": b})
    x = rng.standard_normal(x_shape)
    got = InferenceSession(model.SerializeToString()).run(None, {"x": x})[0]
    assert got.dtype == np.float64
    one_group = helper.make_node("ConvTranspose", ["x", "w", "b"], ["y"], **{**attrs, "group": 1})
    cg, mg = x_shape[1] // g, w_shape[1]
    want = np.concatenate([ReferenceEvaluator(one_group).run(
        None, {"x": x[:, i * cg:(i + 1) * cg], "w": w[i * cg:(i + 1) * cg], "b": b[i * mg:(i + 1) * mg]})[0]
        for i in range(g)], axis=1)
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-13)
