#!/usr/bin/env python3
"""Produce order events to Kafka, the way a Kafka beginners' tutorial does.

    python3 examples/python/producer.py --bootstrap 127.0.0.1:9092 --count 100

Order i is
    {"order_id": "ORD-0007", "customer_id": "CUST-007", "amount": 20.5,
     "timestamp": 1767225600.123}
with customer CUST-%03d (i % 10), amount 10 + i * 1.5, keyed by customer_id
(so one customer's orders stay in one partition, in order).

--malformed K also sends K bad records after the good ones, cycling through:
not JSON at all, JSON without "amount", and a negative amount. Their keys are
"bad-0", "bad-1", ... so tests can tell them apart.

Prints one line per failed delivery to stderr and a summary at the end;
exits 1 if any delivery failed.
"""

import argparse
import json
import sys
import time

from confluent_kafka import Producer


def order(i):
    customer_id = "CUST-%03d" % (i % 10)
    return customer_id, {
        "order_id": "ORD-%04d" % i,
        "customer_id": customer_id,
        "amount": 10 + i * 1.5,
        "timestamp": time.time(),
    }


def malformed(j):
    kind = j % 3
    if kind == 0:
        return b"not json"
    if kind == 1:  # missing amount
        return json.dumps({"order_id": "BAD-%04d" % j, "customer_id": "CUST-000", "timestamp": time.time()}).encode()
    return json.dumps(  # negative amount
        {"order_id": "BAD-%04d" % j, "customer_id": "CUST-000", "amount": -5.0, "timestamp": time.time()}
    ).encode()


def main(argv=None):
    ap = argparse.ArgumentParser(description="Produce order events.")
    ap.add_argument("--bootstrap", default="127.0.0.1:9092", help="bootstrap.servers")
    ap.add_argument("--topic", default="orders")
    ap.add_argument("--count", type=int, default=100, help="number of good orders")
    ap.add_argument("--malformed", type=int, default=0, metavar="K", help="also send K malformed records")
    args = ap.parse_args(argv)

    producer = Producer({"bootstrap.servers": args.bootstrap, "acks": "all", "linger.ms": 5})

    delivered = 0
    failed = 0

    def delivery_report(err, msg):
        """Called once for each message produced, from poll() or flush()."""
        nonlocal delivered, failed
        if err is not None:
            failed += 1
            print(f"delivery failed for key {msg.key()!r}: {err}", file=sys.stderr)
        else:
            delivered += 1

    def send(key, value):
        while True:
            try:
                producer.produce(args.topic, key=key, value=value, callback=delivery_report)
                break
            except BufferError:  # local queue full: serve callbacks, try again
                producer.poll(0.1)
        producer.poll(0)  # serve delivery callbacks of earlier messages

    start = time.time()
    for i in range(args.count):
        key, value = order(i)
        send(key.encode(), json.dumps(value).encode())
    for j in range(args.malformed):
        send(("bad-%d" % j).encode(), malformed(j))

    remaining = producer.flush(30)
    elapsed = time.time() - start
    total = args.count + args.malformed
    print(
        f"produced {delivered}/{total} records to {args.topic} in {elapsed:.2f}s"
        f" ({failed} failed, {remaining} undelivered)",
        file=sys.stderr,
    )
    return 0 if delivered == total else 1


if __name__ == "__main__":
    sys.exit(main())
