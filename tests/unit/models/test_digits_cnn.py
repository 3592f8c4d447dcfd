"""Static INT8 accuracy on a real task: a small CNN trained here on scikit-learn's handwritten digits,
compiled in float32 and in static INT8 calibrated on training images, scored on held-out ones."""
import io

import numpy as np
import pytest

from pyflame_rt import InferenceSession, SessionOptions
from pyflame_rt.quantization import QuantConfig

torch = pytest.importorskip("torch")
datasets = pytest.importorskip("sklearn.datasets")

TRAIN = 1200  # of the 1797 images; the other 597 are the test set


def _digits() -> tuple[np.ndarray, np.ndarray]:
    digits = datasets.load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None]  # [n, 1, 8, 8] in [0, 1]
    order = np.random.default_rng(0).permutation(len(x))
    return x[order], digits.target[order]


def _trained_cnn(x: np.ndarray, y: np.ndarray) -> bytes:
    """Conv-Relu-MaxPool twice, Flatten, Linear; 12 epochs of Adam, one thread (a few seconds)."""
    from torch import nn

    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Flatten(), nn.Linear(16 * 2 * 2, 10))
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))
    try:
        for _ in range(12):
            perm = torch.randperm(len(xt))
            for i in range(0, len(xt), 32):
                batch = perm[i:i + 32]
                opt.zero_grad()
                nn.functional.cross_entropy(net(xt[batch]), yt[batch]).backward()
                opt.step()
    finally:
        torch.set_num_threads(threads)
    buf = io.BytesIO()
    torch.onnx.export(net.eval(), (torch.zeros(1, 1, 8, 8),), buf, input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}}, opset_version=17, dynamo=False)
    return buf.getvalue()


@pytest.mark.slow  # trains for a few seconds
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_static_int8_accuracy_is_within_0_3_points_of_float32():
    x, y = _digits()
    model = _trained_cnn(x[:TRAIN], y[:TRAIN])
    calibration = iter(np.array_split(x[:TRAIN], 8))
    options = SessionOptions(quantization=QuantConfig.static_int8(), calibration_data=lambda: {"x": next(calibration)},
                             calibration_batches=8)
    float32, int8 = InferenceSession(model), InferenceSession(model, options)
    accuracy = {name: float(np.mean(s.run(None, {"x": x[TRAIN:]})[0].argmax(axis=1) == y[TRAIN:]))
                for name, s in (("float32", float32), ("int8", int8))}
    assert accuracy["float32"] >= 0.9  # it learned
    assert abs(accuracy["int8"] - accuracy["float32"]) <= 0.003, accuracy
    report = int8.quantization_report()
    assert [(layer.op_type, layer.precision) for layer in report.layers] == [
        ("Conv", "int8"), ("Conv", "int8"), ("Gemm", "int8")]
    assert report.compression_ratio > 3.5
