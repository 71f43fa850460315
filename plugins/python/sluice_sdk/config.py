"""`Config`: the plugin's `config` table from the pipeline TOML, with lookups
whose errors name the offending key, ready to raise from `init`.

The scalar parsers follow Rust's `FromStr` (what the Rust SDK uses), so a
value means the same to a Python and a Rust plugin: no surrounding spaces
or `_` separators, `inf`/`NaN` are floats, booleans are `true`/`false`.
"""

from __future__ import annotations

import re
from typing import Callable, Dict, Iterable, Iterator, Mapping, Optional, Tuple, TypeVar

from .errors import ConfigError

T = TypeVar("T")

_FLOAT = re.compile(r"[+-]?(?:inf|infinity|nan|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:e[+-]?[0-9]+)?)", re.I)
_INT = re.compile(r"[+-]?[0-9]+")


def parse_float(text: str) -> float:
    """`text` as a float, with Rust's `f64::from_str` grammar and messages."""
    if not text:
        raise ValueError("cannot parse float from empty string")
    if not _FLOAT.fullmatch(text):
        raise ValueError("invalid float literal")
    return float(text)


def parse_int(text: str) -> int:
    """`text` as an int, with Rust's integer `from_str` grammar and messages
    (without Rust's range limits)."""
    if not text:
        raise ValueError("cannot parse integer from empty string")
    if not _INT.fullmatch(text):
        raise ValueError("invalid digit found in string")
    return int(text)


def parse_bool(text: str) -> bool:
    """`true` or `false`, as Rust's `bool::from_str`."""
    if text == "true":
        return True
    if text == "false":
        return False
    raise ValueError("provided string was not `true` or `false`")


_PARSERS: Dict[type, Callable[[str], object]] = {
    bool: parse_bool,
    int: parse_int,
    float: parse_float,
    str: str,
}


def quote(text: str) -> str:
    """`text` in double quotes with escapes, as Rust's `{:?}` writes a string."""
    out = ['"']
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\0":
            out.append("\\0")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{{{ord(ch):x}}}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


class Config(Mapping[str, str]):
    """The plugin's configuration: key -> string value (a read-only mapping).

    Built from the (key, value) pairs the host passes; a repeated key keeps
    its last value. Iteration is sorted by key.

    >>> config = Config([("field", "type"), ("limit", "lots")])
    >>> config.require("field")
    'type'
    >>> config.parse_or("limit", 10)
    Traceback (most recent call last):
    ...
    sluice_sdk.errors.ConfigError: config key `limit`: invalid value "lots": invalid digit found in string
    """

    __slots__ = ("_entries",)

    def __init__(self, pairs: Iterable[Tuple[str, str]] | Mapping[str, str] = ()) -> None:
        if isinstance(pairs, Mapping):
            pairs = pairs.items()
        self._entries: Dict[str, str] = dict(sorted(dict(pairs).items()))

    def __getitem__(self, key: str) -> str:
        return self._entries[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Config({self._entries!r})"

    def get_or(self, key: str, default: str) -> str:
        """The value of `key`, or `default` if it is not set."""
        return self._entries.get(key, default)

    def require(self, key: str) -> str:
        """The value of `key`; `ConfigError` (``missing required config key
        `KEY` ``) if it is not set."""
        try:
            return self._entries[key]
        except KeyError:
            raise ConfigError(f"missing required config key `{key}`") from None

    def parse(self, key: str, parse: Callable[[str], T] | type = float) -> Optional[T]:
        """The value of `key` converted by `parse` (a type among bool, int,
        float and str, which use Rust's grammar, or any callable), or None if
        it is not set.

        Raises `ConfigError` (``config key `KEY`: invalid value "VALUE":
        REASON``) if the conversion raises.
        """
        value = self._entries.get(key)
        if value is None:
            return None
        convert = _PARSERS.get(parse, parse) if isinstance(parse, type) else parse
        try:
            return convert(value)  # type: ignore[operator,return-value]
        except (ValueError, TypeError, ArithmeticError) as err:
            raise ConfigError(f"config key `{key}`: invalid value {quote(value)}: {err}") from None

    def parse_or(self, key: str, default: T, parse: Optional[Callable[[str], T]] = None) -> T:
        """As `parse`, with `default` if `key` is not set; `parse` defaults
        to the type of `default`."""
        result = self.parse(key, type(default) if parse is None else parse)
        return default if result is None else result
