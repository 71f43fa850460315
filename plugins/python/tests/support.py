"""Shared by the tests: puts the SDK and the example on sys.path (so the
tests run from a checkout without installing anything) and builds runners
with stand-ins for componentize-py's generated types."""

import importlib
import sys
from pathlib import Path

PYTHON_DIR = Path(__file__).resolve().parents[1]
for path in (
    PYTHON_DIR,
    PYTHON_DIR / "order-enrich",
    PYTHON_DIR / "account-balance",
    PYTHON_DIR / "tests" / "plugins",
):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from sluice_sdk.runner import Runner  # noqa: E402


class Outcome:
    """Stands in for componentize-py's Ok and Err: compares as a tuple
    (kind, value), and has a settable `value` as Ok has."""

    kind = ""

    def __init__(self, value):
        self.value = value

    def _tuple(self):
        return (self.kind, self.value)

    def __eq__(self, other):
        return self._tuple() == (other._tuple() if isinstance(other, Outcome) else other)

    def __iter__(self):
        return iter(self._tuple())

    def __repr__(self):
        return repr(self._tuple())


class ok(Outcome):
    kind = "ok"


class err(Outcome):
    kind = "err"


def invalid(message):
    return ("invalid", message)


def retryable(message):
    return ("retryable", message)


def runner(target):
    """A Runner whose outcomes unpack and compare as tuples: ("ok", outputs)
    or ("err", ("invalid" | "retryable", message))."""
    return Runner(target, ok, err, invalid, retryable)


def fresh(module_name):
    """The module, imported anew (plugins keep state in globals)."""
    sys.modules.pop(module_name, None)
    return importlib.import_module(module_name)
