"""Shapes fed as graph inputs: their elements become dims bound from the feed's values at run time."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

import pyflame_rt
from pyflame_rt import memory
from pyflame_rt.errors import MemoryLimitError, ShapeMismatchError
from pyflame_rt.options import PoolConfig
from pyflame_rt.value_dims import from_header

from conftest import make_model, ort_run


@pytest.fixture(scope="module")
def shapes_model():
    """y = ConstantOfShape(s), z = Expand(x, t) + 1, s and t graph inputs: one artifact serves every
    value of s and t."""
    model = make_model(
        [helper.make_node("ConstantOfShape", ["s"], ["y"], value=helper.make_tensor("v", TensorProto.FLOAT, [1], [2.5])),
         helper.make_node("Expand", ["x", "t"], ["e"]),
         helper.make_node("Add", ["e", "one"], ["z"])],
        [("s", [2], np.int64), ("x", [3, 1]), ("t", [2], np.int64)], [("y", ["a", "b"]), ("z", ["p", "q"])],
        initializers={"one": np.ones(1, np.float32)})
    return model, pyflame_rt.InferenceSession(model.SerializeToString())


def _feeds(s, t):
    return {"s": np.array(s, np.int64), "x": np.arange(3, dtype=np.float32).reshape(3, 1), "t": np.array(t, np.int64)}


def test_sizes_follow_the_fed_values(shapes_model):
    model, sess = shapes_model
    assert [o.shape for o in sess.get_outputs()] == [["s_0", "s_1"], [3, "t_1"]]
    for s, t in [([2, 3], [3, 4]), ([0, 5], [3, 1]), ([4, 1], [3, 7]), ([2, 3], [3, 4])]:
        got, want = sess.run(None, _feeds(s, t)), ort_run(model, _feeds(s, t))
        for g, w in zip(got, want):
            assert g.shape == w.shape and np.array_equal(g, w)


def test_a_negative_size_is_refused_before_any_kernel(shapes_model):
    _, sess = shapes_model
    with pytest.raises(ShapeMismatchError, match=r"input 's' element 1 is -3: it is the size 's_1'"):
        sess.run(None, _feeds([2, -3], [3, 4]))


def test_sizes_that_do_not_fit_int64_are_refused(shapes_model):
    _, sess = shapes_model
    with pytest.raises(ShapeMismatchError, match=r"exceed 2\*\*63 bytes"):
        sess.run(None, _feeds([2 ** 31, 2 ** 31], [3, 4]))


def test_an_expand_target_of_1_broadcasts_to_the_input_dim(shapes_model):
    """x's dim 3 against t's element 0: the output keeps 3 whether t gives 1 or 3."""
    model, sess = shapes_model
    for t in ([1, 4], [3, 4], [1, 1]):
        got, want = sess.run(None, _feeds([1, 1], t))[1], ort_run(model, _feeds([1, 1], t))[1]
        assert got.shape == want.shape and np.array_equal(got, want)


def test_a_value_that_contradicts_the_model_is_refused(shapes_model):
    """Expand's shape function requires the target's first dim to be 1 or x's 3: checked before any
    kernel runs."""
    _, sess = shapes_model
    with pytest.raises(ShapeMismatchError, match=r"do not broadcast: 2 \(t_0\) does not broadcast to 3"):
        sess.run(None, _feeds([1, 1], [2, 4]))


def test_scratch_sized_by_values_is_bounded_by_the_pool_limit(shapes_model):
    _, sess = shapes_model
    memory.set_global_pool_config(PoolConfig(memory_limit=1 << 20))
    try:  # Expand's result lives in the arena: 3 * 2**18 floats
        with pytest.raises(MemoryLimitError):
            sess.run(None, _feeds([1, 1], [3, 1 << 18]))
    finally:
        memory.set_global_pool_config(PoolConfig())


def test_the_header_entry_must_read_an_integer_element():
    f32, i64 = np.dtype(np.float32), np.dtype(np.int64)
    assert from_header([["n", 1, 2]], [f32, i64], [4, 3])[0].index == 2
    with pytest.raises(ValueError, match="not an int64 or int32 input"):
        from_header([["n", 0, 0]], [f32, i64], [4, 3])
    with pytest.raises(ValueError, match="element 3 of an input of static size 3"):
        from_header([["n", 1, 3]], [f32, i64], [4, 3])


def test_tile_repeats_fed_as_an_input():
    model = make_model([helper.make_node("Tile", ["x", "r"], ["y"])], [("x", [2, 3]), ("r", [2], np.int64)],
                       [("y", [None, None])])
    sess = pyflame_rt.InferenceSession(model.SerializeToString())
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    for r in ([1, 2], [3, 1], [0, 2]):
        feeds = {"x": x, "r": np.array(r, np.int64)}
        got, want = sess.run(None, feeds)[0], ort_run(model, feeds)[0]
        assert got.shape == want.shape and np.array_equal(got, want)


def test_topk_k_fed_as_an_input(rng):
    model = make_model([helper.make_node("TopK", ["x", "k"], ["v", "i"], axis=1)], [("x", [3, 6]), ("k", [1], np.int64)],
                       [("v", [3, None]), ("i", [3, None], np.int64)])
    sess = pyflame_rt.InferenceSession(model.SerializeToString())
    x = rng.standard_normal((3, 6)).astype(np.float32)
    for k in (1, 4, 0, 6):
        feeds = {"x": x, "k": np.array([k], np.int64)}
        for got, want in zip(sess.run(None, feeds), ort_run(model, feeds)):
            assert got.shape == want.shape and np.array_equal(got, want)
    with pytest.raises(ShapeMismatchError, match="TopK k is larger than the axis"):
        sess.run(None, {"x": x, "k": np.array([7], np.int64)})
