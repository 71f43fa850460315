#!/usr/bin/env python3
"""The checks of tests/containers/run, run from outside the containers.

    check.py wait-assigned URL PARTITIONS TIMEOUT   /api/status shows the pipeline owning PARTITIONS
    check.py digest URL                             prints the running plugin's digest
    check.py wait-digest URL DIGEST TIMEOUT         waits until the running plugin has DIGEST
    check.py first BOOTSTRAP DIGEST GOOD BAD TIMEOUT
        every order ORD-0000..GOOD-1 lands exactly once in orders-enriched or
        orders-dlq, the BAD malformed records (keys bad-*) in orders-dlq, and
        every result carries DIGEST in sluice.plugin.digest
    check.py after BOOTSTRAP BEFORE DIGEST COUNT TIMEOUT
        orders-enriched holds BEFORE + COUNT results, COUNT of them with DIGEST
        (those produced after the swap; the swap had finished before)
    check.py produce BOOTSTRAP PREFIX COUNT RATE    COUNT orders PREFIX-00000.. at RATE per second
    check.py events URL                             prints the events the pipeline processed
    check.py wait-events URL MIN TIMEOUT            the pipeline has processed at least MIN events
    check.py once BOOTSTRAP PREFIX COUNT TIMEOUT
        every order PREFIX-00000..COUNT-1 is in results or DLQ exactly once
        (the others are not looked at: tansu's high watermarks count batches,
        not records, so "from here on" cannot be marked by offset)

Reads topics from the start without a consumer group (assign), so nothing
waits for a group join. Exits 1 with the reason on failure.
"""

import json
import sys
import time
import urllib.request
from collections import Counter

from confluent_kafka import Consumer, Producer, TopicPartition

RESULTS, DLQ = "orders-enriched", "orders-dlq"


def fail(msg):
    print("check: FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def status(url):
    with urllib.request.urlopen(url + "/api/status", timeout=5) as r:
        return json.load(r)


def pipeline(url):
    try:
        return status(url)["pipelines"][0]
    except (OSError, ValueError, LookupError):
        return None


def consumer(bootstrap):
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "sluice-container-check",  # required; never joined (assign only)
            "enable.auto.commit": False,
            "enable.partition.eof": False,
        }
    )


def from_start(bootstrap, topics=(RESULTS, DLQ)):
    """{topic: {partition: 0}} for every partition of `topics`, for `read`."""
    c = consumer(bootstrap)
    try:
        out = {}
        for topic in topics:
            meta = c.list_topics(topic, timeout=10).topics[topic]
            if meta.error is not None:
                fail("topic %s: %s" % (topic, meta.error))
            out[topic] = {p: 0 for p in sorted(meta.partitions)}
        return out
    finally:
        c.close()


def as_record(msg):
    return {
        "topic": msg.topic(),
        "key": None if msg.key() is None else msg.key().decode(errors="replace"),
        "value": msg.value(),
        "headers": {k: (v or b"").decode(errors="replace") for k, v in (msg.headers() or [])},
    }


def read(bootstrap, start, want, timeout, counts=lambda record: True):
    """Records past `start` ({topic: {partition: offset}}) until `want` of them
    that `counts` or `timeout`; then 2 s more, to catch late duplicates."""
    c = consumer(bootstrap)
    c.assign([TopicPartition(t, int(p), off) for t, parts in start.items() for p, off in parts.items()])
    records, deadline = [], time.monotonic() + timeout
    try:
        counted = 0
        while counted < want and time.monotonic() < deadline:
            msg = c.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                fail("reading %s: %s" % (msg.topic(), msg.error()))
            records.append(as_record(msg))
            counted += counts(records[-1])
        # A little longer, to catch duplicates arriving after the count is reached.
        end = time.monotonic() + 2
        while time.monotonic() < end:
            msg = c.poll(0.2)
            if msg is not None and not msg.error():
                records.append(as_record(msg))
    finally:
        c.close()
    return records


def order_id(value):
    try:
        return json.loads(value).get("order_id")
    except (TypeError, ValueError, AttributeError):
        return None


def produce(bootstrap, prefix, count, rate):
    """COUNT orders at about RATE per second; fails unless every one is acknowledged."""
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    failed = []

    def report(err, msg):
        if err is not None:
            failed.append(err)

    start = time.monotonic()
    for i in range(count):
        value = {"order_id": "%s-%05d" % (prefix, i), "customer_id": "CUST-%03d" % (i % 10), "amount": 10 + i % 90}
        while True:
            try:
                producer.produce("orders", key=value["customer_id"], value=json.dumps(value), callback=report)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
        ahead = (i + 1) / rate - (time.monotonic() - start)
        if ahead > 0:
            time.sleep(ahead)
    left = producer.flush(30)
    if left or failed:
        fail("produce: %d not acknowledged, %d failed: %s" % (left, len(failed), failed[:3]))
    print("check: produced %d orders in %.1fs" % (count, time.monotonic() - start))


def wait(what, predicate, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = predicate()
        if got:
            return got
        time.sleep(0.5)
    fail("timed out after %ss waiting for %s" % (timeout, what))


def main(argv):
    cmd, args = argv[0], argv[1:]
    if cmd == "wait-assigned":
        url, n, timeout = args[0], int(args[1]), float(args[2])
        start = time.monotonic()
        wait(
            "%d assigned partitions on %s" % (n, url),
            lambda: (p := pipeline(url)) is not None and len(p.get("assigned", [])) == n,
            timeout,
        )
        print("check: pipeline owns %d partitions after %.1fs" % (n, time.monotonic() - start))
    elif cmd == "digest":
        p = pipeline(args[0])
        if p is None:
            fail("no /api/status at " + args[0])
        print(p["plugins"][0]["digest"])
    elif cmd == "wait-digest":
        url, digest, timeout = args[0], args[1], float(args[2])
        start = time.monotonic()
        wait(
            "plugin digest %s" % digest,
            lambda: (p := pipeline(url)) is not None and p["plugins"][0]["digest"] == digest,
            timeout,
        )
        print("check: new plugin running after %.1fs" % (time.monotonic() - start))
    elif cmd == "first":
        bootstrap, digest, good, bad, timeout = args[0], args[1], int(args[2]), int(args[3]), float(args[4])
        start = from_start(bootstrap)
        records = read(bootstrap, start, good + bad, timeout)
        results = [r for r in records if r["topic"] == RESULTS]
        dead = [r for r in records if r["topic"] == DLQ]
        ids = Counter(order_id(r["value"]) for r in results)
        ids.update(order_id(r["value"]) for r in dead if not (r["key"] or "").startswith("bad-"))
        expected = {"ORD-%04d" % i for i in range(good)}
        missing = sorted(expected - set(ids))
        extra = sorted(str(k) for k in set(ids) - expected)
        twice = sorted(k for k, n in ids.items() if n > 1)
        bad_keys = Counter(r["key"] for r in dead if (r["key"] or "").startswith("bad-"))
        if missing or extra or twice:
            fail("orders missing %s, unexpected %s, more than once %s" % (missing[:10], extra[:10], twice[:10]))
        if sorted(bad_keys) != ["bad-%d" % j for j in range(bad)] or any(n != 1 for n in bad_keys.values()):
            fail("malformed records in the DLQ: %s" % dict(bad_keys))
        if len(records) != good + bad:
            fail("%d records in results and DLQ, expected %d" % (len(records), good + bad))
        wrong = [r["headers"].get("sluice.plugin.digest") for r in results if r["headers"].get("sluice.plugin.digest") != digest]
        if wrong:
            fail("%d results without digest %s: %s" % (len(wrong), digest, wrong[:3]))
        kinds = Counter(r["headers"].get("sluice.error.kind") for r in dead)
        print(
            "check: %d orders accounted for once each: %d results, %d dead letters %s"
            % (good + bad, len(results), len(dead), dict(kinds))
        )
    elif cmd == "after":
        bootstrap, before, digest, count, timeout = args[0], int(args[1]), args[2], int(args[3]), float(args[4])
        start = from_start(bootstrap, [RESULTS])
        records = read(bootstrap, start, before + count, timeout)
        digests = Counter(r["headers"].get("sluice.plugin.digest") for r in records)
        if len(records) != before + count or digests[digest] != count:
            fail(
                "expected %d results, the last %d with digest %s; got %d: %s"
                % (before + count, count, digest, len(records), dict(digests))
            )
        print("check: the %d results after the swap carry the new digest" % count)
    elif cmd == "produce":
        produce(args[0], args[1], int(args[2]), float(args[3]))
    elif cmd == "events":
        p = pipeline(args[0])
        if p is None:
            fail("no /api/status at " + args[0])
        print(p["events"])
    elif cmd == "wait-events":
        url, least, timeout = args[0], int(args[1]), float(args[2])
        wait(
            "%d events processed" % least,
            lambda: (p := pipeline(url)) is not None and p.get("events", 0) >= least,
            timeout,
        )
    elif cmd == "once":
        bootstrap, prefix, count, timeout = args[0], args[1], int(args[2]), float(args[3])
        start = from_start(bootstrap)
        mine = lambda r: str(order_id(r["value"])).startswith(prefix + "-")
        records = [r for r in read(bootstrap, start, count, timeout, mine) if mine(r)]
        ids = Counter(order_id(r["value"]) for r in records)
        expected = {"%s-%05d" % (prefix, i) for i in range(count)}
        missing = sorted(expected - set(ids))
        extra = sorted(str(k) for k in set(ids) - expected)
        twice = sorted(k for k, n in ids.items() if n > 1)
        if missing or extra or twice:
            odd = [r for r in records if str(order_id(r["value"])) in set(extra[:5]) | set(twice[:5])]
            fail(
                "%d missing %s, %d unexpected %s, %d more than once %s; for instance %s"
                % (len(missing), missing[:5], len(extra), extra[:5], len(twice), twice[:5], odd[:5])
            )
        print("check: %d orders accounted for once each" % count)
    else:
        fail("unknown command " + cmd)


if __name__ == "__main__":
    main(sys.argv[1:])
