"""Logging through the host: lines land in the host's log, tagged with the
pipeline and plugin name.

    from sluice_sdk import log
    log.info("ready")
    log.warn(f"skipping {n} malformed headers")

The host drops lines below its level cheaply, but the message is still
built in the plugin: keep per-event logging at `debug`/`trace` and avoid
expensive formatting on the hot path.

Off Wasm (unit tests on CPython) there is no host, so lines go to stderr.
"""

from __future__ import annotations

import sys

LEVELS = ("trace", "debug", "info", "warn", "error")


def _stderr(level: str, message: str) -> None:
    print(f"[plugin {level}] {message}", file=sys.stderr)


# Replaced by the component glue with a call to the WIT `host.log` import.
_write = _stderr


def log(level: str, message: object) -> None:
    """Writes `message` at `level` (one of `LEVELS`)."""
    if level not in LEVELS:
        raise ValueError(f"unknown log level {level!r}; expected one of {', '.join(LEVELS)}")
    _write(level, str(message))


def trace(message: object) -> None:
    """Writes `message` at trace level."""
    _write("trace", str(message))


def debug(message: object) -> None:
    """Writes `message` at debug level."""
    _write("debug", str(message))


def info(message: object) -> None:
    """Writes `message` at info level."""
    _write("info", str(message))


def warn(message: object) -> None:
    """Writes `message` at warn level."""
    _write("warn", str(message))


warning = warn


def error(message: object) -> None:
    """Writes `message` at error level."""
    _write("error", str(message))
