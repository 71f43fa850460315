"""Why one event could not be processed: `Invalid` and `Retryable`.

Raise one of them from `process` to fail just that event:

- `Invalid("...")`: the event can never succeed (malformed, fails
  validation); it goes straight to the dead-letter topic with the message.
- `Retryable("...")`: the failure may pass; the host retries the event with
  backoff, then dead-letters it as `retries-exhausted`.

Any other exception escaping `process` is a bug, not an outcome: it traps
the instance (see the package docs).
"""

from __future__ import annotations


class ProcessError(Exception):
    """Base of `Invalid` and `Retryable`; raise one of those."""

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        message = str(message)
        super().__init__(message)
        self.message = message

    @property
    def is_retryable(self) -> bool:
        """Whether the host will retry the event."""
        return False

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.message == self.message  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self), self.message))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class Invalid(ProcessError):
    """A permanent failure: the event is dead-lettered at once with the message."""

    __slots__ = ()

    @classmethod
    def wrong_type(cls, field: str, expected: str, got: object) -> "Invalid":
        """``field `FIELD` must be EXPECTED, got TYPE`` for a JSON field of the
        wrong type, TYPE being `json_type(got)`.

        >>> Invalid.wrong_type("amount", "a number", "12").message
        'field `amount` must be a number, got string'
        """
        return cls(f"field `{field}` must be {expected}, got {json_type(got)}")


class Retryable(ProcessError):
    """A transient failure: the host retries the event later."""

    __slots__ = ()

    @property
    def is_retryable(self) -> bool:
        return True


class ConfigError(Exception):
    """A bad plugin configuration; raised by the `Config` lookups. Raising it
    (or any exception) from `init` refuses the plugin with the message."""


def json_type(value: object) -> str:
    """The JSON type of a parsed JSON value, for messages: `null`, `boolean`,
    `number`, `string`, `array` or `object`."""
    if value is None:
        return "null"
    if value is True or value is False:
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__
