"""Resize / Upsample whose sizes or scales are given at run time (a graph input, computed from values, or
Shape arithmetic over dynamic dims), against onnxruntime: one artifact, several input sizes."""
import numpy as np
import onnx
import pytest
from onnx import helper

from conftest import assert_close, kernels_run, make_model, ort_run
from pyflame_rt import InferenceSession, SessionOptions
from pyflame_rt.compiler import compile_model
from pyflame_rt.executable import Executable
from pyflame_rt.options import CompileOptions, OptLevel
from pyflame_rt.errors import InputError, ShapeMismatchError

OUT = [("y", ["n", "c", "h", "w"])]


def _check(model, feeds):
    sess = InferenceSession(model.SerializeToString())
    for feed in feeds:
        got, want = sess.run(None, feed)[0], ort_run(model, feed)[0]
        assert_close(got, want, rtol=1e-5)


@pytest.mark.parametrize("attrs", [dict(mode="nearest"),
                                   dict(mode="nearest", nearest_mode="ceil",
                                        coordinate_transformation_mode="asymmetric"),
                                   dict(mode="linear", coordinate_transformation_mode="align_corners"),
                                   dict(mode="linear", coordinate_transformation_mode="pytorch_half_pixel")])
def test_sizes_given_as_a_graph_input(attrs, rng):
    node = helper.make_node("Resize", ["x", "", "", "sizes"], ["y"], **attrs)
    model = make_model([node], [("x", [1, 2, "H", "W"]), ("sizes", [4], np.int64)], OUT, opset=19)
    _check(model, [{"x": rng.standard_normal((1, 2, h, w), np.float32), "sizes": np.array([1, 2, oh, ow])}
                   for h, w, oh, ow in ((5, 6, 7, 3), (4, 8, 1, 11))])


@pytest.mark.parametrize("attrs,scales", [
    (dict(mode="linear"), [[1, 1, 0.6, 1.7], [1, 1, 2, 0.5]]),
    (dict(mode="linear", coordinate_transformation_mode="half_pixel_symmetric"), [[1, 1, 1.3, 0.7], [1, 1, 0.9, 3]]),
    (dict(mode="nearest", axes=[3, 2]), [[2.5, 0.5], [0.5, 2.5]]),
])
def test_scales_given_as_a_graph_input_are_used_in_the_coordinate_transform(attrs, scales, rng):
    node = helper.make_node("Resize", ["x", "", "scales"], ["y"], **attrs)
    model = make_model([node], [("x", [1, 2, 5, 6]), ("scales", [len(scales[0])])], OUT, opset=19)
    _check(model, [{"x": rng.standard_normal((1, 2, 5, 6), np.float32), "scales": np.array(s, np.float32)}
                   for s in scales])


def test_scales_computed_by_the_model(rng):
    """Scales the model computes from a value: the output dims are bound mid-run."""
    nodes = [helper.make_node("Concat", ["ones", "factors"], ["scales"], axis=0),
             helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="linear")]
    model = make_model(nodes, [("x", [1, 1, 4, 4]), ("factors", [2])], OUT,
                       initializers={"ones": np.array([1, 1], np.float32)}, opset=19)
    _check(model, [{"x": rng.standard_normal((1, 1, 4, 4), np.float32), "factors": np.array(f, np.float32)}
                   for f in ([1.5, 0.5], [2.0, 3.0])])


def test_sizes_from_shape_arithmetic_over_dynamic_dims(rng):
    """F.interpolate(x, size=skip.shape[-2:]) as torch exports it: sizes computed from Shape."""
    nodes = [helper.make_node("Shape", ["skip"], ["shape"]),
             helper.make_node("Resize", ["x", "", "", "shape"], ["r"], mode="linear"),
             helper.make_node("Add", ["r", "skip"], ["y"])]
    model = make_model(nodes, [("x", [1, 3, "h", "w"]), ("skip", [1, 3, "H", "W"])], OUT, opset=19)
    _check(model, [{"x": rng.standard_normal((1, 3, h, w), np.float32),
                    "skip": rng.standard_normal((1, 3, sh, sw), np.float32)}
                   for h, w, sh, sw in ((4, 5, 9, 11), (6, 3, 13, 7))])


def test_an_integer_scale_of_a_dynamic_dim(rng):
    node = helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="nearest")
    model = make_model([node], [("x", [1, 2, "H", "W"])], OUT,
                       initializers={"scales": np.array([1, 1, 2, 3], np.float32)}, opset=19)
    _check(model, [{"x": rng.standard_normal((1, 2, h, w), np.float32)} for h, w in ((3, 4), (5, 2))])


def test_constant_scales_of_static_dims_compute_their_tables_at_compile_time(rng):
    node = helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="linear")
    model = make_model([node], [("x", [1, 2, 4, 4])], [("y", [1, 2, 6, 8])],
                       initializers={"scales": np.array([1, 1, 1.5, 2], np.float32)}, opset=19)
    opts = SessionOptions()
    opts.enable_profiling = True
    sess = InferenceSession(model.SerializeToString(), opts)
    assert not any("resize_table" in k for k in kernels_run(sess, {"x": np.ones((1, 2, 4, 4), np.float32)}))


@pytest.mark.parametrize("scales,match", [([1, 1, -2, 2], "must not be negative"),
                                          ([1, 1, np.nan, 2], "must be positive"),
                                          ([1, 1, 0, 1], "must be positive"),
                                          ([1, 2, 2, 2], "resizes only the two trailing dims")])
def test_bad_run_time_scales_are_refused_before_any_kernel_reads_them(scales, match):
    node = helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="linear")
    model = make_model([node], [("x", [1, 1, 4, 4]), ("scales", [4])], OUT, opset=19)
    sess = InferenceSession(model.SerializeToString())
    with pytest.raises(ShapeMismatchError, match=match):
        sess.run(None, {"x": np.ones((1, 1, 4, 4), np.float32), "scales": np.array(scales, np.float32)})


@pytest.mark.parametrize("sizes,match", [([1, 1, -2, 2], "must not be negative"), ([1, 1, 0, 2], "must be positive")])
def test_bad_run_time_sizes_are_refused(sizes, match):
    node = helper.make_node("Resize", ["x", "", "", "sizes"], ["y"], mode="nearest")
    model = make_model([node], [("x", [1, 1, 4, 4]), ("sizes", [4], np.int64)], OUT, opset=19)
    sess = InferenceSession(model.SerializeToString())
    with pytest.raises(ShapeMismatchError, match=match):
        sess.run(None, {"x": np.ones((1, 1, 4, 4), np.float32), "sizes": np.array(sizes, np.int64)})


def _grid_cases():
    """Every mode x padding x alignment; three of them (each mode and padding once) in the quick loop."""
    for i, mode in enumerate(["nearest", "linear", "cubic"]):
        for j, padding in enumerate(["zeros", "border", "reflection"]):
            for align in (0, 1):
                quick = i == j and align == i % 2
                yield pytest.param(mode, padding, align, marks=() if quick else pytest.mark.slow)


@pytest.mark.parametrize("mode,padding_mode,align_corners", _grid_cases())
def test_grid_sample_2d(mode, padding_mode, align_corners, rng):
    """Grid points inside and outside [-1, 1], batch and grid size dynamic (one artifact)."""
    node = helper.make_node("GridSample", ["x", "grid"], ["y"], mode=mode, padding_mode=padding_mode,
                            align_corners=align_corners)
    model = make_model([node], [("x", ["n", 3, 5, 4]), ("grid", ["n", "h", "w", 2])], OUT, opset=22)
    _check(model, [{"x": rng.standard_normal((n, 3, 5, 4), np.float32),
                    "grid": rng.uniform(-1.7, 1.7, (n, h, w, 2)).astype(np.float32)}
                   for n, h, w in ((1, 6, 7), (2, 3, 2))])


@pytest.mark.parametrize("mode", ["nearest", "linear"])
@pytest.mark.parametrize("padding_mode", ["zeros", "reflection"])
def test_grid_sample_3d(mode, padding_mode, rng):
    node = helper.make_node("GridSample", ["x", "grid"], ["y"], mode=mode, padding_mode=padding_mode)
    model = make_model([node], [("x", [1, 2, 3, 4, 5]), ("grid", [1, 2, 4, 3, 3])],
                       [("y", ["n", "c", "d", "h", "w"])], opset=22)
    _check(model, [{"x": rng.standard_normal((1, 2, 3, 4, 5), np.float32),
                    "grid": rng.uniform(-1.5, 1.5, (1, 2, 4, 3, 3)).astype(np.float32)}])


def test_grid_sample_of_a_non_finite_grid_reads_inside_the_input():
    """NaN / inf grid coordinates never index outside the input (the taps are clamped)."""
    node = helper.make_node("GridSample", ["x", "grid"], ["y"], mode="cubic", padding_mode="border")
    model = make_model([node], [("x", [1, 1, 4, 4]), ("grid", [1, 1, 3, 2])], OUT, opset=22)
    grid = np.array([[[[np.nan, 0], [np.inf, -np.inf], [1e30, -1e30]]]], np.float32)
    feed = {"x": np.ones((1, 1, 4, 4), np.float32), "grid": grid}
    got = InferenceSession(model.SerializeToString()).run(None, feed)[0]
    assert got.shape == (1, 1, 1, 3)


def _scaled(attrs, scales, run_time, rng):
    """A Resize of x [1, 2, 5, 6] by `scales`, a constant or (run_time) fed; the model and a feed."""
    node = helper.make_node("Resize", ["x", "", "scales"], ["y"], **attrs)
    scales = np.array(scales, np.float32)
    inputs, inits = [("x", [1, 2, 5, 6])], {}
    if run_time:
        inputs.append(("scales", [4]))
    else:
        inits["scales"] = scales
    model = make_model([node], inputs, OUT, initializers=inits, opset=19)
    return model, {"x": rng.standard_normal((1, 2, 5, 6), np.float32), **({"scales": scales} if run_time else {})}


@pytest.mark.parametrize("attrs", [dict(mode="cubic"), dict(mode="cubic", cubic_coeff_a=-0.5, exclude_outside=1),
                                   dict(mode="cubic", coordinate_transformation_mode="align_corners")])
@pytest.mark.parametrize("run_time", [False, True])
def test_cubic(attrs, run_time, rng):
    """Cubic from compile-time tables (constant scales) and from run-time ones (scales fed)."""
    model, feed = _scaled(attrs, [1, 1, 0.8, 1.5], run_time, rng)
    _check(model, [feed])


@pytest.mark.parametrize("mode", ["linear", "cubic"])
@pytest.mark.parametrize("run_time", [False, True])
def test_align_corners_divides_by_the_fractional_length(mode, run_time, rng):
    """align_corners with in * scale fractional (6 * 1.7 = 10.2): the spec's length_resized is
    10.2, as onnx's reference has it (onnxruntime divides by the integer length 10 instead)."""
    from onnx.reference import ReferenceEvaluator

    model, feed = _scaled(dict(mode=mode, coordinate_transformation_mode="align_corners"), [1, 1, 0.8, 1.7],
                          run_time, rng)
    got = InferenceSession(model.SerializeToString()).run(None, feed)[0]
    assert_close(got, ReferenceEvaluator(model).run(None, feed)[0], rtol=1e-5)


@pytest.mark.parametrize("align_corners", [0, 1])
@pytest.mark.parametrize("size", [[2, 3, 4, 5], [1, 2, 3, 1, 4]])
def test_affine_grid_of_a_size_given_at_run_time(align_corners, size, rng):
    r = len(size) - 2
    node = helper.make_node("AffineGrid", ["theta", "size"], ["y"], align_corners=align_corners)
    model = make_model([node], [("theta", ["n", r, r + 1]), ("size", [len(size)], np.int64)],
                       [("y", ["s"] * (r + 2))], opset=20)
    other = [size[0], size[1], *(d + 2 for d in size[2:])]
    _check(model, [{"theta": rng.standard_normal((s[0], r, r + 1), np.float32), "size": np.array(s, np.int64)}
                   for s in (size, other)])


def test_spatial_transformer(rng):
    """AffineGrid of the input's own shape feeding GridSample: an STN's sampler, batch dynamic."""
    nodes = [helper.make_node("Shape", ["x"], ["shape"]),
             helper.make_node("AffineGrid", ["theta", "shape"], ["grid"]),
             helper.make_node("GridSample", ["x", "grid"], ["y"], padding_mode="border")]
    model = make_model(nodes, [("x", ["n", 3, 6, 5]), ("theta", ["n", 2, 3])], OUT, opset=20)
    _check(model, [{"x": rng.standard_normal((n, 3, 6, 5), np.float32),
                    "theta": (np.eye(2, 3) + 0.2 * rng.standard_normal((n, 2, 3))).astype(np.float32)} for n in (1, 3)])


@pytest.mark.parametrize("policy", ["not_larger", "not_smaller"])
@pytest.mark.parametrize("run_time", [False, True])
def test_keep_aspect_ratio_policy(policy, run_time, rng):
    """One scale for both axes, min / max of sizes / in, the sizes it gives rounded half up."""
    node = helper.make_node("Resize", ["x", "", "", "sizes"], ["y"], mode="linear", axes=[2, 3],
                            keep_aspect_ratio_policy=policy)
    sizes = np.array([7, 11], np.int64)
    inputs, inits = [("x", [1, 2, 5, 6])], {}
    if run_time:
        inputs.append(("sizes", [2], np.int64))
    else:
        inits["sizes"] = sizes
    model = make_model([node], inputs, OUT, initializers=inits, opset=19)
    _check(model, [{"x": rng.standard_normal((1, 2, 5, 6), np.float32), **({"sizes": sizes} if run_time else {})}])


@pytest.mark.parametrize("attrs", [dict(mode="linear", extrapolation_value=10.0), dict(mode="nearest"),
                                   dict(mode="cubic", axes=[2, 3])])
def test_tf_crop_and_resize_with_a_run_time_roi(attrs, rng):
    """Outputs sampling outside the input are the extrapolation value; roi and sizes are fed."""
    n = len(attrs.get("axes", range(4)))
    node = helper.make_node("Resize", ["x", "roi", "", "sizes"], ["y"],
                            coordinate_transformation_mode="tf_crop_and_resize", **attrs)
    model = make_model([node], [("x", [1, 2, 5, 6]), ("roi", [2 * n]), ("sizes", [n], np.int64)], OUT, opset=19)
    starts, ends = ([0, 0], [1, 1]) if n == 4 else ([], [])
    rois = ([*starts, 0.4, -0.2, *ends, 0.9, 1.3], [*starts, 0.1, 0.3, *ends, 0.6, 0.5])
    _check(model, [{"x": rng.standard_normal((1, 2, 5, 6), np.float32), "roi": np.array(roi, np.float32),
                    "sizes": np.array(([1, 2] if n == 4 else []) + [4, 7])} for roi in rois])


def test_tf_crop_and_resize_of_a_leading_axis_is_refused_at_run_time():
    node = helper.make_node("Resize", ["x", "roi", "", "sizes"], ["y"],
                            coordinate_transformation_mode="tf_crop_and_resize")
    model = make_model([node], [("x", [1, 2, 5, 6]), ("roi", [8])], OUT,
                       initializers={"sizes": np.array([1, 2, 3, 3])}, opset=19)
    sess = InferenceSession(model.SerializeToString())
    feed = {"x": np.ones((1, 2, 5, 6), np.float32), "roi": np.array([0, 0.5, 0, 0, 1, 1, 1, 1], np.float32)}
    with pytest.raises(InputError, match="roi of any other axis must be"):
        sess.run(None, feed)


def test_resampling_kernels_stay_inside_their_buffers_in_the_checked_build(rng):
    """Run-time tables (cubic, exclude_outside, crop), grid sample with reflection: no access violation."""
    nodes = [helper.make_node("Resize", ["x", "", "scales"], ["r"], mode="cubic", exclude_outside=1),
             helper.make_node("GridSample", ["r", "g"], ["s"], mode="cubic", padding_mode="reflection"),
             helper.make_node("Resize", ["s", "roi", "", "sizes"], ["y"], mode="linear", axes=[2, 3],
                              coordinate_transformation_mode="tf_crop_and_resize")]
    model = make_model(nodes, [("x", [1, 2, 5, 6]), ("scales", [4]), ("g", [1, 3, 4, 2]), ("roi", [4]),
                               ("sizes", [2], np.int64)], OUT, opset=22)
    feed = {"x": rng.standard_normal((1, 2, 5, 6), np.float32), "scales": np.array([1, 1, 1.5, 0.7], np.float32),
            "g": rng.uniform(-2, 2, (1, 3, 4, 2)).astype(np.float32),
            "roi": np.array([0.2, -0.3, 0.9, 1.2], np.float32), "sizes": np.array([4, 9])}
    exe = Executable(compile_model(model, CompileOptions(checked=True, opt_level=OptLevel.NONE)))
    assert_close(exe.run(list(feed.values()))[0], ort_run(model, feed)[0], rtol=1e-5)


@pytest.mark.slow
def test_torch_interpolate_to_a_dynamic_size(rng):
    """torch.onnx export of F.interpolate to another input's size and by a scale factor, H and W
    dynamic: one artifact at two input sizes."""
    torch = pytest.importorskip("torch")
    import io

    class Up(torch.nn.Module):
        def forward(self, x, skip):
            up = torch.nn.functional.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            return up + skip, torch.nn.functional.interpolate(x, scale_factor=2.0, mode="nearest")

    buf = io.BytesIO()
    dynamic = {"x": {2: "h", 3: "w"}, "skip": {2: "H", 3: "W"}, "y": {2: "H", 3: "W"}, "z": {2: "h2", 3: "w2"}}
    torch.onnx.export(Up(), (torch.randn(1, 3, 4, 5), torch.randn(1, 3, 9, 11)), buf, input_names=["x", "skip"],
                      output_names=["y", "z"], dynamic_axes=dynamic, opset_version=17, dynamo=False)
    model = onnx.load_from_string(buf.getvalue())
    sess = InferenceSession(buf.getvalue())
    for (h, w), (sh, sw) in (((4, 5), (9, 11)), ((6, 3), (13, 7))):
        feed = {"x": rng.standard_normal((1, 3, h, w), np.float32),
                "skip": rng.standard_normal((1, 3, sh, sw), np.float32)}
        for got, want in zip(sess.run(None, feed), ort_run(model, feed)):
            assert_close(got, want, rtol=1e-5)
