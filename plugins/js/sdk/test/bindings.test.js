// The SDK's `process` bindings (export-process.js, patched in by
// bindings.mjs) against the ones componentize-js generates: both run here
// over the same simulated linear memory, and must read, write and free the
// same bytes. Needs componentize-js installed (npm ci); skipped without it.

import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';

import { patchBindings, patchStateImports, __test } from '../bindings.mjs';

const SDK = dirname(dirname(fileURLToPath(import.meta.url)));
const WIT = join(SDK, '..', '..', '..', 'wit');

async function generatedBindings(world = 'processor') {
  let entry;
  try {
    entry = fileURLToPath(import.meta.resolve('@bytecodealliance/componentize-js'));
  } catch {
    return null;
  }
  const lib = join(dirname(entry), '..', 'lib');
  const { splicer } = await import(pathToFileURL(join(lib, 'spidermonkey-embedding-splicer.js')).href);
  const engine = await readFile(join(lib, 'starlingmonkey_embedding.wasm'));
  return splicer.spliceBindings(engine, ['stdio', 'random', 'clocks'], undefined, WIT, world, false).jsBindings;
}

const generated = await generatedBindings();
const generatedStateful = generated && (await generatedBindings('stateful-processor'));

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

// The state imports (import-state.js, patched in by patchStateImports)
// against the generated ones: a simulated host answers each core import by
// writing its result into the same kind of simulated memory; both must pass
// the same arguments, return or throw the same values, and allocate, write
// and free the same bytes.

/** A host that answers from `answers[name]` (a function of the call's arguments). */
function instantiateStateful(js, answers) {
  const state = { buffer: new ArrayBuffer(1 << 16), top: 8, frees: [], allocs: [], calls: [] };
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
  const dealloc = (...args) => state.frees.push(args);
  const bytesAt = (ptr, len) => [...new Uint8Array(state.buffer, ptr, len)];
  const put = (bytes) => {
    const ptr = realloc(0, 0, 1, bytes.length);
    new Uint8Array(state.buffer).set(bytes, ptr);
    return ptr;
  };
  // Writes `result<T, error>` into a fresh return area: `ok` (write(dv, ret)) or `err` (a message, at `at`).
  const answer = (outcome, at, write) => {
    const ret = realloc(0, 0, 8, 24);
    if (outcome.err !== undefined) {
      const msg = new TextEncoder().encode(outcome.err);
      const ptr = put(msg);
      const dv = new DataView(state.buffer);
      dv.setUint8(ret, 1);
      dv.setUint8(ret + at, 0);
      dv.setUint32(ret + at + 4, ptr, true);
      dv.setUint32(ret + at + 8, msg.length, true);
    } else {
      write(ret);
      new DataView(state.buffer).setUint8(ret, 0);
    }
    return ret;
  };
  const core = {
    get: (ptr, len) => {
      state.calls.push(['get', bytesAt(ptr, len)]);
      const outcome = answers.get();
      return answer(outcome, 4, (ret) => {
        const value = outcome.ok;
        const vptr = value === undefined ? 0 : put(value);
        const dv = new DataView(state.buffer);
        dv.setUint8(ret + 4, value === undefined ? 0 : 1);
        if (value !== undefined) [dv.setUint32(ret + 8, vptr, true), dv.setUint32(ret + 12, value.length, true)];
      });
    },
    set: (kp, kl, vp, vl) => {
      state.calls.push(['set', bytesAt(kp, kl), bytesAt(vp, vl)]);
      return answer(answers.set(), 4, () => {});
    },
    delete: (ptr, len) => {
      state.calls.push(['delete', bytesAt(ptr, len)]);
      return answer(answers.delete(), 4, () => {});
    },
    exists: (ptr, len) => {
      state.calls.push(['exists', bytesAt(ptr, len)]);
      const outcome = answers.exists();
      return answer(outcome, 4, (ret) => new DataView(state.buffer).setUint8(ret + 4, outcome.ok ? 1 : 0));
    },
    listKeys: (pp, pl, some, cp, cl, limit) => {
      state.calls.push(['listKeys', bytesAt(pp, pl), some, some ? bytesAt(cp, cl) : null, limit]);
      const outcome = answers.listKeys();
      return answer(outcome, 4, (ret) => {
        const keys = outcome.ok;
        const list = realloc(0, 0, 4, keys.length * 8);
        const ptrs = keys.map(put);
        const dv = new DataView(state.buffer);
        keys.forEach((k, i) => [dv.setUint32(list + i * 8, ptrs[i], true), dv.setUint32(list + i * 8 + 4, k.length, true)]);
        dv.setUint32(ret + 4, list, true);
        dv.setUint32(ret + 8, keys.length, true);
      });
    },
    deletePrefix: (ptr, len) => {
      state.calls.push(['deletePrefix', bytesAt(ptr, len)]);
      const outcome = answers.deletePrefix();
      return answer(outcome, 8, (ret) => new DataView(state.buffer).setBigUint64(ret + 8, outcome.ok, true));
    },
  };
  const modules = {};
  const script = new Function(
    'contentGlobal', '$bindings', 'defineBuiltinModule', '$source_mod',
    `${js}\nreturn null;`,
  );
  script(
    globalThis,
    [memory, realloc, dealloc, core.get, core.set, core.delete, core.exists, core.listKeys, core.deletePrefix, () => {}],
    (name, value) => {
      modules[name] = value;
    },
    { init() {}, process() {} },
  );
  return { state, wit: modules['sluice:plugin/state@0.1.0'] };
}

const bytes = (s) => new TextEncoder().encode(s);
const STATE_CALLS = [
  ['get', () => ({ ok: bytes('value ✓') }), (wit) => wit.get(bytes('k'))],
  ['get', () => ({ ok: undefined }), (wit) => wit.get(new Uint8Array(0))],
  ['get', () => ({ ok: new Uint8Array(0) }), (wit) => wit.get([1, 2, 255])],
  ['get', () => ({ ok: new Uint8Array(70000).fill(3) }), (wit) => wit.get(new Uint16Array([0x4142]))],
  ['get', () => ({ err: 'called outside process ✗' }), (wit) => wit.get(bytes('k'))],
  ['get', () => ({ ok: undefined }), (wit) => wit.get([1, 256])],
  ['set', () => ({ ok: null }), (wit) => wit.set(bytes('k'), bytes('v'))],
  ['set', () => ({ ok: null }), (wit) => wit.set(new Uint8Array(0), new Uint8Array(100000).fill(9).buffer)],
  ['set', () => ({ err: 'nope' }), (wit) => wit.set(bytes('k'), [7])],
  ['delete', () => ({ ok: null }), (wit) => wit.delete(bytes('gone'))],
  ['delete', () => ({ err: '' }), (wit) => wit.delete(bytes('gone'))],
  ['exists', () => ({ ok: true }), (wit) => wit.exists(bytes('k'))],
  ['exists', () => ({ ok: false }), (wit) => wit.exists(bytes('k'))],
  ['exists', () => ({ err: 'x' }), (wit) => wit.exists(bytes('k'))],
  ['listKeys', () => ({ ok: [bytes('a/1'), new Uint8Array(0), bytes('a/ü')] }), (wit) => wit.listKeys(bytes('a/'), undefined, 256)],
  ['listKeys', () => ({ ok: [] }), (wit) => wit.listKeys(new Uint8Array(0), bytes('a/1'), 2 ** 32 + 3)],
  ['listKeys', () => ({ ok: [bytes('z')] }), (wit) => wit.listKeys(bytes(''), null, -1)],
  ['listKeys', () => ({ err: 'no' }), (wit) => wit.listKeys(bytes('a'), bytes('b'), 1)],
  ['deletePrefix', () => ({ ok: 2n ** 64n - 1n }), (wit) => wit.deletePrefix(bytes('p/'))],
  ['deletePrefix', () => ({ ok: 0n }), (wit) => wit.deletePrefix(new Uint8Array(0))],
  ['deletePrefix', () => ({ err: 'unavailable here' }), (wit) => wit.deletePrefix(bytes('p/'))],
];

function runStateCall(js, name, outcome, call) {
  const answers = {};
  answers[name] = outcome;
  const { state, wit } = instantiateStateful(js, answers);
  let result;
  let error = null;
  try {
    result = call(wit);
  } catch (err) {
    error = `${err.constructor.name}: ${err.message} ${JSON.stringify(err.payload ?? null)}`;
  }
  return { result, error, calls: state.calls, allocs: state.allocs, frees: state.frees, memory: new Uint8Array(state.buffer) };
}

describe('fast state imports', { skip: generatedStateful === null && 'componentize-js is not installed' }, () => {
  it('apply to the bindings componentize-js generates for stateful-processor, and only there', () => {
    const patched = patchStateImports(generatedStateful);
    assert.equal(patched.patched, true, patched.reason);
    assert.equal(patched.stateful, true);
    const none = patchStateImports(generated);
    assert.deepEqual([none.patched, none.stateful, none.js], [false, false, generated]);
    const other = generatedStateful.replace('getUint8(ret + 4, true)', 'getUint8(ret + 5, true)');
    const changed = patchStateImports(other);
    assert.deepEqual([changed.patched, changed.js], [false, other]);
    assert.match(changed.reason, /differs/);
  });

  it('the process export is patched in a stateful build too', () => {
    assert.equal(patchBindings(generatedStateful).patched, true);
  });

  for (const [i, [name, outcome, call]] of STATE_CALLS.entries()) {
    it(`${name} #${i}: the same arguments, result, errors and memory as the generated one`, () => {
      const fast = patchStateImports(generatedStateful).js;
      const gen = runStateCall(generatedStateful, name, outcome, call);
      const got = runStateCall(fast, name, outcome, call);
      assert.deepEqual(got.error, gen.error);
      assert.deepEqual(got.result, gen.result);
      assert.deepEqual(got.calls, gen.calls);
      assert.deepEqual(got.allocs, gen.allocs);
      assert.deepEqual(got.frees, gen.frees);
      assert.deepEqual(got.memory, gen.memory);
    });
  }
});
