#!/usr/bin/env python3
"""Small Kafka admin helper for tests, on confluent-kafka's AdminClient.

    kafka_admin.py --bootstrap 127.0.0.1:PORT create-topic NAME PARTITIONS
    kafka_admin.py --bootstrap 127.0.0.1:PORT delete-topic NAME
    kafka_admin.py --bootstrap 127.0.0.1:PORT describe [TOPIC ...]
    kafka_admin.py --bootstrap 127.0.0.1:PORT committed GROUP TOPIC

`describe` prints {"topic": partition_count, ...}; `committed` prints
{"partition": committed_offset, ...} (-1001 = nothing committed). Output is
one JSON line on stdout; errors go to stderr with exit status 1.
The bootstrap address can also come from $SLUICE_BOOTSTRAP.

(The Rust test support creates topics with `tansu topic create` and does not
need this; it is for Python tests and for looking at a broker by hand.)
"""

import argparse
import json
import os
import sys

from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

TIMEOUT = 15.0


def create_topic(admin, name, partitions):
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1)],
        operation_timeout=TIMEOUT,
        request_timeout=TIMEOUT,
    )
    futures[name].result(TIMEOUT)
    return {"created": name, "partitions": partitions}


def delete_topic(admin, name):
    admin.delete_topics([name], operation_timeout=TIMEOUT, request_timeout=TIMEOUT)[name].result(TIMEOUT)
    return {"deleted": name}


def describe(admin, topics):
    md = admin.list_topics(timeout=TIMEOUT)
    out = {}
    for name, tm in sorted(md.topics.items()):
        if topics and name not in topics:
            continue
        if tm.error is not None:
            raise KafkaException(tm.error)
        out[name] = len(tm.partitions)
    missing = [t for t in topics if t not in out]
    if missing:
        raise SystemExit(f"unknown topic(s): {', '.join(missing)}")
    return out


def committed(bootstrap, admin, group, topic):
    partitions = describe(admin, [topic])[topic]
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        tps = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=TIMEOUT)
    finally:
        c.close()
    return {str(tp.partition): tp.offset for tp in tps}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bootstrap", default=os.environ.get("SLUICE_BOOTSTRAP", "127.0.0.1:9092"))
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("create-topic")
    p.add_argument("name")
    p.add_argument("partitions", type=int)
    p = sub.add_parser("delete-topic")
    p.add_argument("name")
    p = sub.add_parser("describe")
    p.add_argument("topics", nargs="*")
    p = sub.add_parser("committed")
    p.add_argument("group")
    p.add_argument("topic")
    args = ap.parse_args(argv)

    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    try:
        if args.cmd == "create-topic":
            result = create_topic(admin, args.name, args.partitions)
        elif args.cmd == "delete-topic":
            result = delete_topic(admin, args.name)
        elif args.cmd == "describe":
            result = describe(admin, args.topics)
        else:
            result = committed(args.bootstrap, admin, args.group, args.topic)
    except KafkaException as e:
        print(f"kafka_admin {args.cmd}: {e.args[0] if e.args else e}", file=sys.stderr)
        return 1
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
