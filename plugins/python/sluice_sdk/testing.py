"""Helpers for unit tests of stateful plugins, on plain CPython.

    from sluice_sdk import Event, testing
    import account_balance

    testing.reset()                                      # an empty state
    testing.set_state({"account/ACC-1": '{"balance":5,"version":1}'})
    outputs = testing.process(account_balance, Event(value, key="ACC-1"))
    assert testing.state()[b"account/ACC-1"] == b'{"balance":6,"version":2}'

Off Wasm the state is an in-memory dict shared by the whole process (reset
it in `setUp`). `process` runs one event as the host does: its writes are
applied if it returns, discarded if it raises.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Iterable, Mapping, Tuple, Union

from . import state as _state
from .event import BytesLike

__all__ = ["process", "reset", "set_state", "state", "with_event"]


def process(plugin: Any, event) -> list:
    """Runs `plugin.process(event)` (or `plugin(event)` for a function) as the
    host does: the outputs, with the event's state writes applied; or the
    exception it raised, with its writes discarded."""
    handler = plugin if not hasattr(plugin, "process") else plugin.process
    return _state._run_event(handler, event)


def with_event(function: Callable[[], Any]) -> Any:
    """Calls `function()` as if it handled an event (state calls work); its
    writes are applied if it returns, discarded if it raises."""
    return _state._run_event(lambda _event: function(), None)


def _store() -> _state.MemoryStore:
    store = _state._store
    if not isinstance(store, _state.MemoryStore):  # pragma: no cover - only in the component
        raise RuntimeError("sluice_sdk.testing works off Wasm only")
    return store


def reset() -> None:
    """Empties the in-memory state."""
    _store().map.clear()


def set_state(
    entries: Union[Mapping[BytesLike, BytesLike], Iterable[Tuple[BytesLike, BytesLike]]],
) -> None:
    """Replaces the in-memory state with `entries` (a mapping or pairs; str
    is taken as UTF-8)."""
    pairs = entries.items() if isinstance(entries, Mapping) else entries
    store = _store()
    store.map.clear()
    for key, value in pairs:
        store.map[_state._key(key)] = _state._key(value, "value")


def state() -> Dict[bytes, bytes]:
    """A copy of the in-memory state, in key order."""
    return dict(sorted(_store().map.items()))
