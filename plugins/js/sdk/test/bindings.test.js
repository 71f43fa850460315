// The SDK's `process` bindings (export-process.js, patched in by
// bindings.mjs) against the ones componentize-js generates: both run here
// over the same simulated linear memory, and must read, write and free the
// same bytes. Needs componentize-js installed (npm ci); skipped without it.

import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';

import { patchBindings, __test } from '../bindings.mjs';

const SDK = dirname(dirname(fileURLToPath(import.meta.url)));
const WIT = join(SDK, '..', '..', '..', 'wit');

async function generatedBindings() {
  let entry;
  try {
    entry = fileURLToPath(import.meta.resolve('@bytecodealliance/componentize-js'));
  } catch {
    return null;
  }
  const lib = join(dirname(entry), '..', 'lib');
  const { splicer } = await import(pathToFileURL(join(lib, 'spidermonkey-embedding-splicer.js')).href);
  const engine = await readFile(join(lib, 'starlingmonkey_embedding.wasm'));
  return splicer.spliceBindings(engine, ['stdio', 'random', 'clocks'], undefined, WIT, 'processor', false).jsBindings;
}

const generated = await generatedBindings();

// A linear memory with a bump allocator that grows it, and a log of every
// realloc and dealloc, driven by one bindings script.
function instantiate(js, userProcess) {
  const state = { buffer: new ArrayBuffer(1 << 16), top: 8, frees: [], allocs: [] };
  const memory = {
    get buffer() {
      return state.buffer;
    },
  };
  const realloc = (old, oldLen, align, len) => {
    state.top = Math.ceil(state.top / align) * align;
    const ptr = state.top;
    state.top += len;
    state.allocs.push([ptr, len, align]);
    while (state.top > state.buffer.byteLength) {
      const bigger = new ArrayBuffer(state.buffer.byteLength * 2);
      new Uint8Array(bigger).set(new Uint8Array(state.buffer));
      state.buffer = bigger;
    }
    return ptr;
  };
  const dealloc = (ptr, len, align) => state.frees.push([ptr, len, align]);
  const script = new Function(
    'contentGlobal', '$bindings', 'defineBuiltinModule', '$source_mod',
    `${js}\nbindExports('test.js');\nreturn export_process;`,
  );
  const exportProcess = script(globalThis, [memory, realloc, dealloc, () => {}], () => {}, { init() {}, process: userProcess });
  return { state, exportProcess, realloc };
}

// Writes `events` (WIT event records) into memory as the host would.
function writeEvents(inst, events) {
  const { realloc, state } = inst;
  const enc = new TextEncoder();
  const put = (bytes) => {
    const ptr = realloc(0, 0, 1, bytes.length);
    new Uint8Array(state.buffer).set(bytes, ptr);
    return ptr;
  };
  const list = realloc(0, 0, 8, events.length * 72);
  events.forEach((e, i) => {
    const base = list + i * 72;
    const topic = enc.encode(e.topic);
    const topicPtr = put(topic);
    const headers = realloc(0, 0, 4, e.headers.length * 16);
    const hp = e.headers.map(([n, v]) => [put(enc.encode(n)), enc.encode(n).length, put(v), v.length]);
    const key = e.key && put(e.key);
    const value = e.value && put(e.value);
    const dv = new DataView(state.buffer);
    dv.setUint32(base, topicPtr, true);
    dv.setUint32(base + 4, topic.length, true);
    dv.setInt32(base + 8, e.partition, true);
    dv.setBigInt64(base + 16, e.offset, true);
    dv.setUint8(base + 24, e.timestampMs === undefined ? 0 : 1);
    if (e.timestampMs !== undefined) dv.setBigInt64(base + 32, e.timestampMs, true);
    dv.setUint8(base + 40, e.key ? 1 : 0);
    if (e.key) [dv.setUint32(base + 44, key, true), dv.setUint32(base + 48, e.key.length, true)];
    dv.setUint8(base + 52, e.value ? 1 : 0);
    if (e.value) [dv.setUint32(base + 56, value, true), dv.setUint32(base + 60, e.value.length, true)];
    dv.setUint32(base + 64, headers, true);
    dv.setUint32(base + 68, e.headers.length, true);
    hp.forEach(([np, nl, vp, vl], h) => {
      dv.setUint32(headers + h * 16, np, true);
      dv.setUint32(headers + h * 16 + 4, nl, true);
      dv.setUint32(headers + h * 16 + 8, vp, true);
      dv.setUint32(headers + h * 16 + 12, vl, true);
    });
  });
  return list;
}

const enc = new TextEncoder();
const EVENTS = [
  { topic: 'orders', partition: 2, offset: 9007199254740993n, timestampMs: -5n, key: enc.encode('k'), value: enc.encode('{"a":1}'),
    headers: [['h', enc.encode('1')], ['ünï', new Uint8Array([0, 255])]] },
  { topic: '', partition: -1, offset: 0n, timestampMs: undefined, key: undefined, value: undefined, headers: [] },
  { topic: 'tøpic', partition: 0, offset: -1n, timestampMs: 0n, key: new Uint8Array(0), value: new Uint8Array(3000).fill(7), headers: [] },
];

function outcomes() {
  return [
    { tag: 'ok', val: [{ value: enc.encode('v') }, { topic: 'alerts', key: enc.encode('k'), value: undefined, headers: [['a', enc.encode('b')], ['é', new Uint8Array(0)]] }] },
    { tag: 'ok', val: [] },
    { tag: 'err', val: { tag: 'invalid', val: 'bad ✓' } },
    { tag: 'err', val: { tag: 'retryable', val: '' } },
    { tag: 'ok', val: [{ topic: '', key: [1, 2, 3], value: new Uint16Array([0x4142]), headers: [] }, { value: new Uint8Array(70000).fill(1).buffer, headers: null }] },
  ];
}

async function run(js, result = outcomes) {
  let seen;
  const inst = instantiate(js, (events) => {
    seen = events;
    return result();
  });
  const list = writeEvents(inst, EVENTS);
  const retptr = inst.realloc(0, 0, 4, 8);
  inst.state.allocs.length = 0;
  let error = null;
  try {
    await inst.exportProcess(list, EVENTS.length, retptr);
  } catch (err) {
    error = `${err.constructor.name}: ${err.message}`;
  }
  return { seen, error, memory: new Uint8Array(inst.state.buffer), frees: inst.state.frees, allocs: inst.state.allocs };
}

async function both(result) {
  const fast = patchBindings(generated);
  assert.equal(fast.patched, true, fast.reason);
  const a = run(generated, result);
  const b = run(fast.js, result);
  return [await a, await b];
}

describe('fast process bindings', { skip: generated === null && 'componentize-js is not installed' }, () => {
  it('apply to the bindings componentize-js generates for wit/', () => {
    assert.equal(patchBindings(generated).patched, true);
  });

  it('leave other bindings alone', () => {
    const other = generated.replace('base9 + i * 72', 'base9 + i * 80');
    const result = patchBindings(other);
    assert.equal(result.patched, false);
    assert.equal(result.js, other);
    assert.match(result.reason, /differs/);
    assert.equal(patchBindings('let x;').patched, false);
  });

  it('lift, lower and free exactly as the generated ones', async () => {
    const [gen, fast] = await both();
    assert.equal(fast.error, null);
    assert.equal(gen.error, null);
    assert.deepEqual(fast.seen, gen.seen);
    assert.deepEqual(fast.frees, gen.frees);
    assert.deepEqual(fast.allocs, gen.allocs);
    assert.deepEqual(fast.memory, gen.memory);
  });

  for (const [name, bad] of [
    ['a topic that is not a string', () => [{ tag: 'ok', val: [{ topic: 5 }] }]],
    ['a byte that is out of range', () => [{ tag: 'ok', val: [{ value: [1, 256] }] }]],
    ['an unknown error kind', () => [{ tag: 'err', val: { tag: 'fatal', val: 'x' } }]],
    ['an unknown outcome tag', () => [{ tag: 'maybe' }]],
  ]) {
    it(`fail the same way on ${name}`, async () => {
      const [gen, fast] = await both(bad);
      assert.notEqual(gen.error, null);
      assert.equal(fast.error, gen.error);
    });
  }

  it('keep the text of export-process.js a function declaration', () => {
    assert.match(__test.FAST_EXPORT_PROCESS, /^\/\/[^]*\nasync function export_process\(arg0, arg1, arg2\) \{/);
  });
});
