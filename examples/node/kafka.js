// What producer.js and consumer.js share: flag parsing and the kafkajs client.

import { parseArgs } from "node:util";
import kafkajs from "kafkajs";
import { compressFrame, decompressFrame } from "lz4-napi";

// kafkajs is CommonJS; Node's ES-module bridge sees only some of its exports
// by name (not CompressionCodecs), so take them from the default export.
const { CompressionCodecs, CompressionTypes, Kafka, logLevel } = kafkajs;

// kafkajs has only gzip built in. Sluice's demo pipeline writes lz4
// (config/demo.toml), so register an LZ4 codec (the LZ4 frame format is what
// Kafka uses): without it, reading such a topic crashes the consumer with
// "LZ4 compression not implemented". Snappy and zstd would need codecs too.
CompressionCodecs[CompressionTypes.LZ4] = () => ({
  compress: (encoder) => compressFrame(encoder.buffer),
  decompress: (buffer) => decompressFrame(buffer),
});

// kafkajs logs through console.info, which is stdout: keep stdout for data
// (consumer.js prints records there) and send the log to stderr as one line
// per entry. KAFKAJS_LOG_LEVEL=debug|info|warn|error|nothing overrides the
// level.
const toStderr =
  () =>
  ({ namespace, label, log }) => {
    const { message, timestamp, logger, stack, ...extra } = log;
    const rest = Object.keys(extra).length ? ` ${JSON.stringify(extra)}` : "";
    console.error(`${label} [${namespace || "kafkajs"}] ${message}${rest}`);
  };

/** A kafkajs client for `bootstrap` ("host:port[,host:port...]"). */
export function kafka(bootstrap, clientId) {
  return new Kafka({
    clientId,
    brokers: bootstrap.split(","),
    logLevel: logLevel.WARN,
    logCreator: toStderr,
  });
}

/**
 * Parses `argv` with `options` ({name: {type, default, help, number}}),
 * like argparse: --help prints usage, a bad flag exits 2. Flags marked
 * `number` are converted.
 */
export function flags(options, description, argv = process.argv.slice(2)) {
  const usage = () =>
    [description, "", "options:"]
      .concat(
        Object.entries(options).map(
          ([name, o]) =>
            `  --${name.padEnd(12)} ${o.help}` + (o.default === undefined ? "" : ` (default: ${o.default})`),
        ),
      )
      .join("\n");
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        help: { type: "boolean", short: "h" },
        ...Object.fromEntries(Object.keys(options).map((name) => [name, { type: "string" }])),
      },
    }));
  } catch (e) {
    console.error(`${e.message}\n\n${usage()}`);
    process.exit(2);
  }
  if (values.help) {
    console.log(usage());
    process.exit(0);
  }
  const args = {};
  for (const [name, o] of Object.entries(options)) {
    const key = name.replace(/-(\w)/g, (_, c) => c.toUpperCase());
    let value = values[name] ?? o.default;
    if (o.number && value !== undefined) {
      const n = Number(value);
      if (value === "" || !Number.isFinite(n)) {
        console.error(`--${name}: not a number: ${value}`);
        process.exit(2);
      }
      value = n;
    }
    args[key] = value;
  }
  return args;
}
