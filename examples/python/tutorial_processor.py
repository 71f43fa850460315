#!/usr/bin/env python3
"""The hand-written consume → transform → produce loop from a Kafka tutorial.

    python3 examples/python/tutorial_processor.py --bootstrap 127.0.0.1:9092 --max 10000

It reads orders, adds a "tier" field the way the order-enrich plugin does
(amount < 50: bronze, < 100: silver, else gold) and writes them to the output
topic, committing each input offset synchronously after producing it. This
is what people write before they have a framework, and the baseline Sluice's
throughput is compared with: one synchronous commit per message is slow, and
produce-then-commit without waiting for the delivery report is not even
at-least-once (a crash can lose the in-flight outputs). Records that are not
valid orders are skipped with a message on stderr (no dead-letter topic).

Stops after --max input records, or when idle for --idle-secs once running.
Prints the count and events/s to stdout at the end, e.g.
    processed 10000 events in 12.34s: 810.4 events/s (skipped 0)
With --stats-json it also prints one JSON line after that, for
`scripts/bench`: events, seconds and cpu_seconds (this process, all threads,
librdkafka's included) over the same window, from the first record read to
the end of the final flush (closing the clients is not counted).
"""

import argparse
import json
import sys
import time

from confluent_kafka import Consumer, KafkaError, Producer


def tier(amount):
    if amount < 50:
        return "bronze"
    if amount < 100:
        return "silver"
    return "gold"


def main(argv=None):
    ap = argparse.ArgumentParser(description="Tutorial-style order enrichment loop.")
    ap.add_argument("--bootstrap", default="127.0.0.1:9092", help="bootstrap.servers")
    ap.add_argument("--input", default="orders")
    ap.add_argument("--output", default="orders-enriched")
    ap.add_argument("--group", default="tutorial-processor")
    ap.add_argument("--max", type=int, default=None, metavar="N", help="stop after N input records")
    ap.add_argument("--idle-secs", type=float, default=10.0, help="stop after this long with no record")
    ap.add_argument("--stats-json", action="store_true", help="also print the run's stats as one JSON line")
    args = ap.parse_args(argv)

    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": args.group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": 6000,
        }
    )
    producer = Producer({"bootstrap.servers": args.bootstrap})
    consumer.subscribe([args.input])

    processed = 0
    skipped = 0
    first = None  # time the first record arrived (group join is not counted)
    first_cpu = None  # process CPU time (all threads) at that moment
    last = time.time()
    idle = False
    try:
        while args.max is None or processed + skipped < args.max:
            msg = consumer.poll(1.0)
            if msg is None:
                if first is not None and time.time() - last > args.idle_secs:
                    idle = True
                    break
                continue
            if msg.error():
                if msg.error().code() != KafkaError._PARTITION_EOF:
                    print(f"consumer error: {msg.error()}", file=sys.stderr)
                continue
            if first is None:
                first = time.time()
                first_cpu = time.process_time()
            last = time.time()

            try:
                order = json.loads(msg.value())
                order["tier"] = tier(float(order["amount"]))
            except (ValueError, TypeError, KeyError) as e:
                print(f"skipping {msg.topic()}[{msg.partition()}]@{msg.offset()}: {e}", file=sys.stderr)
                skipped += 1
            else:
                producer.produce(args.output, key=msg.key(), value=json.dumps(order).encode())
                producer.poll(0)
                processed += 1
            consumer.commit(message=msg, asynchronous=False)
    except KeyboardInterrupt:
        pass
    finally:
        producer.flush(30)
        # The work is done here: every output acknowledged, every input
        # committed. Closing the clients is not counted.
        flushed, flushed_cpu = time.time(), time.process_time()
        consumer.close()

    end = last if idle else flushed  # include the final flush
    end_cpu = flushed_cpu
    elapsed = (end - first) if first is not None else 0.0
    rate = (processed + skipped) / elapsed if elapsed > 0 else 0.0
    print(f"processed {processed} events in {elapsed:.2f}s: {rate:.1f} events/s (skipped {skipped})")
    if args.stats_json:
        cpu = (end_cpu - first_cpu) if first_cpu is not None else 0.0
        stats = {"events": processed + skipped, "processed": processed, "skipped": skipped,
                 "seconds": elapsed, "cpu_seconds": cpu}
        print(json.dumps(stats), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
