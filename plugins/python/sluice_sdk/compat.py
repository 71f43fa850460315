"""Bit-for-bit compatibility with Rust plugins, for ports that must give the
same bytes as a Rust original (the `order-enrich` example uses it).

- `json_like_serde(event)`: `event.json()`, except that numbers come out as
  serde_json makes them, as the workspace builds it (with its
  `float_roundtrip` feature, so floats are correctly rounded, as in Python).
  Three differences are left, all at the edges: serde_json reads the
  integer `-0` as the float -0.0, an integer outside the 64-bit range as a
  float, and refuses a number that overflows a float (`1e400`) where Python
  reads `inf`. The parser calls back into Python for each number (about
  0.3 µs per number in the component).
- `display_f64(x)` and `display_f64_exp(x)`: a float as Rust's `{}` and
  `{:e}` write it (`-1`, `0.0000001`, `1e300`; Python writes `-1.0`,
  `1e-07`, `1e+300`).
"""

from __future__ import annotations

import math

from .event import JsonParser

_U64_MAX = (1 << 64) - 1
_I64_MIN = -(1 << 63)


def serde_number(token: str):
    """The value serde_json (with `float_roundtrip`) gives the JSON number
    `token`: an int within the 64-bit range, else a float.

    Raises ValueError("number out of range") where serde_json refuses it.
    """
    if "." not in token and "e" not in token and "E" not in token and len(token) < 30:
        value = int(token)
        if value == 0 and token[0] == "-":
            return -0.0  # serde_json: "Convert into a float ... on `-0`"
        if _I64_MIN <= value <= _U64_MAX:
            return value
    value = float(token)  # correctly rounded, as lexical's parser in serde_json
    if math.isinf(value):
        raise ValueError("number out of range")
    return value


def _serde_float(token: str, _float=float):
    value = _float(token)
    if value - value != 0.0:  # inf (a JSON number is never NaN)
        raise ValueError("number out of range")
    return value


def _serde_int(token: str, _int=int):
    # Up to 18 digits an int is within the 64-bit range either way.
    if len(token) < 19 and token != "-0":
        return _int(token)
    return serde_number(token)


_SERDE_PARSER = JsonParser(parse_float=_serde_float, parse_int=_serde_int)
_serde_parse = _SERDE_PARSER.parse


def json_like_serde(event):
    """`event.json()`, with numbers read exactly as serde_json reads them
    (see the module docs). Raises `Invalid` as `event.json()` does, and
    ``event value is not valid JSON: number out of range`` where serde_json
    refuses a number."""
    return _serde_parse(event.value)


def _digits(x: float):
    """The shortest round-trip digits of |x| (no leading or trailing zeros)
    and the decimal exponent of the first: x = d.ddd * 10**exponent."""
    mantissa, _, exp = repr(abs(x)).partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = whole + fraction
    stripped = digits.lstrip("0")
    exponent = len(whole) - 1 - (len(digits) - len(stripped)) + int(exp or 0)
    return stripped.rstrip("0") or "0", exponent


def _sign_and_special(x: float, zero: str):
    """The sign Rust writes for `x`, and the whole text when `x` is NaN, an
    infinity or a zero (written `zero`), which have no digits to format."""
    if math.isnan(x):
        return "", "NaN"
    sign = "-" if math.copysign(1.0, x) < 0 else ""
    if math.isinf(x):
        return sign, sign + "inf"
    if x == 0:
        return sign, sign + zero
    return sign, None


def display_f64(x: float) -> str:
    """`x` as Rust's `{}` writes an f64: the shortest round-trip digits,
    never an exponent, no `.0` on whole numbers (`-1`, `0.0000001`)."""
    sign, special = _sign_and_special(x, "0")
    if special is not None:
        return special
    digits, exponent = _digits(x)
    if exponent < 0:
        return f"{sign}0.{'0' * (-exponent - 1)}{digits}"
    if len(digits) <= exponent + 1:
        return sign + digits + "0" * (exponent + 1 - len(digits))
    return f"{sign}{digits[:exponent + 1]}.{digits[exponent + 1:]}"


def display_f64_exp(x: float) -> str:
    """`x` as Rust's `{:e}` writes an f64 (`1e300`, `1.5e-7`, `0e0`)."""
    sign, special = _sign_and_special(x, "0e0")
    if special is not None:
        return special
    digits, exponent = _digits(x)
    mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    return f"{sign}{mantissa}e{exponent}"
