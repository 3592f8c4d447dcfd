"""The package logger, "pyflame_rt", whose level SessionOptions.log_level sets.

Sessions log what they open and how (compile, cache hit, artifact) at INFO and their set-up at
DEBUG; runs log nothing, so the run path pays nothing for logging. When the application has
configured no logging at all, the first level set adds one stderr handler, so that the level
chosen is what is printed.
"""
from __future__ import annotations

import logging

LOGGER = logging.getLogger("pyflame_rt")

# onnxruntime severities (LogLevel) -> Python logging levels
_PYTHON_LEVELS = (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL)


def set_level(severity: int) -> None:
    LOGGER.setLevel(_PYTHON_LEVELS[severity])
    if not LOGGER.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("pyflame_rt %(levelname)s: %(message)s"))
        LOGGER.addHandler(handler)
