"""The component glue: the only module that imports the bindings
componentize-py generates (at build time, from `wit/plugin.wit`), so
everything else in the SDK runs on plain CPython.

componentize-py 0.25.1 exports the world's functions by instantiating the
class `WitWorld` found in the app module (the entry module that
`sluice_sdk.build` writes) and calling its `init`/`process` methods.
`init`'s `result<_, string>` is `None` or a raised `Err(message)`;
`process` returns a list holding an `Ok(list[output])` or
`Err(ProcessError_Invalid | ProcessError_Retryable)` per event. Records are
lowered by reading the fields as attributes, so `Output` objects go to the
host as they are, and lifted by calling the generated record class, which
is why the `Event` methods are installed on that class.

An exception escaping an export makes componentize-py print the traceback
to stderr and panic: the host sees a trap and attaches the tail of stderr.
"""

import sys

from componentize_py_types import Err, Ok

import wit_world
from wit_world.imports import host, types

from . import log as _log
from .event import EVENT_METHODS, Event
from .runner import Runner, load

try:  # only in a build for the world `stateful-processor`
    from wit_world.imports import state as _wit_state
except ImportError:
    _wit_state = None

_LEVELS = {
    "trace": host.Level.TRACE,
    "debug": host.Level.DEBUG,
    "info": host.Level.INFO,
    "warn": host.Level.WARN,
    "error": host.Level.ERROR,
}


def _host_log(level: str, message: str, _log=host.log, _levels=_LEVELS) -> None:
    _log(_levels[level], message)


class _HostStore:
    """The host's state functions, as `sluice_sdk.state` calls its store."""

    def __init__(self, wit) -> None:
        self._wit = wit

    def _call(self, function, *args):
        try:
            return function(*args)
        except Err as err:
            error = err.value
            raise _state_error()(f"state is unavailable: {getattr(error, 'value', error)}") from None

    def get(self, key):
        return self._call(self._wit.get, key)

    def set(self, key, value):
        self._call(self._wit.set, key, value)

    def delete(self, key):
        self._call(self._wit.delete, key)

    def exists(self, key):
        return self._call(self._wit.exists, key)

    def list_keys(self, prefix, cursor, limit):
        return self._call(self._wit.list_keys, prefix, cursor, limit)

    def delete_prefix(self, prefix):
        return self._call(self._wit.delete_prefix, prefix)


def _state_error():
    from .state import StateError

    return StateError


def world(app, name=None) -> type:
    """The `WitWorld` class exporting the plugin found in module `app`."""
    for method in EVENT_METHODS:
        setattr(types.Event, method, Event.__dict__[method])
    _log._write = _host_log
    # The build picks the world: `stateful-processor` when the plugin
    # imports `sluice_sdk.state` (or with --stateful), `processor` otherwise.
    state = sys.modules.get("sluice_sdk.state")
    if state is not None:
        if _wit_state is None:
            raise ImportError(
                "the plugin imports sluice_sdk.state, but the build is for the world `processor`, "
                "which has no state: build with --stateful (the build looks for the import in the "
                "plugin's own module only)"
            )
        state._use_store(_HostStore(_wit_state))
    runner = Runner(
        load(app, name), Ok, Err, types.ProcessError_Invalid, types.ProcessError_Retryable
    )

    class WitWorld(wit_world.WitWorld):
        def init(self, config):
            message = runner.init(config)
            if message is not None:
                raise Err(message)

        def process(self, events):
            return runner.process(events)

    return WitWorld
