"""The batch loop behind the component's `init` and `process` exports, free
of the generated bindings so it runs (and is tested) on plain CPython.

`_component.py` builds one `Runner` with the generated constructors (`Ok`,
`Err`, the `process-error` cases); the tests build one with stand-ins.
"""

from __future__ import annotations

import sys
import traceback
from types import ModuleType
from typing import Any, Callable, List, Optional

from .config import Config
from .errors import ConfigError, ProcessError, Retryable
from .output import Output

# Set by `sluice_sdk.state` when a plugin imports it: wraps the plugin's
# `process` so each event's state writes are applied or discarded with its
# outcome. A plugin without state runs its events unwrapped.
_state_wrap: Optional[Callable[[Callable[[Any], Any]], Callable[[Any], Any]]] = None


class Plugin:
    """Optional base class for a plugin written as a class. The runner makes
    a fresh instance on every `init` (so state lives as long as the Wasm
    instance), calls `init(config)` on it, then `process(event)` per event.
    """

    def init(self, config: Config) -> Optional[str]:
        """Reads the configuration; raise (or return an error message) to
        refuse it. The default accepts anything."""
        return None

    def process(self, event) -> List[Output]:  # pragma: no cover - abstract
        """The outputs for one event; raise `Invalid` or `Retryable` to fail it."""
        raise NotImplementedError


def load(app: ModuleType, name: Optional[str] = None) -> Any:
    """The plugin in module `app`: the attribute `name` if given; otherwise
    the module itself if it has a top-level `process` function, or else the
    one class defined in it that has a `process` method."""
    where = getattr(app, "__file__", None) or app.__name__
    if name is not None:
        try:
            target = getattr(app, name)
        except AttributeError:
            raise LookupError(f"{where} has no attribute {name!r}") from None
        if not callable(getattr(target, "process", None)):
            raise LookupError(f"{where}: {name!r} has no `process` method")
        return target
    process = getattr(app, "process", None)
    if callable(process) and not isinstance(process, type):
        return app
    classes = [
        value
        for value in vars(app).values()
        if isinstance(value, type)
        and value.__module__ == app.__name__
        and callable(getattr(value, "process", None))
    ]
    if len(classes) == 1:
        return classes[0]
    if not classes:
        raise LookupError(
            f"{where} defines no plugin: write a top-level `process(event)` function "
            "(and optionally `init(config)`), or a class with a `process(self, event)` method"
        )
    names = ", ".join(sorted(c.__name__ for c in classes))
    raise LookupError(f"{where} defines several plugin classes ({names}); choose one with --plugin NAME")


class Runner:
    """Holds the plugin and runs it: `init` once per instance, `process` once
    per batch with one outcome per event, in order.

    `ok(outputs)` and `err(error)` make the outcomes, `invalid(message)` and
    `retryable(message)` the errors: componentize-py's `Ok`, `Err` and
    `ProcessError_*` classes in the component, stand-ins in the tests.
    """

    def __init__(
        self,
        target: Any,
        ok: Callable[[Any], Any],
        err: Callable[[Any], Any],
        invalid: Callable[[str], Any],
        retryable: Callable[[str], Any],
    ) -> None:
        self._target = target
        self._ok = ok
        self._err = err
        self._invalid = invalid
        self._retryable = retryable
        self._not_initialised = err(invalid("plugin not initialised"))
        self._process: Optional[Callable[[Any], Any]] = None
        # The `ok` outcomes are reused from batch to batch (the host has
        # copied a batch's outcomes out before it sends the next), which
        # saves constructing one per event; `ok` must make objects whose
        # `value` can be set, as componentize-py's `Ok` dataclass does.
        self._oks: List[Any] = [ok(None)]
        self._oks[0].value = None

    def init(self, pairs) -> Optional[str]:
        """Builds the plugin from the config pairs; the refusal message, or None."""
        # Forget any previous plugin first: a failed re-init must leave the
        # plugin uninitialised rather than running with a stale config.
        self._process = None
        try:
            config = Config(pairs)
            plugin = self._target() if isinstance(self._target, type) else self._target
            init = getattr(plugin, "init", None)
            result = init(config) if init is not None else None
            process = plugin.process
        except ConfigError as err:
            return str(err)
        except ProcessError as err:
            return err.message
        except Exception as err:
            traceback.print_exc(file=sys.stderr)
            return f"{type(err).__name__}: {err}"
        if result is not None:
            if isinstance(result, str):
                return result
            return f"init() must return None or an error message, got {type(result).__name__}"
        if _state_wrap is not None:
            process = _state_wrap(process)
        self._process = process
        return None

    def process(self, events: List[Any]) -> List[Any]:
        """One outcome per event, in order: `ok(outputs)` or `err(invalid|retryable(msg))`.

        An exception other than `Invalid`/`Retryable` propagates (a trap),
        with a note naming the event.
        """
        process = self._process
        if process is None:
            return [self._not_initialised] * len(events)
        oks = self._oks
        if len(oks) < len(events):
            oks.extend(self._ok(None) for _ in range(len(events) - len(oks)))
        err = self._err
        outcomes = []
        append = outcomes.append
        for event, outcome in zip(events, oks):
            try:
                outputs = process(event)
            except Retryable as error:
                append(err(self._retryable(error.message)))
                continue
            except ProcessError as error:
                append(err(self._invalid(error.message)))
                continue
            except BaseException as error:
                _note(error, event)
                raise
            if type(outputs) is not list:
                outputs = _as_list(outputs)
            for output in outputs:
                if type(output) is not Output:
                    _check_output(output)
            outcome.value = outputs
            append(outcome)
        return outcomes


def _note(error: BaseException, event: Any) -> None:
    error.add_note(
        f"sluice: raised by process() on the event at {event.topic}/{event.partition}@{event.offset}"
    )


def _as_list(outputs: Any) -> list:
    if isinstance(outputs, Output):
        return [outputs]
    if isinstance(outputs, (list, tuple)):
        return list(outputs)
    if outputs is None:
        raise TypeError(
            "process() returned None; return a list of Output (an empty list filters the event out)"
        )
    raise TypeError(f"process() must return a list of Output, got {type(outputs).__name__}")


def _check_output(output: Any) -> None:
    if not isinstance(output, Output):
        raise TypeError(
            f"process() must return a list of Output, got an item of type {type(output).__name__}"
        )
