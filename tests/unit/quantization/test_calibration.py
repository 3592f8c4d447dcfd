import numpy as np
import pytest

from pyflame_rt import InputError, ValidationError
from pyflame_rt.dtype import DType
from pyflame_rt.importers.onnx import from_onnx
from pyflame_rt.quantization import CalibrationMethod, Calibrator, QuantConfig, QuantParams
from pyflame_rt.quantization.calibration import load_calibration_feeds

from .models import mlp


def test_minmax_ranges_are_the_activations_numpy_computes(rng):
    model, w = mlp(rng)
    calibrator = Calibrator(from_onnx(model), QuantConfig.static_int8())
    batches = [rng.standard_normal((4, 8)).astype(np.float32) for _ in range(3)]
    for x in batches:
        calibrator.observe({"x": x})
    info = calibrator.compute_quant_params()
    assert info.batches == 3 and info.method is CalibrationMethod.MinMax
    x = np.concatenate(batches)
    h = x @ w["w1"]
    r = np.maximum(h + w["b1"], 0)
    expected = {"x": x, "mm1:0": h, "add1:0": h + w["b1"], "relu:0": r, "mm2:0": r @ w["w2"]}
    assert set(info.params) == set(expected)  # the float activations MatMul / Add / Relu read, MatMul's results
    for key, values in expected.items():
        want = QuantParams.from_range(values.min(), values.max(), DType.UINT8, symmetric=False)
        assert info.params[key].scale == pytest.approx(want.scale, rel=1e-5), key
        assert info.params[key].zero_point == want.zero_point, key
    np.testing.assert_allclose(info.samples["relu:0"], expected["relu:0"][:4], rtol=1e-5, atol=1e-5)


def test_percentile_and_entropy_clip_within_the_range(rng):
    model, _ = mlp(rng)
    feeds = [{"x": rng.standard_normal((64, 8)).astype(np.float32)} for _ in range(2)]
    scales = {}
    for method in CalibrationMethod:
        config = QuantConfig.static_int8()
        config.calibration_method = method
        calibrator = Calibrator(from_onnx(model), config)
        for f in feeds:
            calibrator.observe(f)
        scales[method] = calibrator.compute_quant_params().params["x"].scale
    x = np.concatenate([f["x"] for f in feeds])
    assert scales[CalibrationMethod.MinMax] == pytest.approx((x.max() - x.min()) / 255, rel=1e-6)
    assert scales[CalibrationMethod.Percentile] <= scales[CalibrationMethod.MinMax]
    assert scales[CalibrationMethod.Entropy] <= scales[CalibrationMethod.MinMax]


def test_bad_calibration_use_is_refused(rng):
    calibrator = Calibrator(from_onnx(mlp(rng)[0]), QuantConfig.static_int8())
    with pytest.raises(ValidationError, match="observe"):
        calibrator.compute_quant_params()
    with pytest.raises(InputError, match="dict"):
        calibrator.observe([np.zeros((1, 8), np.float32)])
    with pytest.raises(InputError, match="unknown input"):
        calibrator.observe({"y": np.zeros((1, 8), np.float32)})
    with pytest.raises(ValidationError, match="ImportResult"):
        Calibrator(mlp(rng)[0], QuantConfig.static_int8())


def test_feeds_from_an_npz_or_a_directory(tmp_path, rng):
    x = rng.standard_normal((3, 2, 8)).astype(np.float32)
    np.savez(tmp_path / "stacked.npz", x=x)
    feeds = load_calibration_feeds(str(tmp_path / "stacked.npz"))
    assert len(feeds) == 3 and np.array_equal(feeds[2]["x"], x[2])
    (tmp_path / "dir").mkdir()
    for i in range(2):
        np.savez(tmp_path / "dir" / f"{i}.npz", x=x[i])
    assert [f["x"].shape for f in load_calibration_feeds(str(tmp_path / "dir"))] == [(2, 8), (2, 8)]
    np.save(tmp_path / "plain.npy", x)
    with pytest.raises(InputError, match="not an .npz"):
        load_calibration_feeds(str(tmp_path / "plain.npy"))
    np.savez(tmp_path / "ragged.npz", x=x, m=x[:2])
    with pytest.raises(InputError, match="same number of batches"):
        load_calibration_feeds(str(tmp_path / "ragged.npz"))
