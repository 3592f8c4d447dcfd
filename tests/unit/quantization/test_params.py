import numpy as np
import pytest

from pyflame_rt import DType, ValidationError
from pyflame_rt.quantization import QuantParams


def test_symmetric_int8_maps_the_largest_magnitude_to_127():
    p = QuantParams.from_range(-0.5, 2.54)
    assert p.scale == pytest.approx(2.54 / 127) and p.zero_point == 0
    assert p.quantize(np.array([2.54, -0.5, 0.0])).tolist() == [127, -25, 0]


def test_symmetric_uint8_is_centred_on_128():
    p = QuantParams.from_range(-1.27, 1.0, DType.UINT8)
    assert p.scale == pytest.approx(0.01) and p.zero_point == 128
    assert p.quantize(np.array([-1.27, 0.0, 1.0])).tolist() == [1, 128, 228]


def test_asymmetric_uint8_spans_the_range_with_zero_exact():
    lo, hi = -1.0, 3.0
    p = QuantParams.from_range(lo, hi, DType.UINT8, symmetric=False)
    scale = (hi - lo) / 255
    assert p.scale == pytest.approx(scale) and p.zero_point == round(-lo / scale)
    x = np.linspace(lo, hi, 1001, dtype=np.float32)
    assert np.abs(p.dequantize(p.quantize(x)) - x).max() <= scale / 2 + 1e-6
    assert p.dequantize(p.quantize(np.zeros(1))) == 0


def test_asymmetric_int8_of_a_positive_range_includes_zero():
    p = QuantParams.from_range(0.5, 2.0, DType.INT8, symmetric=False)
    assert p.scale == pytest.approx(2.0 / 255) and p.zero_point == -128


def test_per_channel_weights_have_one_scale_per_output_channel():
    w = np.array([[[1.0, -2.0]], [[0.1, 0.05]], [[0.0, 0.0]]], np.float32)  # [out=3, 1, 2]
    p = QuantParams.for_weight(w, axis=0)
    np.testing.assert_allclose(p.scale, [2 / 127, 0.1 / 127, 1.0])  # an all-zero channel: scale 1
    assert p.axis == 0 and p.zero_point.tolist() == [0, 0, 0]
    np.testing.assert_allclose(p.dequantize(p.quantize(w)), w, atol=float(p.scale.max()) / 2)
    per_tensor = QuantParams.for_weight(w)
    assert per_tensor.scale.shape == () and per_tensor.scale == pytest.approx(2 / 127)


def test_storage_type_must_be_8_bit():
    with pytest.raises(ValidationError, match="int8 or uint8"):
        QuantParams.from_range(0, 1, DType.INT16)
