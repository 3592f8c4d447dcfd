"""Tensor: the guide's constructors, properties and operations, and tensors as session feeds."""
import numpy as np
import pytest
from onnx import helper

from conftest import assert_close, make_model, ort_run
from pyflame_rt import DType, InferenceSession, InputError, ShapeMismatchError, Tensor, from_numpy, to_numpy


def test_tensor_of_shape_and_dtype_allocates_zeros():
    t = Tensor([2, 3, 4], DType.Float32)
    assert t.shape == (2, 3, 4) and t.dtype is DType.Float32
    assert (t.ndim, t.num_elements, t.size_bytes, t.nbytes) == (3, 24, 96, 96)
    assert t.is_valid and t.owns_data
    np.testing.assert_array_equal(t.numpy(), np.zeros((2, 3, 4), np.float32))
    assert Tensor([5], DType.Int64).numpy().dtype == np.int64
    assert Tensor([], DType.Float64).shape == () and Tensor([0, 3], DType.UInt8).num_elements == 0


def test_from_numpy_shares_memory_and_round_trips():
    arr = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)
    t = from_numpy(arr)
    assert t.shape == (2, 3) and t.dtype is DType.Float32 and not t.owns_data
    assert np.shares_memory(t.numpy(), arr) and np.allclose(t.numpy(), arr)
    assert to_numpy(t) is t.numpy()
    strided = from_numpy(np.arange(12, dtype=np.int32).reshape(3, 4).T)  # made C-contiguous
    assert strided.numpy().flags.c_contiguous and strided.numpy()[1, 2] == 9


def test_clone_reshape_zero_fill():
    t = from_numpy(np.arange(24, dtype=np.float32).reshape(2, 3, 4))
    clone = t.clone()
    assert clone.owns_data and not np.shares_memory(clone.numpy(), t.numpy())
    reshaped = t.reshape([6, 4])
    assert reshaped.shape == (6, 4) and np.shares_memory(reshaped.numpy(), t.numpy())
    t.zero()
    assert not t.numpy().any() and not reshaped.numpy().any()  # a reshape is a view
    np.testing.assert_array_equal(clone.numpy().ravel(), np.arange(24))  # the clone is untouched
    clone.fill(2.5)
    assert (clone.numpy() == 2.5).all()


def _read_only(arr):
    arr.setflags(write=False)
    return arr


@pytest.mark.parametrize("call,error,match", [
    (lambda: Tensor([2, 3], "float32"), InputError, "dtype must be a DType"),
    (lambda: Tensor([2, -1], DType.Float32), InputError, "list of ints >= 0"),
    (lambda: Tensor([2.0, 3], DType.Float32), InputError, "list of ints >= 0"),
    (lambda: Tensor(np.zeros((2, 3)), DType.Float32), InputError, "from_numpy"),
    (lambda: Tensor([2**62, 2**62], DType.Float32), InputError, "cannot allocate"),
    (lambda: from_numpy([1.0, 2.0]), InputError, "numpy array"),
    (lambda: Tensor([2, 3], DType.Float32).reshape([5]), ShapeMismatchError, "6 elements"),
    (lambda: from_numpy(_read_only(np.ones(3, np.float32))).zero(), InputError, "read-only"),
    (lambda: Tensor([2], DType.Int8).fill(1000), InputError, "cannot fill"),
])
def test_bad_tensor_calls_raise_specific_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_allocated_and_wrapped_tensors_are_session_feeds():
    model = make_model([helper.make_node("Add", ["a", "b"], ["y"])], [("a", [2, 3]), ("b", [2, 3])], [("y", [2, 3])])
    a = Tensor([2, 3], DType.Float32)
    a.fill(1.5)
    b = from_numpy(np.arange(6, dtype=np.float32).reshape(3, 2)).reshape([2, 3])
    got = InferenceSession(model.SerializeToString()).run(None, {"a": a, "b": b})[0]
    assert_close(got, ort_run(model, {"a": a.numpy(), "b": b.numpy()})[0])
