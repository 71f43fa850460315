#!/usr/bin/env node
// The linear-memory size of a plugin component as events go through it.
//
//   node plugins/js/order-enrich/memory.mjs <plugin.wasm> [--batch-size 128]
//       [--events 300000] [--every 25000] [--input events.jsonl]
//
// Transpiles the component with jco (from plugins/js/sdk/node_modules) and
// runs it under node, where its memory can be read after each call; the
// guest code is the same as under the host, the engine is V8 instead of
// wasmtime. Prints the size every `--every` events. Events are the orders
// compare.py generates (or `--input`, exec-format JSON lines), repeated.

import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const HERE = dirname(fileURLToPath(import.meta.url));
const SDK_MODULES = join(HERE, '..', 'sdk', 'node_modules');

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    'batch-size': { type: 'string', default: '128' },
    events: { type: 'string', default: '300000' },
    every: { type: 'string', default: '25000' },
    input: { type: 'string' },
  },
});
if (positionals.length !== 1) {
  console.error('usage: memory.mjs <plugin.wasm> [--batch-size N] [--events N] [--every N] [--input FILE]');
  process.exit(2);
}
const batch = Number(values['batch-size']);
const total = Number(values.events);
const every = Number(values.every);

const work = mkdtempSync(join(tmpdir(), 'sluice-memory-'));
try {
  execFileSync(process.execPath, [join(SDK_MODULES, '.bin', 'jco'), 'transpile', resolve(positionals[0]), '-o', work, '--instantiation', 'sync', '-q']);
  const name = readdirSync(work).find((f) => f.endsWith('.js'));

  // WASI from preview2-shim, keyed as the transpiled module asks for it.
  const shim = await import(pathToFileURL(join(SDK_MODULES, '@bytecodealliance', 'preview2-shim', 'lib', 'nodejs', 'index.js')).href);
  const imports = { 'sluice:plugin/host': { log: (level, message) => console.error(`[${level}] ${message}`) } };
  for (const [ns, mod] of Object.entries(shim)) {
    for (const [iface, impl] of Object.entries(mod)) imports[`wasi:${ns}/${iface.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`] = impl;
  }
  const memories = [];
  const { instantiate } = await import(pathToFileURL(join(work, name)).href);
  const plugin = instantiate(
    (file) => new WebAssembly.Module(readFileSync(join(work, file))),
    imports,
    (module, importObject) => {
      const instance = new WebAssembly.Instance(module, importObject);
      if (instance.exports.memory) memories.push(instance.exports.memory);
      return instance;
    },
  );
  const size = () => Math.max(...memories.map((m) => m.buffer.byteLength));

  const lines = values.input
    ? readFileSync(values.input, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l))
    : JSON.parse(execFileSync('python3', ['-c', `import json,sys; sys.path.insert(0, ${JSON.stringify(HERE)}); from compare import gen_orders; print(json.dumps(gen_orders(20000, 7)))`], { maxBuffer: 1 << 28 }));
  const enc = new TextEncoder();
  const bytes = (v) => (v == null ? undefined : enc.encode(typeof v === 'string' ? v : JSON.stringify(v)));
  const events = lines.map((e, i) => ({
    topic: e.topic ?? 'exec',
    partition: e.partition ?? 0,
    offset: BigInt(e.offset ?? i),
    timestampMs: e.timestamp_ms == null ? undefined : BigInt(e.timestamp_ms),
    key: bytes(e.key),
    value: bytes(e.value),
    headers: (Array.isArray(e.headers) ? e.headers : Object.entries(e.headers ?? {})).map(([k, v]) => [k, typeof v === 'string' ? enc.encode(v) : new Uint8Array(0)]),
  }));

  plugin.init([]);
  console.log(`${basename(positionals[0])}: batch ${batch}; after init ${(size() / 1048576).toFixed(2)} MiB`);
  let done = 0;
  let last = size();
  let lastDone = 0;
  let next = every;
  while (done < total) {
    const calls = [];
    for (let j = 0; j < batch; j++) calls.push(events[(done + j) % events.length]);
    plugin.process(calls);
    done += batch;
    if (done >= next) {
      const now = size();
      console.log(`${String(done).padStart(9)} events: ${(now / 1048576).toFixed(2)} MiB (${((now - last) / (done - lastDone)).toFixed(0)} B/event since the last line)`);
      last = now;
      lastDone = done;
      next += every;
    }
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
