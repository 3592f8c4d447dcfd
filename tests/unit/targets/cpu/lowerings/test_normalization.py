"""float64 plane kernels in double precision: InstanceNormalization, GroupNormalization (on it),
BatchNormalization with run-time parameters, LRN and the global pools, against numpy in float64
(onnxruntime lacks double kernels for most of them; onnx's reference LRN and stash_type=float32
GroupNormalization are float32-accurate)."""
import numpy as np
from onnx import helper

from conftest import make_model
from pyflame_rt import InferenceSession

F64 = np.float64


def _instance_norm(x, s, b, eps, axes):
    mean, var = x.mean(axis=axes, keepdims=True), x.var(axis=axes, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * s + b


def test_float64_normalizations_and_global_pools_in_double_precision(rng):
    n, c, h, w = 2, 4, 5, 7  # 35-element planes: vectors and a scalar tail
    s, b = rng.uniform(0.5, 1.5, c), rng.normal(size=c)
    eps = float(np.float32(1e-3))
    size, alpha, beta, bias = 3, float(np.float32(1e-2)), float(np.float32(0.75)), 2.0
    nodes = [helper.make_node("InstanceNormalization", ["x", "s", "b"], ["inorm"], epsilon=eps),
             helper.make_node("GroupNormalization", ["x", "s", "b"], ["gnorm"], num_groups=2, epsilon=eps,
                              stash_type=11),
             helper.make_node("BatchNormalization", ["x", "s", "b", "mean", "var"], ["bnorm"], epsilon=eps),
             helper.make_node("LRN", ["x"], ["lrn"], size=size, alpha=alpha, beta=beta, bias=bias),
             helper.make_node("GlobalAveragePool", ["x"], ["gavg"]),
             helper.make_node("GlobalMaxPool", ["x"], ["gmax"])]
    outputs = [(o, [n, c, h, w], F64) for o in ("inorm", "gnorm", "bnorm", "lrn")]
    outputs += [(o, [n, c, 1, 1], F64) for o in ("gavg", "gmax")]
    model = make_model(nodes, [("x", [n, c, h, w], F64), ("mean", [c], F64), ("var", [c], F64)], outputs,
                       {"s": s, "b": b}, opset=21)
    x = rng.normal(size=(n, c, h, w)) * 3 + 1
    mean, var = rng.normal(size=c), rng.uniform(0.5, 2, c)
    got = dict(zip([o[0] for o in outputs],
                   InferenceSession(model.SerializeToString()).run(None, {"x": x, "mean": mean, "var": var})))
    per_channel = (1, c, 1, 1)
    grouped = _instance_norm(x.reshape(n, 2, -1), 1.0, 0.0, eps, (2,)).reshape(x.shape)
    window = np.stack([(x[:, max(0, i - 1):i + 2] ** 2).sum(axis=1) for i in range(c)], axis=1)
    want = {"inorm": _instance_norm(x, s.reshape(per_channel), b.reshape(per_channel), eps, (2, 3)),
            "gnorm": grouped * s.reshape(per_channel) + b.reshape(per_channel),
            "bnorm": (x - mean.reshape(per_channel)) / np.sqrt(var.reshape(per_channel) + eps)
            * s.reshape(per_channel) + b.reshape(per_channel),
            "lrn": x / (bias + alpha / size * window) ** beta,
            "gavg": x.mean(axis=(2, 3), keepdims=True), "gmax": x.max(axis=(2, 3), keepdims=True)}
    for name, expected in want.items():
        assert got[name].dtype == F64, name
        np.testing.assert_allclose(got[name], expected, rtol=1e-13, atol=1e-13, err_msg=name)
