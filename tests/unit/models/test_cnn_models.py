"""Model-level CNN tests: the onnx package's "light" model zoo and a torch ResNet-style model."""
import io
import os

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from conftest import assert_close, ort_run
from pyflame_rt import InferenceSession, OptLevel, SessionOptions

pytestmark = pytest.mark.slow

LIGHT = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light")
# all nine pass; the CI run keeps the four quickest (the others take 1.5-5 min each here, mostly
# weight handling of 240-550 MB models): PYFLAME_FULL_ZOO=1 runs them all
LIGHT_MODELS = ["squeezenet", "shufflenet", "resnet50", "inception_v1"]
if os.environ.get("PYFLAME_FULL_ZOO") == "1":
    LIGHT_MODELS += ["bvlc_alexnet", "densenet121", "inception_v2", "vgg19", "zfnet512"]


def _fold_constant_of_shape(model: onnx.ModelProto) -> onnx.ModelProto:
    """The light models build every weight with ConstantOfShape(initializer shape). The importer
    keeps those as run-time graph.constant_of_shape ops (fold-constants has no reference for them
    yet) and the CPU Conv lowering packs weights at compile time, so the test turns them into
    initializers first, as an exporter would have."""
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    keep = []
    for node in model.graph.node:
        if node.op_type == "ConstantOfShape" and node.input[0] in inits:
            value = numpy_helper.to_array(node.attribute[0].t) if node.attribute else np.zeros(1, np.float32)
            arr = np.full(inits[node.input[0]].astype(np.int64), value.ravel()[0], dtype=value.dtype)
            model.graph.initializer.append(numpy_helper.from_array(arr, node.output[0]))
        else:
            keep.append(node)
    del model.graph.node[:]
    model.graph.node.extend(keep)
    model.ir_version = max(model.ir_version, 4)  # initializers that are not graph inputs
    return model


def _light_input(model: onnx.ModelProto) -> dict:
    """The input the onnx backend runner uses for these models: arange(n) / n."""
    inits = {t.name for t in model.graph.initializer}
    (x,) = [i for i in model.graph.input if i.name not in inits]
    shape = tuple(d.dim_value or 1 for d in x.type.tensor_type.shape.dim)
    n = int(np.prod(shape))
    return {x.name: (np.arange(n).reshape(shape) / n).astype(np.float32)}


@pytest.mark.parametrize("name", LIGHT_MODELS)
def test_light_model_zoo(name):
    model = _fold_constant_of_shape(onnx.load(os.path.join(LIGHT, f"light_{name}.onnx")))
    feed = _light_input(model)
    ref = numpy_helper.to_array(onnx.load_tensor(os.path.join(LIGHT, f"light_{name}_output_0.pb")))
    (got,) = InferenceSession(model.SerializeToString()).run(None, feed)
    np.testing.assert_allclose(got, ref, rtol=1e-3, atol=1e-7)
    assert_close(got, ort_run(model, feed)[0], rtol=1e-4)
    # every optimization preserves semantics: the unoptimized compile agrees within 1e-5 (issue #4)
    plain = InferenceSession(model.SerializeToString(), SessionOptions(optimization_level=OptLevel.NONE))
    assert_close(got, plain.run(None, feed)[0], rtol=1e-5)


def _resnet_style_model() -> bytes:
    torch = pytest.importorskip("torch")
    nn = torch.nn

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.c1, self.b1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)
            self.c2, self.b2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)
            self.down = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                         if stride != 1 or cin != cout else nn.Identity())

        def forward(self, x):
            y = torch.relu(self.b1(self.c1(x)))
            return torch.relu(self.b2(self.c2(y)) + self.down(x))

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 16, 7, 2, 3), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(3, 2, 1))
            self.blocks = nn.Sequential(Block(16, 16, 1), Block(16, 32, 2), Block(32, 64, 2))
            self.fc = nn.Linear(64, 10)

        def forward(self, x):
            x = self.blocks(self.stem(x))
            return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))

    torch.manual_seed(0)
    net = Net().eval()
    with torch.no_grad():  # non-trivial BN statistics
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    buf = io.BytesIO()
    torch.onnx.export(net, (torch.randn(1, 3, 64, 64),), buf, input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}}, opset_version=17, dynamo=False)
    return buf.getvalue()


def test_torch_resnet_style_dynamic_batch(rng):
    data = _resnet_style_model()
    model = onnx.load_from_string(data)
    sess = InferenceSession(data)
    assert sess.get_inputs()[0].shape[0] == "batch"
    for batch in (1, 3):
        feed = {"x": rng.standard_normal((batch, 3, 64, 64)).astype(np.float32)}
        (got,) = sess.run(None, feed)
        assert_close(got, ort_run(model, feed)[0], rtol=1e-4)
