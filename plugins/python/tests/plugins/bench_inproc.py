"""Times the SDK's batch loop inside the component, without the boundary.

`init` builds 128 orders as the generated `Event` records, then times
`process` over them for several variants, interleaved (so load on the
machine hits them alike), and refuses to start with the figures as its
message (best of `rounds` rounds, µs per event):

- noop, forward: the SDK loop with `return []` / `Output.forward(event)`;
- order-enrich: the example as shipped (serde-exact numbers);
- order-enrich/event.json: the same with plain `event.json()`;
- naive: a straightforward SDK: a wrapper object per event, `json.loads`
  and `json.dumps(...)` with keyword arguments, outputs converted to the
  generated `Output` record, `Ok` built per event.

    plugins/python/build.sh plugins/python/tests/plugins/bench_inproc.py \\
        -p plugins/python/order-enrich -o /tmp/bench-inproc.wasm
    echo '{}' | target/release/sluice exec /tmp/bench-inproc.wasm --deadline-ms 600000 -c rounds=20
"""

import json
import math
import time

from componentize_py_types import Err, Ok
from wit_world.imports import types

import order_enrich
from sluice_sdk import Invalid, Output, Retryable
from sluice_sdk.runner import Runner


class _Noop:
    @staticmethod
    def process(event):
        return []


class _Forward:
    @staticmethod
    def process(event):
        return [Output.forward(event)]


def _plain_order_enrich(event):
    saved = order_enrich.json_like_serde
    order_enrich.json_like_serde = type(event).json
    try:
        return order_enrich.process(event)
    finally:
        order_enrich.json_like_serde = saved


class _NaiveEvent:
    def __init__(self, raw):
        self.topic = raw.topic
        self.partition = raw.partition
        self.offset = raw.offset
        self.timestamp_ms = raw.timestamp_ms
        self.key = raw.key
        self.value = raw.value
        self.headers = raw.headers

    def json(self):
        if self.value is None:
            raise Invalid("event has no value (tombstone)")
        try:
            return json.loads(self.value)
        except ValueError as err:
            raise Invalid(f"event value is not valid JSON: {err}")


class _NaiveOutput:
    def __init__(self, value):
        self.topic = None
        self.key = None
        self.value = value
        self.headers = None


def _naive_order_enrich(event):
    order = event.json()
    if not isinstance(order, dict):
        raise Invalid("order is not a JSON object")
    if not isinstance(order.get("order_id"), str):
        raise Invalid("missing field `order_id`")
    amount = order.get("amount")
    if isinstance(amount, bool) or not isinstance(amount, (int, float)):
        raise Invalid("field `amount` must be a number")
    amount = float(amount)
    cents = amount * 100.0
    whole = math.floor(cents)
    if cents - whole >= 0.5:
        whole += 1
    order["tier"] = "bronze" if amount < 50 else "silver" if amount < 100 else "gold"
    order["amount_cents"] = whole
    text = json.dumps(order, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return [_NaiveOutput(text.encode())]


def _naive_process(events):
    outcomes = []
    for raw in events:
        try:
            outputs = _naive_order_enrich(_NaiveEvent(raw))
        except Invalid as err:
            outcomes.append(Err(types.ProcessError_Invalid(err.message)))
            continue
        except Retryable as err:
            outcomes.append(Err(types.ProcessError_Retryable(err.message)))
            continue
        outcomes.append(Ok([types.Output(o.topic, o.key, o.value, o.headers) for o in outputs]))
    return outcomes


def _events(n):
    out = []
    for i in range(n):
        value = (
            '{"order_id":"ORD-%06d","customer_id":"CUST-%03d","amount":%s,"timestamp":%s}'
            % (i, i % 999, round((i * 7.31) % 300, 2), 1732400000.0 + i)
        ).encode()
        out.append(types.Event("orders", 0, i, 1732400000000, b"CUST-001", value, [("source", b"web")]))
    return out


def _runner(process):
    target = type("Plugin", (), {"process": staticmethod(process)})
    runner = Runner(target, Ok, Err, types.ProcessError_Invalid, types.ProcessError_Retryable)
    assert runner.init([]) is None
    return runner.process


def init(config):
    rounds = int(config.get_or("rounds", "20"))
    events = _events(128)
    variants = {
        "noop": _runner(_Noop.process),
        "forward": _runner(_Forward.process),
        "order-enrich": _runner(order_enrich.process),
        "order-enrich/event.json": _runner(_plain_order_enrich),
        "naive order-enrich": _naive_process,
    }
    best = {name: float("inf") for name in variants}
    for _ in range(rounds):
        for name, process in variants.items():
            started = time.perf_counter()
            for _ in range(5):
                outcomes = process(events)
            elapsed = (time.perf_counter() - started) / 5 / len(events)
            assert all(type(o) is Ok for o in outcomes), name
            best[name] = min(best[name], elapsed)
    return "; ".join(f"{name}: {seconds * 1e6:.2f} us/event" for name, seconds in best.items())


def process(event):
    return []
