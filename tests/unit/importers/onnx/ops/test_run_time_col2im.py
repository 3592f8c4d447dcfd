"""ops/run_time_col2im.py: Col2Im with image_shape and block_shape fed at run time, against
onnxruntime: several shapes from one artifact, and shapes the operator refuses raised as a
ShapeMismatchError before the kernels."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from conftest import assert_close, make_model, ort_run
from pyflame_rt import InferenceSession
from pyflame_rt.errors import ShapeMismatchError

I64 = np.int64
pytestmark = pytest.mark.slow  # the index arithmetic's kernels compile in ~15 s


@pytest.fixture(scope="module")
def col2im():
    node = helper.make_node("Col2Im", ["x", "image", "block"], ["y"], strides=[2, 1], dilations=[1, 2],
                            pads=[1, 0, 0, 1])
    model = make_model([node], [("x", ["n", "ck", "l"]), ("image", [2], I64), ("block", [2], I64)],
                       [("y", ["n", "c", "h", "w"])], opset=18)
    return model, InferenceSession(model.SerializeToString())


def _blocks(image, block):
    """The block positions of col2im's attributes (strides 2, 1; dilations 1, 2; pads 1, 0, 0, 1)."""
    return [(i + p - d * (b - 1) - 1) // s + 1 for i, b, s, d, p in zip(image, block, (2, 1), (1, 2), (1, 1))]


@pytest.mark.parametrize("batch,channels,image,block", [(2, 3, (5, 6), (2, 3)), (1, 2, (4, 4), (1, 1)),
                                                        (3, 1, (7, 3), (3, 2))])
def test_col2im_of_run_time_shapes(col2im, rng, batch, channels, image, block):
    model, sess = col2im
    x = rng.standard_normal((batch, channels * int(np.prod(block)), int(np.prod(_blocks(image, block)))), np.float32)
    feed = {"x": x, "image": np.array(image, I64), "block": np.array(block, I64)}
    got, want = sess.run(None, feed)[0], ort_run(model, feed)[0]
    assert_close(got, want, rtol=1e-6)


@pytest.mark.parametrize("image,block,x_shape", [((5, 6), (2, 3), (1, 12, 20)),  # 12 channel taps: 6 per channel
                                                 ((5, 6), (2, 3), (1, 7, 21)),   # 7 not a multiple of 6
                                                 ((5, 0), (2, 3), (1, 6, 21)),
                                                 ((2, 6), (5, 3), (1, 6, 21))])  # the block exceeds the image
def test_col2im_refuses_bad_shapes(col2im, image, block, x_shape):
    _, sess = col2im
    feed = {"x": np.ones(x_shape, np.float32), "image": np.array(image, I64), "block": np.array(block, I64)}
    with pytest.raises(ShapeMismatchError, match="y_dims_valid"):
        sess.run(None, feed)
