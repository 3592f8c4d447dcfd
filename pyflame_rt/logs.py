"""The package logger, "pyflame_rt", whose level SessionOptions.log_level sets.

Sessions log what they open and how (compile, cache hit, artifact) at INFO and their set-up at
DEBUG; runs log nothing, so the run path pays nothing for logging. When a level below WARNING
is chosen and the application has configured no logging at all, one stderr handler is added, so
that what was asked for is printed (Python prints only warnings and errors without a handler).
"""
from __future__ import annotations

import logging

LOGGER = logging.getLogger("pyflame_rt")

# onnxruntime severities (LogLevel) -> Python logging levels
_PYTHON_LEVELS = (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL)


def set_level(severity: int) -> None:
    level = _PYTHON_LEVELS[severity]
    LOGGER.setLevel(level)
    if level < logging.WARNING and not LOGGER.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("pyflame_rt %(levelname)s: %(message)s"))
        LOGGER.addHandler(handler)
