#!/usr/bin/env node
// Produce order events to Kafka, the way a Kafka beginners' tutorial does.
//
//     node examples/node/producer.js --bootstrap 127.0.0.1:9092 --count 100
//
// Order i is
//     {"order_id":"ORD-0007","customer_id":"CUST-007","amount":20.5,
//      "timestamp":1767225600.123}
// with customer CUST-%03d (i % 10), amount 10 + i * 1.5, keyed by customer_id
// (so one customer's orders stay in one partition, in order).
//
// --malformed K also sends K bad records after the good ones, cycling through:
// not JSON at all, JSON without "amount", and a negative amount. Their keys are
// "bad-0", "bad-1", ... so tests can tell them apart.
//
// Prints one line per failed delivery to stderr and a summary at the end;
// exits 1 if any delivery failed. The twin of examples/python/producer.py.

import kafkajs from "kafkajs";
import { flags, kafka } from "./kafka.js";

const { Partitioners } = kafkajs;

// Records per produce request: kafkajs has no linger.ms; it sends what one
// send() gets, so batch here. Each batch is awaited before the next one, which
// keeps every key's records in order.
const BATCH = 500;

const pad = (n, width) => String(n).padStart(width, "0");
const now = () => Date.now() / 1000;

function order(i) {
  const customerId = `CUST-${pad(i % 10, 3)}`;
  return [
    customerId,
    { order_id: `ORD-${pad(i, 4)}`, customer_id: customerId, amount: 10 + i * 1.5, timestamp: now() },
  ];
}

function malformed(j) {
  const kind = j % 3;
  if (kind === 0) return "not json";
  if (kind === 1) {
    // missing amount
    return JSON.stringify({ order_id: `BAD-${pad(j, 4)}`, customer_id: "CUST-000", timestamp: now() });
  }
  // negative amount
  return JSON.stringify({ order_id: `BAD-${pad(j, 4)}`, customer_id: "CUST-000", amount: -5.0, timestamp: now() });
}

async function main() {
  const args = flags(
    {
      bootstrap: { default: "127.0.0.1:9092", help: "bootstrap servers (host:port,...)" },
      topic: { default: "orders", help: "topic" },
      count: { default: 100, number: true, help: "number of good orders" },
      malformed: { default: 0, number: true, help: "also send K malformed records" },
    },
    "Produce order events.",
  );

  const messages = [];
  for (let i = 0; i < args.count; i++) {
    const [key, value] = order(i);
    messages.push({ key, value: JSON.stringify(value) });
  }
  for (let j = 0; j < args.malformed; j++) {
    messages.push({ key: `bad-${j}`, value: malformed(j) });
  }

  const producer = kafka(args.bootstrap, "producer-js").producer({
    // kafkajs's default since 2.0, named here to silence its warning: murmur2
    // on the key, like the Java client and Sluice's own producer; librdkafka's
    // default (examples/python) is CRC32 instead. See README.md.
    createPartitioner: Partitioners.DefaultPartitioner,
  });

  let delivered = 0;
  let failed = 0;
  const start = performance.now();
  try {
    await producer.connect();
    for (let at = 0; at < messages.length; at += BATCH) {
      const batch = messages.slice(at, at + BATCH);
      try {
        // acks: -1 is "all"; kafkajs retries failed requests itself.
        await producer.send({ topic: args.topic, acks: -1, messages: batch });
        delivered += batch.length;
      } catch (err) {
        failed += batch.length;
        for (const m of batch) console.error(`delivery failed for key '${m.key}': ${err.message}`);
      }
    }
  } catch (err) {
    console.error(`producer: ${err.message}`);
  } finally {
    await producer.disconnect();
  }
  const elapsed = (performance.now() - start) / 1000;
  const total = messages.length;
  console.error(
    `produced ${delivered}/${total} records to ${args.topic} in ${elapsed.toFixed(2)}s` +
      ` (${failed} failed, ${total - delivered - failed} undelivered)`,
  );
  return delivered === total ? 0 : 1;
}

process.exitCode = await main();
