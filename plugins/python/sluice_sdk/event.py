"""`Event`: one consumed Kafka record, with accessors that turn the common
failure modes (tombstone, bad UTF-8, bad JSON) into precise `Invalid`
errors.

Inside the component the host's records arrive as instances of the class
that componentize-py generates for the WIT `event` record; the SDK adds the
methods below to that class once, at build time (`_component.py`), so no
event is wrapped or copied. This class is the same shape for unit tests on
plain CPython.
"""

from __future__ import annotations

import json
import re
from typing import List, Optional, Tuple, Union

from .errors import Invalid

Header = Tuple[str, bytes]
BytesLike = Union[bytes, bytearray, memoryview, str]

_TOMBSTONE = "event has no value (tombstone)"


def _reject_constant(name: str) -> None:
    # `NaN`, `Infinity` and `-Infinity` are not JSON (serde_json rejects them
    # too); Python's parser accepts them unless told otherwise.
    raise ValueError(f"{name} is not valid JSON")


try:
    from json.scanner import c_make_scanner as _make_scanner
except ImportError:  # pragma: no cover - CPython always has _json
    _make_scanner = None


# serde_json (the Rust SDK's parser) refuses JSON nested 128 deep; so does
# this one. It also keeps CPython, whose C parser and encoder recurse, from
# exhausting the Wasm stack (a trap) on hostile input.
MAX_DEPTH = 127
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)
_BRACKET = re.compile(r"[\[\]{}]")


def _too_deep(value: bytes, text: str) -> bool:
    """Whether `text` nests arrays and objects more than MAX_DEPTH deep.
    Checked only when there are enough brackets for it to be possible, so
    ordinary events pay for two `bytes.count`s."""
    if len(value) <= MAX_DEPTH or value.count(b"[") + value.count(b"{") <= MAX_DEPTH:
        return False
    depth = 0
    for match in _BRACKET.finditer(_STRING.sub("", text)):
        if match.group() in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return True
        else:
            depth -= 1
    return False


def _has_surrogate(value) -> bool:
    """Whether a string in the parsed value holds a lone surrogate (from a
    `\\ud800` escape: Python accepts it, serde_json and UTF-8 do not).
    Only called when the text has a `\\u` escape."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode()
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


class JsonParser:
    """Parses an event value as JSON, with `Event.json`'s strictness and
    messages. `Event.json` uses the default one; `sluice_sdk.compat` makes
    one whose numbers follow serde_json."""

    __slots__ = ("_decoder", "_scan")

    def __init__(self, **hooks) -> None:
        self._decoder = json.JSONDecoder(parse_constant=_reject_constant, **hooks)
        self._scan = _make_scanner(self._decoder) if _make_scanner is not None else None

    def parse(self, value: Optional[bytes]):
        if value is None:
            raise Invalid(_TOMBSTONE)
        try:
            text = value.decode()
            if len(value) > MAX_DEPTH and _too_deep(value, text):
                message = "recursion limit exceeded"
            else:
                # The C scanner parses one value from index 0: this is
                # `decoder.decode(text)` minus its two regex calls and two
                # Python frames. Anything unusual (whitespace around the
                # value, trailing data, an error) goes through the full
                # decoder, which also words the error.
                scan = self._scan
                end = -1
                if scan is not None:
                    try:
                        parsed, end = scan(text, 0)
                    except StopIteration:
                        pass
                if end != len(text):
                    parsed = self._decoder.decode(text)
                if "\\u" not in text or not _has_surrogate(parsed):
                    return parsed
                message = "lone surrogate in a \\u escape"
        except UnicodeDecodeError as err:
            message = f"invalid UTF-8: {err}"
        except RecursionError:
            message = "nested too deeply"
        except ValueError as err:  # json.JSONDecodeError, a too-long int, NaN, a hook's refusal
            message = str(err)
        raise Invalid(f"event value is not valid JSON: {message}")


_PARSER = JsonParser()


def _to_bytes(value: BytesLike, what: str) -> bytes:
    if type(value) is bytes:
        return value
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"{what} must be bytes or str, got {type(value).__name__}")


class Event:
    """One consumed Kafka record.

    Attributes (read them, do not assign): `topic` (str), `partition` (int),
    `offset` (int), `timestamp_ms` (int or None), `key` (bytes or None),
    `value` (bytes or None for a tombstone), `headers` (list of
    ``(name, bytes)`` in record order; names may repeat).

    The constructor is for tests: ``Event(b'{"a":1}', key="k",
    headers=[("h", "1")])``; str arguments are encoded as UTF-8.
    """

    __slots__ = ("topic", "partition", "offset", "timestamp_ms", "key", "value", "headers")

    def __init__(
        self,
        value: Optional[BytesLike] = None,
        *,
        key: Optional[BytesLike] = None,
        headers: Optional[List[Tuple[str, BytesLike]]] = None,
        topic: str = "",
        partition: int = 0,
        offset: int = 0,
        timestamp_ms: Optional[int] = None,
    ) -> None:
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.timestamp_ms = timestamp_ms
        self.key = None if key is None else _to_bytes(key, "key")
        self.value = None if value is None else _to_bytes(value, "value")
        self.headers = [(str(n), _to_bytes(v, "header value")) for n, v in headers or ()]

    def __repr__(self) -> str:
        return (
            f"Event(topic={self.topic!r}, partition={self.partition}, offset={self.offset}, "
            f"timestamp_ms={self.timestamp_ms}, key={self.key!r}, value={self.value!r}, "
            f"headers={self.headers!r})"
        )

    def __eq__(self, other: object) -> bool:
        return all(
            getattr(self, f) == getattr(other, f, object()) for f in Event.__slots__
        )

    # ---- The methods below are also installed on the generated class. ----

    def is_tombstone(self) -> bool:
        """Whether the record has no value."""
        return self.value is None

    def value_str(self) -> str:
        """The value as text.

        Raises `Invalid` if the event is a tombstone or the value is not
        valid UTF-8.
        """
        value = self.value
        if value is None:
            raise Invalid(_TOMBSTONE)
        try:
            return value.decode()
        except UnicodeDecodeError as err:
            raise Invalid(f"event value is not valid UTF-8: {err}") from None

    def json(self):
        """The value parsed as JSON (dict, list, str, int, float, bool or None).

        Raises `Invalid` if the event is a tombstone (``event has no value
        (tombstone)``) or the value is not UTF-8 JSON (``event value is not
        valid JSON: <parser message>``). As strict as the Rust SDK's
        serde_json where it matters: `NaN` and `Infinity` are refused, and so
        are a byte-order mark, lone surrogates (`"\\ud800"`) and nesting
        deeper than 127 arrays/objects.
        (Unlike serde_json, a number too large for a float parses as `inf`
        and a long integer stays exact; `Output.json` refuses `inf`.)
        """
        return _PARSER.parse(self.value)

    def header(self, name: str) -> Optional[bytes]:
        """The value of the first header called `name`, or None. Kafka allows
        repeated names: `headers` has them all."""
        for header, value in self.headers:
            if header == name:
                return value
        return None


# What `_component.py` copies onto the generated record class.
EVENT_METHODS = ("is_tombstone", "value_str", "json", "header")
