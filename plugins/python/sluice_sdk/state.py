"""Keyed state the host keeps for the plugin (`wit/plugin.wit`, interface
`sluice:plugin/state`): a balance per account, a count per key, anything an
aggregation must not lose when the host replaces an instance.

    from sluice_sdk import Invalid, Output, state

    def process(event):
        if event.key is None:
            raise Invalid("event has no key")
        key = b"count/" + event.key
        count = state.get_json(key) or {"seen": 0}
        count["seen"] += 1
        state.set_json(key, count)
        return [Output.json(count)]

Importing this module makes the plugin *stateful*: the build sees the
import (`from sluice_sdk import state`, `import sluice_sdk.state` or
`from sluice_sdk.state import ...` in the plugin's module) and builds the
component for the world `stateful-processor`, which imports the host's
state interface. A plugin that does not import it is built for `processor`
and is loaded exactly like any stateless plugin. (A plugin that imports it
only from a helper module must be built with `--stateful`; the build
fails with that advice otherwise.)

Keys and values are bytes; a `str` is taken as its UTF-8 bytes (so
`state.get("account/ACC-1")` works), and `bytearray`/`memoryview` are
accepted too. Reads return `bytes`. `get_json`/`set_json` store a value
as compact JSON.

Scope
-----
Each step of a pipeline's chain has a state of its own, split by the input
partition of the event being processed: an event sees the keys written
while processing earlier events *of the same partition*. Kafka puts the
records of one key in one partition, so keep the state of a record key
under keys derived from it (as above), and have producers key the records
by what the state is about (the account, the customer).

One event, all or nothing
-------------------------
The SDK keeps what an event writes to itself until `process` returns:

- it returns outputs: the writes go to the host, in order, before the next
  event is processed;
- it raises `Invalid` or `Retryable`: the writes are discarded, so a failed
  event leaves no trace and a retried one starts from the same state.

While the event runs, `get`, `exists` and `keys` see its own writes. Any
other exception (a trap) discards the writes of every event of the batch;
the host then retries the events one by one, so each is applied once.

`plugins/state-rule.json` (in the Sluice repository) is this rule's
specification, as cases of events with the answer of every call and the
state after every event; this SDK, the Rust and the JavaScript SDK are
tested against it, on their own and through the host.

Limits
------
The host bounds the size of a key and of a value and the keys and bytes of
a partition's state (see the host's README). A write beyond them fails the
event that made it as `state-limit` (it goes to the dead-letter topic); the
state stays as it was before that event.

Where state is available
------------------------
Only while an event is processed: a call from `init` (or from anywhere
else outside `process`) raises `StateError`, which at `init` refuses the
plugin. This is a bug in the plugin, not a property of an event, hence not
an `Invalid`. For the same reason an iterator from `keys` must be used up
within the event that created it.

Testing
-------
Off Wasm (unit tests on CPython) the state is an in-memory dict. Run an
event as the host does with `sluice_sdk.testing.process`, which applies or
discards its writes, and seed or inspect the state with
`testing.set_state` and `testing.state` (`testing.reset` empties it).
Calling `process(event)` directly works for stateless plugins only: a state
call outside `testing.process` raises `StateError`, as it would outside an
event in Wasm.
"""

from __future__ import annotations

import json
from typing import Callable, Dict, Iterator, List, Optional

from . import runner as _runner
from .errors import Invalid
from .event import BytesLike, _reject_constant
from .output import _encode, _join, _markers

__all__ = [
    "StateError",
    "delete",
    "delete_prefix",
    "exists",
    "get",
    "get_json",
    "keys",
    "set",
    "set_json",
]

# How many keys one host `list-keys` call asks for.
PAGE = 256


class StateError(RuntimeError):
    """A state call that cannot work: outside an event, a `keys` iterator
    used after its event, or a host refusal. Not an event's failure: raised
    from `process` it traps; from `init` it refuses the plugin."""


def _key(key: BytesLike, what: str = "key") -> bytes:
    if type(key) is bytes:
        return key
    if isinstance(key, str):
        return key.encode()
    if isinstance(key, (bytearray, memoryview)):
        return bytes(key)
    raise TypeError(f"a state {what} must be bytes or str, got {type(key).__name__}")


def _escape(key: bytes) -> str:
    """`key` as Rust's `escape_ascii` writes it, for messages."""
    out = []
    for byte in key:
        if byte == 0x5C:
            out.append("\\\\")
        elif byte == 0x22:
            out.append('\\"')
        elif byte == 0x27:
            out.append("\\'")
        elif byte == 0x09:
            out.append("\\t")
        elif byte == 0x0A:
            out.append("\\n")
        elif byte == 0x0D:
            out.append("\\r")
        elif 0x20 <= byte < 0x7F:
            out.append(chr(byte))
        else:
            out.append(f"\\x{byte:02x}")
    return "".join(out)


class MemoryStore:
    """The host's store off Wasm: a dict, for plugins' unit tests
    (`sluice_sdk.testing`). Any object with these six methods (raising
    `StateError` for a host error) can stand in for the host."""

    def __init__(self) -> None:
        self.map: Dict[bytes, bytes] = {}

    def get(self, key: bytes) -> Optional[bytes]:
        return self.map.get(key)

    def set(self, key: bytes, value: bytes) -> None:
        self.map[key] = value

    def delete(self, key: bytes) -> None:
        self.map.pop(key, None)

    def exists(self, key: bytes) -> bool:
        return key in self.map

    def list_keys(self, prefix: bytes, cursor: Optional[bytes], limit: int) -> List[bytes]:
        found = sorted(
            k for k in self.map if k.startswith(prefix) and (cursor is None or k > cursor)
        )
        return found[:limit]

    def delete_prefix(self, prefix: bytes) -> int:
        doomed = [k for k in self.map if k.startswith(prefix)]
        for k in doomed:
            del self.map[k]
        return len(doomed)


class Overlay:
    """The current event's writes, not yet sent to the host."""

    __slots__ = ("cleared", "writes")

    def __init__(self) -> None:
        # Prefixes the event deleted; they apply before `writes`.
        self.cleared: List[bytes] = []
        # Writes made after those deletions: bytes sets, None deletes.
        self.writes: Dict[bytes, Optional[bytes]] = {}

    def _is_cleared(self, key: bytes) -> bool:
        return any(key.startswith(prefix) for prefix in self.cleared)

    def get(self, store, key: bytes) -> Optional[bytes]:
        writes = self.writes
        if key in writes:
            return writes[key]
        if self.cleared and self._is_cleared(key):
            return None
        return store.get(key)

    def exists(self, store, key: bytes) -> bool:
        writes = self.writes
        if key in writes:
            return writes[key] is not None
        if self.cleared and self._is_cleared(key):
            return False
        return store.exists(key)

    def set(self, key: bytes, value: bytes) -> None:
        self.writes[key] = value

    def delete(self, key: bytes) -> None:
        self.writes[key] = None

    def keys(self, store, prefix: bytes, page: int = PAGE) -> Iterator[bytes]:
        """The keys under `prefix` as of now: the host's, a page at a time,
        merged in byte order with a snapshot of this event's writes."""
        mine = sorted((k, v is not None) for k, v in self.writes.items() if k.startswith(prefix))
        cleared = list(self.cleared)
        page = max(page, 1)

        def host_keys() -> Iterator[bytes]:
            after = None
            while True:
                keys = store.list_keys(prefix, after, page)
                for key in keys:
                    if not any(key.startswith(c) for c in cleared):
                        yield key
                if len(keys) < page:
                    return
                after = keys[-1]

        def merged() -> Iterator[bytes]:
            host = host_keys()
            next_host = next(host, None)
            i = 0
            while next_host is not None or i < len(mine):
                if i < len(mine) and (next_host is None or mine[i][0] <= next_host):
                    key, is_set = mine[i]
                    i += 1
                    if key == next_host:
                        next_host = next(host, None)
                    if is_set:
                        yield key
                else:
                    key = next_host
                    next_host = next(host, None)
                    yield key

        # The snapshot is taken now; the host is read as the iterator advances.
        return merged()

    def delete_prefix(self, store, prefix: bytes) -> int:
        count = sum(1 for _ in self.keys(store, prefix))
        self.writes = {k: v for k, v in self.writes.items() if not k.startswith(prefix)}
        # A deletion under this prefix is now redundant.
        self.cleared = [c for c in self.cleared if not c.startswith(prefix)]
        self.cleared.append(prefix)
        return count

    def __bool__(self) -> bool:
        return bool(self.cleared or self.writes)

    def commit(self, store) -> None:
        """Sends the writes to the host, prefix deletions first, then the
        keys in byte order."""
        for prefix in self.cleared:
            store.delete_prefix(prefix)
        for key in sorted(self.writes):
            value = self.writes[key]
            if value is None:
                store.delete(key)
            else:
                store.set(key, value)


# The store: the host's in the component (set by `_component.py`), a dict
# off Wasm.
_store = MemoryStore()
# The current event's overlay, or None outside an event.
_overlay: Optional[Overlay] = None
# Counts events, so a `keys` iterator can tell it outlived its own.
_generation = 0
_IN_WASM = False


def _current(function: str) -> Overlay:
    overlay = _overlay
    if overlay is None:
        hint = "" if _IN_WASM else "; in tests, run the event with `sluice_sdk.testing.process`"
        raise StateError(
            f"sluice_sdk.state.{function}: state is only available while an event is processed "
            f"(in `process`, not in `init`){hint}"
        )
    return overlay


def get(key: BytesLike) -> Optional[bytes]:
    """The value of `key`, or None when it has none."""
    return _current("get").get(_store, _key(key))


def set(key: BytesLike, value: BytesLike) -> None:  # noqa: A001 - the WIT name
    """Sets `key` to `value` (bytes, or str as UTF-8), replacing any value it
    had. The write takes effect when the event succeeds."""
    _current("set").set(_key(key), _key(value, "value"))


def delete(key: BytesLike) -> None:
    """Removes `key`; removing a key that has no value does nothing."""
    _current("delete").delete(_key(key))


def exists(key: BytesLike) -> bool:
    """Whether `key` has a value."""
    return _current("exists").exists(_store, _key(key))


def keys(prefix: BytesLike = b"") -> Iterator[bytes]:
    """The keys that start with `prefix` (empty: every key), in byte order,
    read from the host a page at a time as the iterator advances. Use it up
    within the event (e.g. `list(state.keys("account/"))`)."""
    cursor = _current("keys").keys(_store, _key(prefix, "prefix"))
    return _Keys(cursor, _generation)


class _Keys:
    __slots__ = ("_cursor", "_event")

    def __init__(self, cursor: Iterator[bytes], event: int) -> None:
        self._cursor = cursor
        self._event = event

    def __iter__(self) -> "_Keys":
        return self

    def __next__(self) -> bytes:
        if _overlay is None or _generation != self._event:
            raise StateError(
                "sluice_sdk.state.keys: the iterator was advanced after the event it was "
                "created in; collect the keys within the event"
            )
        return next(self._cursor)


def delete_prefix(prefix: BytesLike) -> int:
    """Removes every key that starts with `prefix` (empty: every key) and
    returns how many had a value. Counting means listing the keys, so this
    costs a host call per page of `keys`."""
    return _current("delete_prefix").delete_prefix(_store, _key(prefix, "prefix"))


_decoder = json.JSONDecoder(parse_constant=_reject_constant)


def get_json(key: BytesLike, default=None):
    """The value of `key` parsed as JSON, or `default` when it has none.
    Raises `Invalid` (naming the key) when the stored value is not JSON."""
    key = _key(key)
    value = _current("get_json").get(_store, key)
    if value is None:
        return default
    try:
        return _decoder.decode(value.decode())
    except (ValueError, RecursionError) as err:  # JSONDecodeError, UnicodeDecodeError
        raise Invalid(
            f"state value of key `{_escape(key)}` is not the expected JSON: {err}"
        ) from None


def set_json(key: BytesLike, value: object) -> None:
    """Sets `key` to `value` as compact JSON (as `Output.json` writes it).
    Raises `Invalid` if `value` cannot be serialized; nothing is written
    then."""
    key = _key(key)
    overlay = _current("set_json")
    try:
        data = _join(_encode(value, 0)).encode()
    except (TypeError, ValueError, RecursionError) as err:
        _markers.clear()
        raise Invalid(f"cannot serialize state value as JSON: {err}") from None
    overlay.set(key, data)


# The event loop (`runner.Runner`) runs every event of a stateful plugin
# through `_run_event`; a plugin that never imports this module pays
# nothing for it.


def _run_event(process: Callable, event):
    """Runs one event's handler: its writes are applied if it returns, and
    discarded if it raises (anything)."""
    global _overlay, _generation
    _generation += 1
    overlay = _overlay = Overlay()
    try:
        outputs = process(event)
    finally:
        _overlay = None
    if overlay:
        overlay.commit(_store)
    return outputs


def _wrap(process: Callable) -> Callable:
    def stateful_process(event, _run=_run_event, _process=process):
        return _run(_process, event)

    return stateful_process


def _use_store(store) -> None:
    """Installs the store the state functions read and write (the host's, in
    the component)."""
    global _store, _IN_WASM
    _store = store
    _IN_WASM = not isinstance(store, MemoryStore)


_runner._state_wrap = _wrap

