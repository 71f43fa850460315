"""`Output`: one record the plugin wants written, built from a value and a
few `to_*`/`with_*` calls. Everything not set is inherited from the input
event by the host, so the common case costs nothing.

An `Output` has exactly the fields of the WIT `output` record (`topic`,
`key`, `value`, `headers`), with the types the canonical ABI wants, so the
component hands it to the host as it is: no conversion per output.
"""

from __future__ import annotations

import json
import json.encoder
from typing import Callable, List, Optional

from .errors import Invalid
from .event import BytesLike, Header, _to_bytes


# The C encoders' record of the containers being encoded, to refuse a cycle
# (which would otherwise recurse until the Wasm stack runs out: a trap). An
# encoder that fails leaves its entries behind, so `Output.json` clears it
# then.
_markers: dict = {}


def _make_encoder(sort_keys: bool) -> Callable[[object, int], object]:
    """A compact, strict JSON encoder (like serde_json's): no spaces, raw
    UTF-8 rather than \\u escapes, NaN and infinities refused. Called as
    `encode(obj, 0)`, it returns chunks to join: the C encoder itself, so
    no Python frame runs per call. The C encoder is built once
    and reused, which `json.dumps(..., separators=...)` does not do."""
    encoder = json.JSONEncoder(
        ensure_ascii=False, allow_nan=False, separators=(",", ":"), sort_keys=sort_keys
    )
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is not None:
        try:
            iterencode = make(
                _markers, encoder.default, json.encoder.encode_basestring, None,
                ":", ",", sort_keys, False, False,
            )
            sample = {"b": [1.5, "é", None, True], "a": 1}
            if "".join(iterencode(sample, 0)) == encoder.encode(sample):
                return iterencode
        except Exception:  # an interpreter whose C encoder differs: use the stdlib path
            pass
    return lambda obj, _level: (encoder.encode(obj),)


_encode = _make_encoder(False)
_encode_sorted = _make_encoder(True)
_join = "".join


class Output:
    """One record to write.

    What is not set is inherited from the input event by the host:

    ========  ==============================  =====================================
    field     unset (default)                 set with
    ========  ==============================  =====================================
    topic     the pipeline's result topic     `to_topic`
    key       the input event's key           `with_key`
    headers   the input event's headers       `with_header`, `with_input_headers`,
                                              `without_headers`
    value     always set by the constructor   `Output(v)`, `Output.json`,
                                              `Output.forward`, `Output.tombstone`
    ========  ==============================  =====================================

    **Headers are all or nothing.** Until a header method is called the
    output carries the input's headers; the first one switches it to an
    explicit list written exactly as built, so `with_header("x", ...)` alone
    writes *only* `x`. To add to the input's headers, start from them:
    `.with_input_headers(event).with_header("x", ...)`.

    A topic other than the result topic must be in the pipeline's allowed
    list, or the host dead-letters the event as `output-rejected`.

    The builder methods change the output and return it, so they chain.
    """

    __slots__ = ("topic", "key", "value", "headers")

    def __init__(self, value: Optional[BytesLike]) -> None:
        """An output with `value` (bytes, or str written as UTF-8; None is a
        tombstone), to the result topic, with the input's key and headers."""
        self.topic: Optional[str] = None
        self.key: Optional[bytes] = None
        self.value: Optional[bytes] = (
            value if type(value) is bytes or value is None else _to_bytes(value, "Output value")
        )
        self.headers: Optional[List[Header]] = None

    @classmethod
    def json(cls, obj: object, *, sort_keys: bool = False) -> "Output":
        """An output whose value is `obj` as compact JSON (UTF-8, no spaces;
        `sort_keys=True` sorts the keys of every object).

        Raises `Invalid` (``cannot serialize output as JSON: ...``) if `obj`
        cannot be serialized: a type JSON has no form for, NaN or an
        infinity, text that is not valid Unicode, a cycle.
        """
        try:
            data = _join((_encode_sorted if sort_keys else _encode)(obj, 0)).encode()
        except (TypeError, ValueError, RecursionError) as err:  # UnicodeEncodeError is a ValueError
            _markers.clear()
            raise Invalid(f"cannot serialize output as JSON: {err}") from None
        output = _new(cls)
        output.topic = None
        output.key = None
        output.value = data
        output.headers = None
        return output

    @classmethod
    def forward(cls, event) -> "Output":
        """The input event passed on as it is: same value (not copied; a
        tombstone stays a tombstone), key and headers inherited."""
        output = _new(cls)
        output.topic = None
        output.key = None
        output.value = event.value
        output.headers = None
        return output

    @classmethod
    def tombstone(cls) -> "Output":
        """An output without a value: deletes the key in a compacted topic."""
        return cls(None)

    def to_topic(self, topic: str) -> "Output":
        """Writes to `topic` instead of the pipeline's result topic; it must be
        in the pipeline's allowed list."""
        if not isinstance(topic, str):
            raise TypeError(f"topic must be str, got {type(topic).__name__}")
        self.topic = topic
        return self

    def with_key(self, key: BytesLike) -> "Output":
        """Sets the key (bytes, or str as UTF-8) instead of inheriting the input's."""
        self.key = _to_bytes(key, "key")
        return self

    def with_header(self, name: str, value: BytesLike) -> "Output":
        """Appends a header to the explicit header list (see the class docs:
        on its own this writes only this header)."""
        if not isinstance(name, str):
            raise TypeError(f"header name must be str, got {type(name).__name__}")
        if self.headers is None:
            self.headers = []
        self.headers.append((name, _to_bytes(value, "header value")))
        return self

    def with_input_headers(self, event) -> "Output":
        """Appends all of `event`'s headers to the explicit header list. Call
        it before `with_header` to add headers to the input's."""
        if self.headers is None:
            self.headers = []
        self.headers.extend(event.headers)
        return self

    def without_headers(self) -> "Output":
        """Writes no headers at all, instead of inheriting the input's."""
        self.headers = []
        return self

    def __eq__(self, other: object) -> bool:
        return (
            type(other) is type(self)
            and self.topic == other.topic  # type: ignore[attr-defined]
            and self.key == other.key  # type: ignore[attr-defined]
            and self.value == other.value  # type: ignore[attr-defined]
            and self.headers == other.headers  # type: ignore[attr-defined]
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        parts = [f"Output({self.value!r})"]
        if self.topic is not None:
            parts.append(f".to_topic({self.topic!r})")
        if self.key is not None:
            parts.append(f".with_key({self.key!r})")
        if self.headers is not None:
            parts.append(
                "".join(f".with_header({n!r}, {v!r})" for n, v in self.headers)
                or ".without_headers()"
            )
        return "".join(parts)


_new = object.__new__
