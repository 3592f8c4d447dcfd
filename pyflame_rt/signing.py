"""Signing keys for `.pfm` artifacts (HMAC-SHA256 over the artifact's SHA-256 digest).

A key is a file of 16 to 4096 arbitrary bytes (e.g. `head -c 32 /dev/urandom > pfm.key`),
named by `pyflame-rt compile --sign-key FILE`, `SessionOptions.sign_key_file` or the
environment variable PYFLAME_RT_SIGN_KEY_FILE. docs/security.md describes the trust model.
"""
from __future__ import annotations

import hashlib
import hmac
import os

from pyflame_rt.errors import InvalidModelError, ValidationError
from pyflame_rt.files import read_regular

ENV_KEY_FILE = "PYFLAME_RT_SIGN_KEY_FILE"
MIN_KEY_BYTES, MAX_KEY_BYTES = 16, 4096


def read_key(path: str | os.PathLike) -> bytes:
    """ValidationError if the file is missing, not a regular file or of the wrong size."""
    try:
        key = read_regular(path, "signing key file")
    except InvalidModelError as e:  # the key is an option, not a model
        raise ValidationError(str(e)) from None
    if not MIN_KEY_BYTES <= len(key) <= MAX_KEY_BYTES:
        raise ValidationError(f"signing key file {os.fspath(path)} holds {len(key)} bytes; a key has "
                              f"{MIN_KEY_BYTES} to {MAX_KEY_BYTES} (e.g. head -c 32 /dev/urandom > FILE)")
    return key


def configured_key(key_file: str | os.PathLike | None) -> bytes | None:
    """The key of `key_file`, else of $PYFLAME_RT_SIGN_KEY_FILE, else None (no signature required)."""
    path = key_file if key_file is not None else os.environ.get(ENV_KEY_FILE) or None
    return None if path is None else read_key(path)


def mac(key: bytes, digest: bytes) -> bytes:
    return hmac.new(key, digest, hashlib.sha256).digest()


def verify(key: bytes, digest: bytes, signature: bytes) -> bool:
    return hmac.compare_digest(mac(key, digest), signature)
