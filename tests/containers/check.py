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

Reads topics without a consumer group (assign + watermarks), so nothing
waits for a group join. Exits 1 with the reason on failure.
"""

import json
import sys
import time
import urllib.request
from collections import Counter

from confluent_kafka import Consumer, TopicPartition

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


def watermarks(bootstrap, topics=(RESULTS, DLQ)):
    c = consumer(bootstrap)
    try:
        out = {}
        for topic in topics:
            meta = c.list_topics(topic, timeout=10).topics[topic]
            if meta.error is not None:
                fail("topic %s: %s" % (topic, meta.error))
            out[topic] = {
                str(p): c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in sorted(meta.partitions)
            }
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


def read(bootstrap, start, want, timeout):
    """Records past `start` ({topic: {partition: offset}}) until `want` of them or `timeout`."""
    c = consumer(bootstrap)
    c.assign([TopicPartition(t, int(p), off) for t, parts in start.items() for p, off in parts.items()])
    records, deadline = [], time.monotonic() + timeout
    try:
        while len(records) < want and time.monotonic() < deadline:
            msg = c.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                fail("reading %s: %s" % (msg.topic(), msg.error()))
            records.append(as_record(msg))
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
        start = {t: {p: 0 for p in parts} for t, parts in watermarks(bootstrap).items()}
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
        start = {RESULTS: {p: 0 for p in watermarks(bootstrap, [RESULTS])[RESULTS]}}
        records = read(bootstrap, start, before + count, timeout)
        digests = Counter(r["headers"].get("sluice.plugin.digest") for r in records)
        if len(records) != before + count or digests[digest] != count:
            fail(
                "expected %d results, the last %d with digest %s; got %d: %s"
                % (before + count, count, digest, len(records), dict(digests))
            )
        print("check: the %d results after the swap carry the new digest" % count)
    else:
        fail("unknown command " + cmd)


if __name__ == "__main__":
    main(sys.argv[1:])
