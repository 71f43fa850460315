#!/usr/bin/env node
// Read a topic from the beginning and print every record as one JSON line.
//
//     node examples/node/consumer.js --bootstrap 127.0.0.1:9092 --topic orders-enriched
//
// Each line on stdout:
//     {"topic":"...","partition":0,"offset":0,"key":"...","value":"...",
//      "headers":{"name":"value",...}}
// key, value and header values are decoded as UTF-8 (invalid bytes replaced;
// null stays null). A header name that repeats keeps its last value. Reading
// the dead-letter topic shows the envelope: sluice.error.kind and the rest.
//
// Uses a fresh consumer group each run (unless --group is given), reads from
// the earliest offset and commits nothing. Stops after --max records, or when
// no record has arrived for --idle-secs once the group is joined (a
// consumer-group join takes a few seconds on tansu, which doesn't count as
// idle), or after --timeout seconds in all. A summary goes to stderr.
// The twin of examples/python/consumer.py.

import { randomUUID } from "node:crypto";
import { flags, kafka } from "./kafka.js";

const text = (b) => (b == null ? null : b.toString("utf8"));

function record(topic, partition, message) {
  const headers = {};
  for (const [name, value] of Object.entries(message.headers ?? {})) {
    // kafkajs gives a repeated header as an array of its values.
    headers[name] = text(Array.isArray(value) ? value.at(-1) : value);
  }
  return {
    topic,
    partition,
    offset: Number(message.offset),
    key: text(message.key),
    value: text(message.value),
    headers,
  };
}

async function main() {
  const args = flags(
    {
      bootstrap: { default: "127.0.0.1:9092", help: "bootstrap servers (host:port,...)" },
      topic: { default: "orders", help: "topic (comma-separated for several)" },
      group: { help: "consumer group (default: a fresh one)" },
      "idle-secs": { default: 5, number: true, help: "stop after this long with no record" },
      max: { number: true, help: "stop after N records" },
      timeout: { default: 120, number: true, help: "stop after this many seconds in all" },
    },
    "Print a topic's records as JSON lines.",
  );

  const consumer = kafka(args.bootstrap, "consumer-js").consumer({
    groupId: args.group ?? `consumer-js-${randomUUID()}`,
    // tansu holds a group join for about half the session timeout.
    sessionTimeout: 6000,
    heartbeatInterval: 1000,
    // How long a fetch waits for data: short, so that stopping is quick.
    maxWaitTimeInMs: 500,
  });

  let count = 0;
  const start = performance.now();
  let last = null; // time of the last record, or of the group join
  let failure = null;
  let finish;
  const finished = new Promise((resolve) => (finish = resolve));
  const done = () => finish();

  consumer.on(consumer.events.GROUP_JOIN, () => {
    last ??= performance.now();
  });
  consumer.on(consumer.events.CRASH, ({ payload }) => {
    console.error(`consumer error: ${payload.error.message}`);
    if (!payload.restart) {
      failure = payload.error;
      done();
    }
  });
  const ticker = setInterval(() => {
    const now = performance.now();
    if (now - start > args.timeout * 1000) {
      console.error("consumer: overall timeout");
      done();
    } else if (last !== null && now - last > args.idleSecs * 1000) {
      done();
    }
  }, 100);
  process.once("SIGINT", done);
  process.once("SIGTERM", done);

  try {
    await consumer.connect();
    await consumer.subscribe({ topics: args.topic.split(","), fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachMessage: async ({ topic, partition, message }) => {
        if (args.max !== undefined && count >= args.max) return;
        console.log(JSON.stringify(record(topic, partition, message)));
        count += 1;
        last = performance.now();
        if (args.max !== undefined && count >= args.max) done();
      },
    });
    await finished;
  } catch (err) {
    console.error(`consumer error: ${err.message}`);
    failure = err;
  } finally {
    clearInterval(ticker);
    await consumer.disconnect();
  }
  const elapsed = (performance.now() - start) / 1000;
  console.error(`consumed ${count} records from ${args.topic} in ${elapsed.toFixed(2)}s`);
  return failure ? 1 : 0;
}

process.exitCode = await main();
