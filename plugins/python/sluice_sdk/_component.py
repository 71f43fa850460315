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

from componentize_py_types import Err, Ok

import wit_world
from wit_world.imports import host, types

from . import log as _log
from .event import EVENT_METHODS, Event
from .runner import Runner, load

_LEVELS = {
    "trace": host.Level.TRACE,
    "debug": host.Level.DEBUG,
    "info": host.Level.INFO,
    "warn": host.Level.WARN,
    "error": host.Level.ERROR,
}


def _host_log(level: str, message: str, _log=host.log, _levels=_LEVELS) -> None:
    _log(_levels[level], message)


def world(app, name=None) -> type:
    """The `WitWorld` class exporting the plugin found in module `app`."""
    for method in EVENT_METHODS:
        setattr(types.Event, method, Event.__dict__[method])
    _log._write = _host_log
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
