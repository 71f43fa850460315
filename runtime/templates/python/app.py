"""{{name}}: a Sluice plugin.

Adds `"processed_by": <label>` to every event whose value is a JSON object
and writes it to the pipeline's result topic, with the input's key and
headers. Anything else goes to the dead-letter topic as `invalid`, with the
reason.

Config: `label` (default "{{name}}").
"""

from sluice_sdk import ConfigError, Invalid, Output, json_type, log

label = "{{name}}"


def init(config):
    """Once per instance, with the pipeline's `config` table; raise to refuse it."""
    global label
    label = config.get_or("label", "{{name}}")
    if not label:
        raise ConfigError("config key `label` must not be empty")
    log.info(f"labelling events as {label!r}")


def process(event):
    """Once per event: the records to write, or raise."""
    value = event.json()  # not JSON, or a tombstone: Invalid, with the reason
    if not isinstance(value, dict):
        raise Invalid(f"expected a JSON object, got {json_type(value)}")
    value["processed_by"] = label
    return [Output.json(value)]
