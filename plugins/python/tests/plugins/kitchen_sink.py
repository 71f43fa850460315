"""A test plugin that exercises every outcome on command: the event value
says what to do. Used by tests/test_component.py through `sluice exec`."""

from sluice_sdk import Invalid, Output, Retryable, log

prefix = ""


def init(config):
    global prefix
    if "refuse" in config:
        return config["refuse"]
    if "explode" in config:
        raise KeyError(config["explode"])
    prefix = config.get_or("prefix", "")
    log.info(f"kitchen sink ready, prefix {prefix!r}")


def process(event):
    if event.is_tombstone():
        return [Output.forward(event)]
    command = event.value_str()
    if command == "drop":
        return []
    if command == "invalid":
        raise Invalid("asked to be invalid")
    if command == "retry":
        raise Retryable("asked to retry")
    if command == "boom":
        raise ValueError("kaboom from python")
    if command == "none":
        return None
    if command == "bad-item":
        return ["not an output"]
    if command == "log":
        log.warn("a warning from python")
        return [Output(b"logged")]
    if command == "fan":
        return [
            Output(prefix + "one").to_topic("a").with_key("k1"),
            Output.json({"two": 2, "é": [1.5, None]}).with_input_headers(event).with_header("x", b"\xff"),
            Output("three").without_headers(),
            Output.tombstone().with_header("only", "this"),
        ]
    if command == "header":
        return [Output(event.header("h") or b"no header")]
    if command == "json":
        return [Output.json(event.json())]
    if command == "nan":
        return [Output.json({"x": float("nan")})]
    if command == "single":
        return Output("single")
    if command.startswith("deep"):
        return [Output.json(_nest(int(command[4:])))]
    return [Output(prefix + command)]


def _nest(depth):
    value = []
    for _ in range(depth):
        value = [value]
    return value
