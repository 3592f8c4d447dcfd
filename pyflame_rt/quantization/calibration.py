"""`Calibrator`: runs the float32 model with PyFlameRT on calibration feeds and gathers, per
activation tensor a quantized layer reads, the statistics its quantization parameters come from.

The model (prepared: quantization/prepare.py) is compiled once as a variant whose outputs also include those activations (the float
operands of the ops of `OBSERVED` that no constant defines). Tensors are named by `value_keys`,
a deterministic naming of the graph function's values, so a `GraphQuantInfo` applies to any copy
of the same imported graph."""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import ArrayAttr, DictionaryAttr, FunctionType, ModuleOp
from xdsl.ir import BlockArgument, SSAValue

from pyflame_rt.dialects import graph, graph_nn as nn
from pyflame_rt.dialects.assumptions import collect
from pyflame_rt.dtype import DType
from pyflame_rt.errors import InputError, ValidationError
from pyflame_rt.importers.onnx import ImportResult
from pyflame_rt.options import CalibrationMethod, QuantConfig
from pyflame_rt.quantization.histogram import TensorStats, entropy_threshold, percentile_threshold
from pyflame_rt.quantization.params import QuantParams
from pyflame_rt.quantization.prepare import prepare
from pyflame_rt.transforms.convert_to_half import HALF_OPS
from pyflame_rt.transforms.quantize_static import value_keys

# the ops whose float activations are observed: every op a quantization mode converts, and Concat;
# and those whose float results are too: the layers static INT8 quantizes the outputs of, and Relu
# (the output clamp of the layer before it)
OBSERVED = (*HALF_OPS.values(), nn.ConcatOp)
RESULT_OBSERVED = tuple(HALF_OPS[kind] for kind in ("MatMul", "Gemm", "Conv", "Relu"))
_OBSERVE_PREFIX = "__observed_"


def observed_values(fn: func.FuncOp) -> dict[str, SSAValue]:
    """Key -> value for the float32, non-constant operands of the ops of OBSERVED and results of
    those of RESULT_OBSERVED."""
    keys = value_keys(fn)
    values = [v for op in fn.body.block.ops for v in (*(op.operands if isinstance(op, OBSERVED) else ()),
                                                      *(op.results if isinstance(op, RESULT_OBSERVED) else ()))]
    return {keys[v]: v for v in values
            if graph.dtype_of(v.type) is DType.FLOAT32 and not isinstance(v.owner, graph.ConstantOp)}


@dataclass
class GraphQuantInfo:
    """What calibration found: per observed tensor its quantization parameters (activation
    dtype, the config's method) and its values in the first batch (for the per-layer error)."""

    params: dict[str, QuantParams]
    samples: dict[str, np.ndarray] = field(default_factory=dict)
    method: CalibrationMethod = CalibrationMethod.MinMax
    batches: int = 0


class Calibrator:
    """`observe(feeds)` once per calibration batch, then `compute_quant_params()`."""

    def __init__(self, graph_: ImportResult, config: QuantConfig):
        if not isinstance(graph_, ImportResult):
            raise ValidationError(f"Calibrator takes an imported graph (ImportResult), got {type(graph_).__name__}")
        self.config = config.validated()
        self._graph = graph_
        self._module = prepare(graph_.module.clone())
        self._session = None
        self._sources: dict[str, tuple[str, object]] = {}  # key -> ("input", name) | ("output", index)
        histogram = self.config.calibration_method is not CalibrationMethod.MinMax
        self._stats = {key: TensorStats(histogram) for key in observed_values(graph.entry_function(self._module))}
        self._samples: dict[str, np.ndarray] = {}
        self.batches = 0

    def observe(self, feeds: dict) -> None:
        """Run the float32 model on one batch and add every observed tensor to its statistics."""
        if not isinstance(feeds, dict):
            raise InputError(f"a calibration batch must be a dict of input name -> array, got {type(feeds).__name__}")
        session = self._observing_session()
        outputs = session.run(None, feeds)
        for key, stats in self._stats.items():
            kind, where = self._sources[key]
            value = np.asarray(feeds[where] if kind == "input" else outputs[where])
            stats.update(value)
            self._samples.setdefault(key, value.copy())
        self.batches += 1

    def compute_quant_params(self) -> GraphQuantInfo:
        if self.batches == 0:
            raise ValidationError("no calibration data: call observe(feeds) at least once before compute_quant_params()")
        c = self.config
        params = {key: QuantParams.from_range(*self._range(stats), c.activation_dtype if not c.mode.is_half
                                              else DType.INT8, c.symmetric)
                  for key, stats in self._stats.items()}
        return GraphQuantInfo(params, dict(self._samples), c.calibration_method, self.batches)

    def _range(self, stats: TensorStats) -> tuple[float, float]:
        method = self.config.calibration_method
        if method is CalibrationMethod.Percentile:
            return stats.clipped(percentile_threshold(stats, self.config.percentile))
        if method is CalibrationMethod.Entropy:
            return stats.clipped(entropy_threshold(stats))
        return stats.lo, stats.hi

    def _observing_session(self):
        if self._session is None:
            from pyflame_rt.session import InferenceSession  # the compiler side loads the quantizer

            module = observing_module(self._module, self._sources)
            self._session = InferenceSession(ImportResult(module=module, opset=self._graph.opset))
        return self._session


def observing_module(module: ModuleOp, sources: dict) -> ModuleOp:
    """A copy of `module` whose function also returns every observed value that is neither an
    input nor already an output; `sources` is filled with where each key's values come from."""
    module = module.clone()
    fn = graph.entry_function(module)
    ret = fn.body.block.last_op
    assert isinstance(ret, func.ReturnOp)
    with collect():  # the variant states nothing the compiled model relies on
        shapes = graph.infer_value_shapes(fn)
    outputs = list(ret.operands)
    res_attrs = list(fn.res_attrs.data) if fn.res_attrs is not None else []
    for key, v in observed_values(fn).items():
        if isinstance(v, BlockArgument):
            sources[key] = ("input", _input_name(fn, v))
            continue
        if v not in outputs:
            res_attrs.append(DictionaryAttr(graph.io_attrs(f"{_OBSERVE_PREFIX}{len(outputs)}", shapes[v])))
            outputs.append(v)
        sources[key] = ("output", outputs.index(v))
    ret.operands = outputs
    fn.function_type = FunctionType.from_lists(fn.function_type.inputs.data, [v.type for v in outputs])
    fn.res_attrs = ArrayAttr(res_attrs)
    return module


def _input_name(fn: func.FuncOp, arg: BlockArgument) -> str:
    return fn.arg_attrs.data[arg.index].data[graph.ARG_NAME].data


def load_calibration_feeds(path: str) -> list[dict[str, np.ndarray]]:
    """Calibration feeds from a file: an .npz whose arrays, named after the model's inputs, stack
    the batches on a new first axis (feed i is every array's [i]); or a directory whose .npz files
    (in name order) hold one feed each."""
    if os.path.isdir(path):
        files = sorted(f for f in os.listdir(path) if f.endswith(".npz"))
        if not files:
            raise InputError(f"calibration directory {path} holds no .npz file")
        return [_read_npz(os.path.join(path, f)) for f in files]
    stacked = _read_npz(path)
    counts = {len(a) if a.ndim else 0 for a in stacked.values()}
    if len(counts) != 1 or 0 in counts:
        raise InputError(f"the arrays of {path} must stack the same number of batches on their first axis, "
                         f"got first dims {[a.shape[:1] for a in stacked.values()]}")
    return [{name: a[i] for name, a in stacked.items()} for i in range(counts.pop())]


def _read_npz(path: str) -> dict[str, np.ndarray]:
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise InputError(f"cannot read calibration data {path}: {e}") from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise InputError(f"calibration data {path} is not an .npz archive")
    with data:
        arrays = {name: data[name] for name in data.files}
    if not arrays:
        raise InputError(f"calibration data {path} holds no arrays")
    return arrays
