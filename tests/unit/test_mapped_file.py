"""MappedFile / MMapLoader: the guide's mmap names over private, verified memory."""
import os

import pytest

from test_artifact import mlp
from pyflame_rt import InvalidModelError, ValidationError, artifact
from pyflame_rt.cache import MappedFile, MMapAdvice, MMapLoader
from pyflame_rt.compiler import compile_model


def test_mapped_file_is_a_private_read_only_copy(tmp_path):
    data = bytes(range(256)) * 40
    path = tmp_path / "weights.bin"
    path.write_bytes(data)
    assert MMapLoader.can_mmap(path) and not MMapLoader.can_mmap(tmp_path) and not MMapLoader.can_mmap(tmp_path / "no")
    assert MMapLoader.page_alignment() == os.sysconf("SC_PAGE_SIZE")
    with MappedFile.open(path) as f:
        assert f.is_valid() and f.size() == len(data) and f.data().tobytes() == data
        assert f.data().ctypes.data % MMapLoader.page_alignment() == 0 and not f.data().flags.writeable
        f.advise(MMapAdvice.Sequential)
        f.lock()
        path.write_bytes(b"rewritten")  # the file changing later does not reach the open copy
        assert f.data().tobytes() == data
    assert not f.is_valid()
    with pytest.raises(ValidationError, match="closed"):
        f.data()
    with pytest.raises(InvalidModelError):
        MappedFile.open(tmp_path)  # a directory


def test_mmap_loader_verifies_artifacts_before_use(tmp_path):
    pfm = tmp_path / "m.pfm"
    artifact.save(compile_model(mlp()), pfm)
    assert MMapLoader.load(pfm).header["outputs"][0]["name"] == "y"
    raw = bytearray(pfm.read_bytes())
    raw[-1] ^= 1  # the loader verifies before anything is used
    pfm.write_bytes(bytes(raw))
    with pytest.raises(InvalidModelError):
        MMapLoader.load(pfm)
