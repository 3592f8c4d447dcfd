"""The persistent kernel cache: hits skip generation and LLVM, keys follow the spec, bad entries
are refused, and two processes may fill the cache at once."""
import multiprocessing
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from onnx import helper

from pyflame_rt.cache import CompileCache, KernelCacheConfig
from pyflame_rt.compiler import CompileOptions, compile_model
from pyflame_rt.executable import Executable
from pyflame_rt.targets.cpu import kernel_cache
from pyflame_rt.targets.cpu.compile_workers import worker_count
from pyflame_rt.targets.cpu.kernel_cache import KernelCache
from pyflame_rt.targets.cpu.kernels.elementwise import ElementwiseSpec, elementwise_kernel
from pyflame_rt.targets.cpu.target import CPUTarget

from conftest import assert_close, make_model, ort_run

X = np.linspace(-3, 3, 24, dtype=np.float32).reshape(2, 12)


def gemm_relu_model():
    w = np.random.default_rng(0).standard_normal((12, 8)).astype(np.float32)
    return make_model([helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Relu", ["h"], ["y"])],
                      [("x", ["n", 12])], [("y", ["n", 8])], {"w": w})


def compile_with(cache_dir, **options):
    return compile_model(gemm_relu_model(), CompileOptions(kernel_cache=KernelCacheConfig(dir=str(cache_dir)),
                                                           **options))


def entries(cache_dir) -> list[str]:
    return sorted(n for n in os.listdir(cache_dir) if n.endswith(".pfm"))


def test_a_warm_compile_generates_and_compiles_no_kernel_and_computes_the_same(tmp_path):
    cold = compile_with(tmp_path)
    warm = compile_with(tmp_path)
    kernels = cold.header["kernels"]
    assert cold.header["kernel_cache"] == {"hits": [], "compiled": kernels} and len(kernels) >= 2
    assert warm.header["kernel_cache"] == {"hits": kernels, "compiled": []}
    assert len(entries(tmp_path)) == len(kernels)
    assert warm.objects[:-1] == cold.objects[:-1]  # the cached kernel objects, then the entry point
    expected = ort_run(gemm_relu_model(), {"x": X})[0]
    outputs = [Executable(c).run([X])[0] for c in (cold, warm)]
    np.testing.assert_array_equal(outputs[0], outputs[1])
    assert_close(outputs[1], expected)


def test_a_disabled_kernel_cache_compiles_every_kernel(tmp_path):
    options = CompileOptions(kernel_cache=KernelCacheConfig(dir=str(tmp_path), enabled=False))
    compiled = compile_model(gemm_relu_model(), options)
    assert compiled.header["kernel_cache"]["hits"] == [] and entries(tmp_path) == []


def relu_model():
    return make_model([helper.make_node("Relu", ["x"], ["y"])], [("x", ["n"])], [("y", ["n"])])


def test_the_key_follows_target_and_checked_build(tmp_path):
    def compiled_kernels(**options):
        config = KernelCacheConfig(dir=str(tmp_path))
        header = compile_model(relu_model(), CompileOptions(kernel_cache=config, **options)).header
        return header["kernel_cache"]["compiled"]

    assert compiled_kernels(cpu="x86-64-v3") and compiled_kernels(cpu="x86-64-v3") == []
    assert compiled_kernels(cpu="x86-64-v2") and compiled_kernels(cpu="x86-64-v3", checked=True)
    assert compiled_kernels(cpu="x86-64-v2") == [] and compiled_kernels(cpu="x86-64-v3", checked=True) == []


def test_the_key_follows_the_spec_and_skips_generators_that_are_not_the_compilers(tmp_path):
    store = CompileCache(KernelCacheConfig(dir=str(tmp_path)))
    cache = KernelCache(store, CPUTarget.named("x86-64-v3"), False)
    relu, fused = ElementwiseSpec("relu", 0, ("v",), 8), ElementwiseSpec("relu", 0, ("v",), 8, activation="relu")
    keys = {cache.key("k", make) for make in (_compiler_made(relu), _compiler_made(fused), _compiler_made(relu))}
    assert len(keys) == 2 and None not in keys
    # a stand-in generator (a test's) is not covered by the compiler fingerprint: never cached
    assert cache.key("k", lambda: elementwise_kernel(relu)) is None


def _compiler_made(spec):
    """A generator closure as the lowerings make them (its code in a pyflame_rt module)."""
    make = lambda: elementwise_kernel(spec)  # noqa: E731
    make.__module__ = "pyflame_rt.targets.cpu.lowerings.elementwise"
    return make


def test_a_corrupt_or_foreign_entry_is_refused_and_compiled_again(tmp_path):
    compile_with(tmp_path)
    first, second = entries(tmp_path)
    data = bytearray((tmp_path / first).read_bytes())
    data[-100] ^= 0x5A  # inside the object code: the SHA-256 no longer matches
    (tmp_path / first).write_bytes(bytes(data))
    os.replace(tmp_path / second, tmp_path / "spare")
    os.link(tmp_path / "spare", tmp_path / second)
    refused = compile_with(tmp_path)
    assert len(refused.header["kernel_cache"]["compiled"]) == 1  # the corrupt entry's kernel, now replaced
    # an intact entry stored under another key (a copy or a planted file) is not that key's kernel
    os.replace(tmp_path / "spare", tmp_path / first)
    foreign = compile_with(tmp_path)
    assert len(foreign.header["kernel_cache"]["compiled"]) == 1
    assert compile_with(tmp_path).header["kernel_cache"]["compiled"] == []
    assert_close(Executable(foreign).run([X])[0], ort_run(gemm_relu_model(), {"x": X})[0])


@pytest.mark.slow  # two child processes that compile
def test_two_processes_filling_the_cache_at_once(tmp_path):
    script = textwrap.dedent(f"""
        import sys
        sys.path[:0] = [{os.path.dirname(__file__)!r}, {os.path.dirname(os.path.dirname(os.path.dirname(__file__)))!r}]
        from test_kernel_cache import compile_with
        compile_with({str(tmp_path)!r})
        """)
    children = [subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE) for _ in range(2)]
    for child in children:
        _, err = child.communicate(timeout=600)
        assert child.returncode == 0, err.decode()[-3000:]
    warm = compile_with(tmp_path)
    assert warm.header["kernel_cache"]["compiled"] == []
    assert len(entries(tmp_path)) == len(warm.header["kernels"])
    assert_close(Executable(warm).run([X])[0], ort_run(gemm_relu_model(), {"x": X})[0])


def test_the_key_follows_the_generators_code_and_defaults():
    cache = KernelCache(None, CPUTarget.named("x86-64-v3"), False)
    spec = ElementwiseSpec("relu", 0, ("v",), 8)
    makes = [lambda: elementwise_kernel(ElementwiseSpec("relu", 0, ("v",), 8)),
             lambda: elementwise_kernel(ElementwiseSpec("relu", 0, ("v",), 16)),
             lambda s=spec: elementwise_kernel(s), lambda s=ElementwiseSpec("relu", 0, ("v",), 16): elementwise_kernel(s)]
    for make in makes:
        make.__module__ = "pyflame_rt.targets.cpu.lowerings.elementwise"
    assert len({cache.key("k", make) for make in makes} - {None}) == 4


def test_the_kernel_code_fingerprint_covers_kernel_generation_and_codegen_only():
    spec = ElementwiseSpec("relu", 0, ("v",), 8)
    text, modules = kernel_cache._spec(_compiler_made(spec))
    assert modules == {"pyflame_rt.targets.cpu.kernels.elementwise"}
    sources, todo = set(), list(modules | kernel_cache._CODEGEN_MODULES | {kernel_cache.__name__})
    while todo:  # the modules kernel_code_fingerprint hashes
        name = todo.pop()
        if name not in sources | kernel_cache._NOT_CODEGEN:
            sources.add(name)
            todo += kernel_cache._module_source(name)[1]
    cpu = "pyflame_rt.targets.cpu."
    assert {f"{cpu}kernels.elementwise", f"{cpu}kernels.fast_math", f"{cpu}kernel_builder", f"{cpu}access_guard",
            f"{cpu}convert_to_llvm", f"{cpu}llvm_compile", f"{cpu}target", f"{cpu}kernel_cache"} <= sources
    # passes, lowerings, the importer, the driver and the runtime do not make kernel code
    assert not [m for m in sources if m.startswith(("pyflame_rt.transforms", "pyflame_rt.importers",
                                                    f"{cpu}lower", "pyflame_rt.compiler", "pyflame_rt.session",
                                                    "pyflame_rt.runtime", "pyflame_rt.executable"))]


@pytest.mark.parametrize("checked", [False, True])
def test_the_workers_make_the_objects_a_compile_without_cache_makes(tmp_path, checked):
    def compiled(**config):
        return compile_model(relu_model(), CompileOptions(kernel_cache=KernelCacheConfig(**config), checked=checked))

    cold, uncached = compiled(dir=str(tmp_path)), compiled(enabled=False)
    assert cold.header["kernel_cache"]["compiled"] == cold.header["kernels"]
    assert cold.header["kernels"] == uncached.header["kernels"]
    assert sorted(cold.objects) == sorted(uncached.objects)
    assert multiprocessing.active_children() == []


def _compile_relu_here(cache_dir, results):
    compiled = compile_model(relu_model(), CompileOptions(kernel_cache=KernelCacheConfig(dir=cache_dir)))
    results.put((compiled.header["kernel_cache"], compiled.objects))


def test_a_daemon_process_generates_and_compiles_missing_kernels_itself(tmp_path):
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    daemon = ctx.Process(target=_compile_relu_here, args=(str(tmp_path / "daemon"), results), daemon=True)
    daemon.start()
    record, objects = results.get(timeout=120)
    daemon.join()
    assert record["hits"] == [] and record["compiled"] and daemon.exitcode == 0
    uncached = compile_model(relu_model(), CompileOptions(kernel_cache=KernelCacheConfig(enabled=False)))
    assert sorted(objects) == sorted(uncached.objects)


def test_a_missing_kernel_starts_compiling_at_once_and_close_stops_it(tmp_path):
    cache = KernelCache(CompileCache(KernelCacheConfig(dir=str(tmp_path))), CPUTarget.named("x86-64-v3"), False)
    make = _compiler_made(ElementwiseSpec("relu", 0, ("v",), 8))
    assert cache.supplies("relu_k", make) and cache.supplied == ["relu_k"] and cache.found == {}
    if worker_count() > 1:  # a worker forked for it
        assert len(multiprocessing.active_children()) == 1
    cache.close()
    assert multiprocessing.active_children() == [] and entries(tmp_path) == []
