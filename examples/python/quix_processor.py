#!/usr/bin/env python3
"""The order enrichment as a quixstreams application: the Python framework a
reader of the tutorial would pick next, and Sluice's peer in the bench (e).

    python examples/python/quix_processor.py --bootstrap 127.0.0.1:9092 --max 10000

Needs quixstreams 3.28.1 (`pip install quixstreams==3.28.1`), which pins
confluent-kafka < 2.13: give it a virtual environment of its own, as
`scripts/bench` does (`target/bench/quix-venv`), or it downgrades the
confluent-kafka the tests use.

It does what the order-enrich plugin does: reads orders (JSON) and writes each
one, with the input's key, to the output topic with two more fields,

- `tier`: "bronze" if `amount` < 50, "silver" if < 100, else "gold";
- `amount_cents`: `amount * 100` rounded to the nearest integer, half away
  from zero.

The fields are the plugin's; the bytes are orjson's (quixstreams' JSON
serializer), in insertion order rather than sorted.

Written the way the quixstreams docs write an application: an `Application`,
topics with JSON (de)serializers, a `StreamingDataFrame` with `filter` and
`apply`, and `to_topic`. Everything else is quixstreams' default, as a user
would run it, except two settings every reader of existing data needs:
`auto_offset_reset="earliest"` (the default, "latest", would skip the input
already in the topic) and `session.timeout.ms` 6000 (tansu holds a group join
for about the session timeout). Its defaults that matter here:

- `processing_guarantee="at-least-once"`: offsets are committed at a
  checkpoint, after the producer is flushed, so a crash repeats events but
  loses none;
- `commit_interval=5.0` seconds, `commit_every=0`: one checkpoint every five
  seconds (plus a final one when it stops), not one commit per message as in
  the tutorial's loop.

Invalid orders: quixstreams has no dead-letter topic, so they are skipped,
each with a line on stderr, and counted:

- a value that is not JSON fails in the topic's deserializer; the
  `on_consumer_error` callback skips it (quixstreams then stores no offset
  for it; a later record's commit on that partition covers it);
- a tombstone, JSON that is not an object, `order_id` missing or not a
  string, `amount` missing, not a number, negative or too large for exact
  cents (the plugin's rules): `sdf.filter` drops it.

Nothing is sandboxed: the code runs with the process's access to files,
network and environment. quixstreams makes a `state/` directory in the
working directory (its `state_dir` default), even with no stateful step.

It cannot run against librdkafka's mock cluster: `app.topic()` asks the broker
for the topic's configuration (DescribeConfigs), which the mock does not serve
(it times out after 30 s). Use a real broker such as tansu.

Stops after --max input records (valid or skipped): the `on_message_processed`
callback counts them and calls `app.stop()`. `app.run(count=N)` is not used
because it counts outputs, and skipped records have none. Also stops when idle
for --idle-secs once running (`app.run(timeout=...)`). Prints the count and
events/s to stdout at the end, e.g.
    processed 10000 events in 12.34s: 810.4 events/s (skipped 0)
With --stats-json it also prints one JSON line after that, for
`scripts/bench`: events, seconds and cpu_seconds (this process, all threads,
librdkafka's included) over the same window as the tutorial's loop, from the
first record to the end of the final checkpoint (producer flushed, offsets
committed); closing the clients is not counted. Two pieces exist only for
that measurement: an `sdf.update` step that notes the first record's time,
and a log handler that notes when quixstreams commits a checkpoint (it has no
callback for that, and `app.run()` returns only after closing the clients).
"""

import argparse
import json
import logging
import math
import sys
import time

from quixstreams import Application, message_context

# Past 2^53 a float no longer holds every integer, so cents would be wrong.
MAX_EXACT_CENTS = 9_007_199_254_740_992.0


def tier(amount):
    if amount < 50:
        return "bronze"
    if amount < 100:
        return "silver"
    return "gold"


def amount_cents(amount):
    """`amount * 100` rounded half away from zero (`round()` rounds half to
    even); `amount` is not negative."""
    cents = amount * 100.0
    whole = math.floor(cents)
    return whole + 1 if cents - whole >= 0.5 else whole


def problem(order):
    """Why `order` is not a valid order, or None if it is one."""
    if order is None:
        return "tombstone (no value)"
    if not isinstance(order, dict):
        return f"order is not a JSON object, got {type(order).__name__}"
    if not isinstance(order.get("order_id"), str):
        return "field `order_id` missing or not a string"
    amount = order.get("amount")
    if isinstance(amount, bool) or not isinstance(amount, (int, float)):
        return "field `amount` missing or not a number"
    if amount < 0:
        return f"field `amount` must not be negative, got {amount}"
    if amount * 100.0 > MAX_EXACT_CENTS:
        return f"field `amount` is too large for exact cents, got {amount}"
    return None


def enrich(order):
    amount = float(order["amount"])
    order["tier"] = tier(amount)
    order["amount_cents"] = amount_cents(amount)
    return order


class Run:
    """Counts the input records, stops the application after `limit` of them,
    and keeps the measured window."""

    def __init__(self, limit):
        self.limit = limit
        self.app = None  # set once the Application exists
        self.seen = 0  # input records, valid or skipped
        self.skipped = 0
        self.first = None  # wall time of the first record
        self.first_cpu = None  # process CPU time (all threads) then
        self.last = None  # wall time the latest record was done with
        self.committed = None  # wall time the latest checkpoint was committed
        self.committed_cpu = None

    def start_clock(self, _value=None):
        """`sdf.update` step ahead of everything else: the window opens at the
        first record (the group join is not counted)."""
        if self.first is None:
            self.first, self.first_cpu = time.time(), time.process_time()

    def keep(self, order):
        """`sdf.filter` predicate: False (with a line on stderr) for an
        invalid order."""
        why = problem(order)
        if why is None:
            return True
        ctx = message_context()
        print(f"skipping {ctx.topic}[{ctx.partition}]@{ctx.offset}: {why}", file=sys.stderr)
        self.skipped += 1
        return False

    def on_message_processed(self, _topic, _partition, _offset):
        """Application callback after every record the dataframe took,
        filtered out or not."""
        self.count()

    def on_consumer_error(self, exc, message, _logger):
        """Application callback: a record that does not deserialize (not
        JSON) is skipped; anything else (a Kafka error) is raised."""
        if message is None:
            return False
        self.start_clock()
        print(f"skipping {message.topic()}[{message.partition()}]@{message.offset()}: {exc}", file=sys.stderr)
        self.skipped += 1
        self.count()
        return True

    def count(self):
        """One more input record; stops the application at the limit."""
        self.seen += 1
        self.last = time.time()
        if self.limit is not None and self.seen >= self.limit:
            self.app.stop()

    def checkpoint_committed(self):
        """quixstreams committed a checkpoint: once it has stopped, the
        latest is its final one, the end of the work."""
        self.committed, self.committed_cpu = time.time(), time.process_time()

    def stats(self):
        """events, seconds and cpu_seconds over the window: to the final
        commit, or to the last record if it stopped for being idle (as the
        tutorial's loop counts)."""
        if self.first is None or self.committed is None:
            return {"events": self.seen, "processed": 0, "skipped": self.skipped, "seconds": 0.0, "cpu_seconds": 0.0}
        idle = self.limit is None or self.seen < self.limit
        return {
            "events": self.seen,
            "processed": self.seen - self.skipped,
            "skipped": self.skipped,
            "seconds": (self.last if idle else self.committed) - self.first,
            "cpu_seconds": self.committed_cpu - self.first_cpu,
        }


class CheckpointCommits(logging.Handler):
    """Tells `run` when quixstreams has committed a checkpoint (producer
    flushed, offsets committed), from its own debug log line. Only for the
    measurement: quixstreams has no callback for it, and `app.run()` returns
    only after closing the clients."""

    def __init__(self, run):
        super().__init__(logging.DEBUG)
        self.run = run

    def emit(self, record):
        if record.getMessage().startswith("Committed a checkpoint"):
            self.run.checkpoint_committed()


def watch_commits(run):
    # quixstreams' own handler (on the "quixstreams" logger) stays at the
    # app's loglevel, so the debug lines this turns on are not printed.
    logger = logging.getLogger("quixstreams.processing.context")
    logger.setLevel(logging.DEBUG)
    logger.addHandler(CheckpointCommits(run))


def arguments(argv):
    ap = argparse.ArgumentParser(description="Order enrichment as a quixstreams application.")
    ap.add_argument("--bootstrap", default="127.0.0.1:9092", help="bootstrap.servers")
    ap.add_argument("--input", default="orders")
    ap.add_argument("--output", default="orders-enriched")
    ap.add_argument("--group", default="quix-processor")
    ap.add_argument("--max", type=int, default=None, metavar="N", help="stop after N input records")
    ap.add_argument("--idle-secs", type=float, default=10.0, help="stop after this long with no record")
    ap.add_argument("--stats-json", action="store_true", help="also print the run's stats as one JSON line")
    return ap.parse_args(argv)


def application(args, run):
    """The Application with quixstreams' defaults but for reading from the
    earliest offset and tansu's session timeout; `run` counts and stops."""
    app = Application(
        broker_address=args.bootstrap,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        consumer_extra_config={"session.timeout.ms": 6000},
        on_message_processed=run.on_message_processed,
        on_consumer_error=run.on_consumer_error,
    )
    run.app = app
    return app


def dataframe(app, args, run):
    """input → (window opens) → valid orders only → enriched → output."""
    orders = app.topic(args.input, value_deserializer="json")
    enriched = app.topic(args.output, value_serializer="json")
    sdf = app.dataframe(orders)
    sdf = sdf.update(run.start_clock)
    sdf = sdf.filter(run.keep)
    sdf = sdf.apply(enrich)
    sdf.to_topic(enriched)
    return sdf


def report(stats, as_json):
    rate = stats["events"] / stats["seconds"] if stats["seconds"] > 0 else 0.0
    print(
        f"processed {stats['processed']} events in {stats['seconds']:.2f}s: "
        f"{rate:.1f} events/s (skipped {stats['skipped']})"
    )
    if as_json:
        print(json.dumps(stats), flush=True)


def main(argv=None):
    args = arguments(argv)
    run = Run(args.max)
    app = application(args, run)
    watch_commits(run)
    dataframe(app, args, run)
    # Stops after --max records (see `Run.count`) or --idle-secs without one.
    app.run(timeout=args.idle_secs)
    report(run.stats(), args.stats_json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
