"""quantize-static-int8's parts that need no compile: its option encoding and weight quantization
(the rewrite itself: tests/filecheck/quantize-static-int8, end to end: tests/unit/quantization)."""
import numpy as np
import pytest

from pyflame_rt import ValidationError
from pyflame_rt.dtype import DType
from pyflame_rt.quantization import QuantParams
from pyflame_rt.transforms.quantize_static import decode_activations, encode_activations, int8_weight


def test_calibrated_parameters_round_trip_through_the_option(rng):
    params = {"x": QuantParams.from_range(-1.3, 2.9, DType.UINT8, symmetric=False),
              "conv:0": QuantParams.from_range(0.0, float(rng.random()) * 7, DType.UINT8, symmetric=False),
              "a=b:0": QuantParams.from_range(-0.5, 0.5, DType.UINT8, symmetric=False)}
    types = decode_activations(encode_activations(params), "u8")
    assert set(types) == set(params)
    for key, p in params.items():  # float32 scales and zero points exactly
        assert np.float32(types[key].scale_values[0]) == p.scale and types[key].zero_point_values[0] == p.zero_point


@pytest.mark.parametrize("entry", ["x", "x=0.1", "x=a:3", "x=0.1:300", "x=-0.1:3"])
def test_a_bad_activation_is_refused_by_name(entry):
    with pytest.raises(ValidationError, match=f"quantize-static-int8: bad activation '{entry}'"):
        decode_activations((entry,), "u8")


def test_int8_weight_per_output_channel_of_a_conv(rng):
    w = rng.standard_normal((3, 2, 3, 3)).astype(np.float32) * np.array([1, 10, 0], np.float32)[:, None, None, None]
    codes, t = int8_weight(w, 0)
    assert codes.dtype == np.int8 and t.per_axis and t.axis.data == 0 and not any(t.zero_point_values)
    assert [int(np.abs(codes[m]).max()) for m in range(3)] == [127, 127, 0]  # an all-zero channel: scale 1
    scales = np.array(t.scale_values, np.float32)
    np.testing.assert_allclose(codes * scales[:, None, None, None], w, atol=float(scales[:2].max()) / 2 + 1e-7)
    codes, t = int8_weight(w, None)
    assert not t.per_axis and int(np.abs(codes).max()) == 127
