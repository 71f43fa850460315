"""sluice-sdk: write Sluice plugins in Python.

A Sluice plugin is a WebAssembly component that Sluice runs on every event
of a pipeline. Write a module with a `process(event)` function (and
optionally `init(config)`), or a class with those methods, and build it
with ``python3 -m sluice_sdk build app.py -o app.wasm``::

    from sluice_sdk import Invalid, Output, log

    threshold = 30.0

    def init(config):
        global threshold
        threshold = config.parse_or("threshold", 30.0)  # ConfigError names the key
        log.info(f"alerting above {threshold} °C")

    def process(event):
        reading = event.json()          # Invalid if not JSON: dead-lettered
        if reading.get("celsius", 0) <= threshold:
            return []                   # filtered out
        alert = (Output.json({"sensor": reading["sensor"], "celsius": reading["celsius"]})
                 .to_topic("alerts").with_key(reading["sensor"])
                 .with_input_headers(event).with_header("alert-kind", "over-threshold"))
        return [Output.forward(event), alert]

Outcomes per event: a list of `Output` (empty filters the event out), or
raise `Invalid(msg)` (dead-lettered now) or `Retryable(msg)` (retried with
backoff). Any other exception is a bug: it traps the instance, the host
retries the batch's events one by one on fresh instances and dead-letters
the culprit as `trap`, with the end of the Python traceback in the message.

See README.md beside this package for the whole API.
"""

from . import log
from .config import Config
from .errors import ConfigError, Invalid, ProcessError, Retryable, json_type
from .event import Event
from .output import Output
from .runner import Plugin

__all__ = [
    "Config",
    "ConfigError",
    "Event",
    "Invalid",
    "Output",
    "Plugin",
    "ProcessError",
    "Retryable",
    "json_type",
    "log",
]

__version__ = "0.1.0"
