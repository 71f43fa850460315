#!/usr/bin/env python3
"""Read a topic from the beginning and print every record as one JSON line.

    python3 examples/python/consumer.py --bootstrap 127.0.0.1:9092 --topic orders-enriched

Each line on stdout:
    {"topic": "...", "partition": 0, "offset": 0, "key": "...", "value": "...",
     "headers": {"name": "value", ...}}
key, value and header values are decoded as UTF-8 (invalid bytes replaced;
null stays null). A header name that repeats keeps its last value.

Uses a fresh consumer group each run (unless --group is given) with
auto.offset.reset=earliest and no commits. Stops after --max records, or when
no record has arrived for --idle-secs once the partitions are assigned (a
consumer-group join takes a few seconds on tansu, which doesn't count as idle),
or after --timeout seconds in all. A summary goes to stderr.
"""

import argparse
import json
import sys
import time
import uuid

from confluent_kafka import Consumer, KafkaError


def text(b):
    return None if b is None else b.decode("utf-8", errors="replace")


def record(msg):
    return {
        "topic": msg.topic(),
        "partition": msg.partition(),
        "offset": msg.offset(),
        "key": text(msg.key()),
        "value": text(msg.value()),
        "headers": {k: text(v) for k, v in (msg.headers() or [])},
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description="Print a topic's records as JSON lines.")
    ap.add_argument("--bootstrap", default="127.0.0.1:9092", help="bootstrap.servers")
    ap.add_argument("--topic", default="orders", help="topic (comma-separated for several)")
    ap.add_argument("--group", default=None, help="consumer group (default: a fresh one)")
    ap.add_argument("--idle-secs", type=float, default=5.0, help="stop after this long with no record")
    ap.add_argument("--max", type=int, default=None, metavar="N", help="stop after N records")
    ap.add_argument("--timeout", type=float, default=120.0, help="stop after this many seconds in all")
    args = ap.parse_args(argv)

    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": args.group or f"consumer-py-{uuid.uuid4()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            # tansu holds a group join for about half the session timeout.
            "session.timeout.ms": 6000,
        }
    )
    consumer.subscribe(args.topic.split(","))

    count = 0
    start = time.time()
    last = None  # time of the last record, or of the assignment
    try:
        while args.max is None or count < args.max:
            now = time.time()
            if now - start > args.timeout:
                print("consumer: overall timeout", file=sys.stderr)
                break
            if last is not None and now - last > args.idle_secs:
                break
            msg = consumer.poll(0.2)
            if last is None and consumer.assignment():
                last = time.time()
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() != KafkaError._PARTITION_EOF:
                    print(f"consumer error: {msg.error()}", file=sys.stderr)
                continue
            print(json.dumps(record(msg)), flush=True)
            count += 1
            last = time.time()
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()
    print(f"consumed {count} records from {args.topic} in {time.time() - start:.2f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
