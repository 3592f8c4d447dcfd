"""The trust model (docs/security.md): a private, authenticated compile cache, authenticated
artifacts whose native code may import only the runtime's allowlist, sessions independent of
their file once loaded, safe writes, and no reads from anything but regular files."""
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import textwrap
import time

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from conftest import make_model
from test_artifact import reseal
from pyflame_rt import (InferenceSession, InvalidModelError, PyFlameRTError, SessionOptions, ValidationError, artifact,
                        cli)
from pyflame_rt.cache import CacheConfig, CompileCache
from pyflame_rt.compiled_model import CompiledModel
from pyflame_rt.compiler import CompileOptions, compile_model

X = np.arange(8, dtype=np.float32).reshape(2, 4)


def add_model(value: float) -> onnx.ModelProto:
    """y = x + w: the output shows which weights ran."""
    return make_model([helper.make_node("Add", ["x", "w"], ["y"])], [("x", ["n", 4])], [("y", ["n", 4])],
                      {"w": np.full(4, value, np.float32)})


@pytest.fixture(scope="module")
def pfms(tmp_path_factory):
    """Two artifacts of the same graph and size with different weights (w = 1, w = 2)."""
    d = tmp_path_factory.mktemp("pfms")
    paths = []
    for value in (1.0, 2.0):
        p = d / f"w{value:.0f}.pfm"
        artifact.save(compile_model(add_model(value)), p)
        paths.append(str(p))
    return paths


def cache_options(cache_dir) -> SessionOptions:
    return SessionOptions(cache=CacheConfig(dir=str(cache_dir)))


def run_python(code: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run `code` in a fresh interpreter (a crash or hang there fails the test, not pytest)."""
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.abspath(__file__)))  # conftest, this module
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout, env=env)


# ------------------------------------------------------------------ compile cache
def test_a_planted_or_renamed_entry_is_not_executed(tmp_path, pfms):
    cache_dir = tmp_path / "cache"
    model_a, model_b = add_model(1.0), add_model(2.0)
    cache = CompileCache(CacheConfig(dir=str(cache_dir)))
    key_b = cache.key(model_b.SerializeToString(), CompileOptions())
    InferenceSession(model_a, cache_options(cache_dir))  # creates the directory and A's entry
    (entry_a,) = [n for n in os.listdir(cache_dir) if n.endswith(".pfm")]
    # planted: a valid artifact (A's weights) under B's key; renamed: A's own signed entry under B's key
    for planted in (pfms[0], str(cache_dir / entry_a)):
        shutil.copyfile(planted, cache.path(key_b))
        sess = InferenceSession(model_b, cache_options(cache_dir))
        assert not sess.cache_hit
        np.testing.assert_array_equal(sess.run(None, {"x": X})[0], X + 2)
        os.remove(cache.path(key_b))


def test_cache_hits_share_one_loaded_copy(tmp_path):
    model = add_model(1.0)
    InferenceSession(model, cache_options(tmp_path / "cache"))
    hits = [InferenceSession(model, cache_options(tmp_path / "cache")) for _ in range(2)]
    assert all(s.cache_hit for s in hits) and hits[0]._compiled is hits[1]._compiled


def test_the_cache_directory_is_private(tmp_path):
    cache_dir = tmp_path / "new" / "cache"
    assert not InferenceSession(add_model(1.0), cache_options(cache_dir)).cache_hit
    assert stat.S_IMODE(os.stat(cache_dir).st_mode) == 0o700
    key_file = cache_dir / "signing.key"
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    for mode in (0o777, 0o770, 0o702):
        os.chmod(cache_dir, mode)
        with pytest.raises(PyFlameRTError, match=f"has mode {mode:o} .writable by group or others"):
            InferenceSession(add_model(1.0), cache_options(cache_dir))
    os.chmod(cache_dir, 0o700)
    os.chmod(key_file, 0o644)
    with pytest.raises(PyFlameRTError, match="signing key .* has mode 644"):
        InferenceSession(add_model(1.0), cache_options(cache_dir))


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
def test_a_cache_directory_owned_by_another_user_is_refused(tmp_path):
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir(mode=0o700)
    os.chown(cache_dir, 12345, -1)
    with pytest.raises(PyFlameRTError, match="owned by uid 12345"):
        InferenceSession(add_model(1.0), cache_options(cache_dir))


def test_the_key_covers_external_data(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # where the model and its data live
    model = add_model(0.0)
    w = model.graph.initializer[0]
    w.ClearField("raw_data")
    w.data_location = TensorProto.EXTERNAL
    w.external_data.add(key="location", value="w.bin")
    onnx.save(model, "m.onnx")
    for value in (1.0, 2.0):
        np.full(4, value, np.float32).tofile("w.bin")
        sess = InferenceSession(str(tmp_path / "m.onnx"), cache_options(tmp_path / "cache"))
        assert not sess.cache_hit
        np.testing.assert_array_equal(sess.run(None, {"x": X})[0], X + value)
    assert InferenceSession(str(tmp_path / "m.onnx"), cache_options(tmp_path / "cache")).cache_hit


def test_eviction_and_clear_touch_only_the_caches_own_entries(tmp_path, pfms):
    cache_dir = tmp_path / "cache"
    InferenceSession(add_model(1.0), cache_options(cache_dir))
    own = [n for n in os.listdir(cache_dir) if n.endswith(".pfm")]
    theirs = {"mine.pfm": pfms[0], "f" * 64 + ".pfm": pfms[1], "notes.txt": pfms[1]}
    for name, source in theirs.items():
        shutil.copyfile(source, cache_dir / name)
    cache = CompileCache(CacheConfig(dir=str(cache_dir), ttl_seconds=60))
    assert [os.path.basename(p) for p, _, _ in cache.entries()] == own
    for name in os.listdir(cache_dir):
        os.utime(cache_dir / name, (time.time() - 3600, time.time() - 3600))
    cache.evict()
    assert sorted(os.listdir(cache_dir)) == sorted([*theirs, "signing.key"])
    InferenceSession(add_model(2.0), cache_options(cache_dir))
    cache.clear()
    assert sorted(os.listdir(cache_dir)) == sorted([*theirs, "signing.key"])


# ------------------------------------------------------------------ writes
def test_a_planted_symlink_at_the_temporary_name_is_not_followed(tmp_path, pfms, monkeypatch):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "out.pfm"
    compiled = artifact.load(pfms[0])
    os.symlink(victim, f"{out}.tmp{os.getpid()}")  # the name writers used to pick
    artifact.save(compiled, out)
    assert victim.read_text() == "precious"
    np.testing.assert_array_equal(InferenceSession(str(out)).run(None, {"x": X})[0], X + 1)

    from pyflame_rt import files  # an attacker who guesses the next random name

    suffixes = iter(["guessed", "fresh"])
    monkeypatch.setattr(files, "temp_suffix", lambda: next(suffixes))
    os.symlink(victim, tmp_path / ".out.pfm.guessed.tmp")
    artifact.save(compiled, out)
    assert victim.read_text() == "precious"
    assert sorted(os.listdir(tmp_path)) == [".out.pfm.guessed.tmp", "out.pfm", f"out.pfm.tmp{os.getpid()}",
                                            "victim.txt"]


@pytest.mark.slow  # a child process that compiles
def test_a_failed_write_leaves_no_temporary_file(tmp_path, pfms):
    """A write that fails half-way (file size limit: EFBIG, as on a full disk)."""
    (tmp_path / "out").mkdir()
    result = run_python(f"""
        import resource, signal, os
        from pyflame_rt import InferenceSession, SessionOptions, artifact
        from pyflame_rt.cache import CacheConfig
        from test_trust import add_model, X
        compiled = artifact.load({pfms[0]!r})
        model = add_model(3.0)
        InferenceSession(model, SessionOptions(cache=CacheConfig(enabled=False)))  # compiler imported
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1024, 1024))  # below any artifact
        try:
            artifact.save(compiled, {str(tmp_path / 'out' / 'a.pfm')!r})
            raise SystemExit("the write did not fail")
        except OSError:
            pass
        sess = InferenceSession(model, SessionOptions(cache=CacheConfig(dir={str(tmp_path / 'cache')!r})))
        assert (sess.run(None, {{"x": X}})[0] == X + 3).all()  # the open works, the entry is not stored
        """)
    assert result.returncode == 0, result.stderr[-3000:]
    assert os.listdir(tmp_path / "out") == []
    assert [n for n in os.listdir(tmp_path / "cache") if n != "signing.key"] == []


# ------------------------------------------------------------------ artifacts
def evil_object(call: str = "system") -> bytes:
    """A real x86-64 object whose one kernel calls `call("touch pwned")`."""
    import llvmlite.binding as llvm

    from pyflame_rt.targets.cpu.target import CPUTarget, init_llvm

    init_llvm()
    ir = f"""
        @cmd = private constant [12 x i8] c"touch pwned\\00"
        declare i32 @{call}(ptr)
        define void @kernel(ptr %ctx, i64 %begin, i64 %end) {{
          %rc = call i32 @{call}(ptr @cmd)
          ret void
        }}"""
    target = CPUTarget.named("x86-64")
    mod = llvm.parse_assembly(ir)
    mod.triple = target.triple
    return target.target_machine().emit_object(mod)


def test_object_code_importing_system_is_refused(tmp_path, pfms, monkeypatch):
    """The SHA-256 is valid (anyone can recompute it): the symbol allowlist refuses the object."""
    monkeypatch.chdir(tmp_path)
    real = artifact.load(pfms[0])
    path = tmp_path / "evil.pfm"
    artifact.save(CompiledModel(real.header, real.weights, (*real.objects[:-1], evil_object())), path)
    with pytest.raises(InvalidModelError, match="imports 'system'"):
        InferenceSession(str(path))
    assert not os.path.exists("pwned")


def test_signed_artifacts(tmp_path, pfms, monkeypatch, capsys):
    key, other = tmp_path / "key", tmp_path / "other.key"
    key.write_bytes(os.urandom(32))
    other.write_bytes(os.urandom(32))
    onnx_path = tmp_path / "m.onnx"
    onnx.save(add_model(1.0), onnx_path)
    signed, resigned = tmp_path / "signed.pfm", tmp_path / "resigned.pfm"
    assert cli.main(["compile", "-q", "--sign-key", str(key), "-o", str(signed), str(onnx_path)]) == 0
    artifact.save(artifact.load(signed), resigned, other.read_bytes())
    with_key = SessionOptions(sign_key_file=str(key))
    np.testing.assert_array_equal(InferenceSession(str(signed), with_key).run(None, {"x": X})[0], X + 1)
    with pytest.raises(InvalidModelError, match="not signed"):
        InferenceSession(pfms[0], with_key)
    with pytest.raises(InvalidModelError, match="signature does not match"):
        InferenceSession(str(resigned), with_key)
    tampered = bytearray(signed.read_bytes())
    tampered[-100] ^= 1
    (tmp_path / "tampered.pfm").write_bytes(bytes(tampered))
    with pytest.raises(InvalidModelError, match="checksum mismatch .SHA-256"):
        InferenceSession(str(tmp_path / "tampered.pfm"), with_key)
    (tmp_path / "resealed.pfm").write_bytes(reseal(bytes(tampered)))  # valid digest, signature dropped
    with pytest.raises(InvalidModelError, match="not signed"):
        InferenceSession(str(tmp_path / "resealed.pfm"), with_key)
    monkeypatch.setenv("PYFLAME_RT_SIGN_KEY_FILE", str(key))
    with pytest.raises(InvalidModelError, match="not signed"):
        InferenceSession(pfms[0])
    assert cli.main(["run", str(signed)]) == 0
    assert cli.main(["run", "--sign-key", str(other), str(signed)]) == 2
    monkeypatch.delenv("PYFLAME_RT_SIGN_KEY_FILE")
    InferenceSession(str(signed))  # without a key, signatures are not required
    capsys.readouterr()
    assert cli.main(["inspect", "--sign-key", str(key), str(signed)]) == 0
    assert "signature     HMAC-SHA256, verified with the signing key" in capsys.readouterr().out
    (tmp_path / "short.key").write_bytes(b"abc")
    with pytest.raises(ValidationError, match="holds 3 bytes"):
        InferenceSession(str(signed), SessionOptions(sign_key_file=str(tmp_path / "short.key")))


def test_a_live_session_ignores_its_file_being_rewritten(tmp_path, pfms):
    """cp over the open artifact (same inode, new weights), then truncate it: the session keeps
    its verified copy; a new session sees the new file."""
    path = tmp_path / "m.pfm"
    shutil.copyfile(pfms[0], path)
    result = run_python(f"""
        import os, shutil, numpy as np
        from pyflame_rt import InferenceSession, InvalidModelError
        x = np.arange(8, dtype=np.float32).reshape(2, 4)
        sess = InferenceSession({str(path)!r})
        before = sess.run(None, {{"x": x}})[0]
        shutil.copyfile({pfms[1]!r}, {str(path)!r})
        assert (sess.run(None, {{"x": x}})[0] == before).all(), "the open session changed its weights"
        assert (InferenceSession({str(path)!r}).run(None, {{"x": x}})[0] == x + 2).all()
        os.truncate({str(path)!r}, 0)
        assert (sess.run(None, {{"x": x}})[0] == before).all()
        try:
            InferenceSession({str(path)!r})
            raise SystemExit("an empty file loaded")
        except InvalidModelError:
            pass
        print("ok")
        """)
    assert result.returncode == 0 and result.stdout.strip() == "ok", (result.returncode, result.stderr[-3000:])


# ------------------------------------------------------------------ non-regular files
def test_non_regular_paths_are_refused_at_once(tmp_path):
    """A FIFO would block forever and /dev/zero never ends: refused before any read. Run in a
    child with bounded memory and time."""
    fifo, sock_path, folder = tmp_path / "fifo.onnx", tmp_path / "sock.pfm", tmp_path / "dir.onnx"
    os.mkfifo(fifo)
    folder.mkdir()
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(sock_path))
    ext_dir = tmp_path / "ext"
    ext_dir.mkdir()
    os.mkfifo(ext_dir / "w.bin")
    model = add_model(0.0)
    w = model.graph.initializer[0]
    w.ClearField("raw_data")
    w.data_location = TensorProto.EXTERNAL
    w.external_data.add(key="location", value="w.bin")
    onnx.save(model, ext_dir / "m.onnx")
    paths = ["/dev/zero", str(fifo), str(sock_path), str(folder), str(ext_dir / "m.onnx")]
    try:
        result = run_python(f"""
            import json, os, resource
            resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
            from pyflame_rt import InferenceSession, SessionOptions, artifact, cli
            from pyflame_rt.cache import CacheConfig
            os.chdir({str(ext_dir)!r})
            outcome = {{}}
            for p in {paths!r}:
                try:
                    InferenceSession(p, SessionOptions(cache=CacheConfig(dir={str(tmp_path / 'cache')!r})))
                    outcome[p] = ["opened", ""]
                except Exception as e:
                    outcome[p] = [type(e).__name__, str(e)]
            for p in {paths[:2]!r}:
                for call in (lambda: artifact.load(p), lambda: cli.main(["compile", "-q", p])):
                    try:
                        outcome[p].append(call())
                    except Exception as e:
                        outcome[p].append(type(e).__name__)
            print(json.dumps(outcome))
            """, timeout=60)
    finally:
        sock.close()
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = json.loads(result.stdout)
    for p in paths:
        assert outcome[p][0] == "InvalidModelError", (p, outcome[p])  # nothing read, nothing awaited
    assert "is a character device" in outcome["/dev/zero"][1] and "is a FIFO" in outcome[str(fifo)][1]
    assert "is a directory" in outcome[str(folder)][1]
    assert "w.bin" in outcome[str(ext_dir / "m.onnx")][1]
    assert outcome["/dev/zero"][2:] == outcome[str(fifo)][2:] == ["InvalidModelError", 2]


def test_object_code_the_loader_cannot_vet_is_refused():
    """Static constructors (.ctors), indirect functions and malformed tables are refused
    before MCJIT parses the object."""
    import llvmlite.binding as llvm

    from pyflame_rt.targets.cpu.native_object import vet_object
    from pyflame_rt.targets.cpu.target import CPUTarget, init_llvm

    init_llvm()
    target = CPUTarget.named("x86-64")

    def emit(ir: str) -> bytes:
        mod = llvm.parse_assembly(ir)
        mod.triple = target.triple
        return target.target_machine().emit_object(mod)

    ctor = emit("""
        @llvm.global_ctors = appending global [1 x { i32, ptr, ptr }] [{ i32, ptr, ptr } { i32 65535, ptr @f, ptr null }]
        define void @f() { ret void }""")
    with pytest.raises(InvalidModelError, match=r"unexpected sections \.ctors"):
        vet_object(ctor)
    ifunc = emit("""
        define ptr @resolve() { ret ptr null }
        @g = ifunc void (), ptr @resolve""")
    with pytest.raises(InvalidModelError, match="indirect function"):
        vet_object(ifunc)
    plain = evil_object("memcpy")  # an allowed import: vetted fine
    vet_object(plain)
    for broken in (plain[:40], plain[:len(plain) // 2], plain[:16] + b"\xff" * 48 + plain[64:]):
        with pytest.raises(InvalidModelError, match="not a plain compiled model"):
            vet_object(broken)


def baseline_model() -> onnx.ModelProto:
    return make_model(
        [helper.make_node("Cast", ["x"], ["h"], to=TensorProto.FLOAT16), helper.make_node("Floor", ["h"], ["f"]),
         helper.make_node("Cast", ["f"], ["c"], to=TensorProto.FLOAT), helper.make_node("LRN", ["c"], ["l"], size=3),
         helper.make_node("Exp", ["l"], ["y"])],
        [("x", ["n", 4, 3, 3])], [("y", ["n", 4, 3, 3])])


@pytest.mark.slow  # a child process that compiles
def test_models_for_the_baseline_cpu_pass_the_allowlist():
    """Without SSE4.1, FMA or F16C LLVM calls libm / compiler-rt (floorf, fmaf, __extendhfsf2, powf):
    those imports are allowed and resolved (the float16 ones crashed before: nothing in the
    process defined them), so such artifacts load and match onnxruntime."""
    result = run_python("""
        import numpy as np
        from conftest import ort_run
        from pyflame_rt import InferenceSession, SessionOptions
        from pyflame_rt.cache import CacheConfig
        from test_trust import baseline_model
        x = (np.random.default_rng(0).standard_normal((2, 4, 3, 3)) * 3).astype(np.float32)
        sess = InferenceSession(baseline_model(), SessionOptions(cpu="x86-64", cache=CacheConfig(enabled=False)))
        np.testing.assert_allclose(sess.run(None, {"x": x})[0], ort_run(baseline_model(), {"x": x})[0], rtol=1e-5)
        """)
    assert result.returncode == 0, (result.returncode, result.stderr[-3000:])
    from pyflame_rt.targets.cpu.elf_object import ElfObject

    objects = compile_model(baseline_model(), CompileOptions(cpu="x86-64")).objects
    imports = set().union(*(ElfObject(obj).undefined_symbols() for obj in objects))
    assert {"floorf", "fmaf", "__extendhfsf2", "__truncsfhf2", "powf"} <= imports
