"""The package logger: SessionOptions.log_level's severities as Python logging levels."""
import logging
import subprocess
import sys

import pytest

from pyflame_rt import LogLevel, logs


@pytest.mark.parametrize("severity,level", [(LogLevel.DEBUG, logging.DEBUG), (LogLevel.INFO, logging.INFO),
                                            (LogLevel.WARNING, logging.WARNING), (LogLevel.FATAL, logging.CRITICAL)])
def test_severities_map_to_logging_levels(severity, level):
    before = logs.LOGGER.level
    try:
        logs.set_level(severity)
        assert logs.LOGGER.level == level
    finally:
        logs.LOGGER.setLevel(before)


def test_without_logging_configured_debug_is_printed_and_warning_adds_no_handler():
    code = ("import sys; from pyflame_rt import logs\n"
            "logs.set_level(int(sys.argv[1])); logs.LOGGER.debug('dbg'); logs.LOGGER.warning('warn')\n"
            "print(len(logs.LOGGER.handlers))")
    for severity, handlers, printed in [(0, "1", ["pyflame_rt DEBUG: dbg", "pyflame_rt WARNING: warn"]),
                                        (2, "0", ["warn"])]:  # Python's own last-resort output
        out = subprocess.run([sys.executable, "-c", code, str(severity)], capture_output=True, text=True, check=True)
        assert out.stdout.strip() == handlers and out.stderr.strip().splitlines() == printed
