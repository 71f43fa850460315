// Unit tests of sluice-sdk/state: the per-event state rule
// (plugins/state-rule.json, its one statement) replayed case by case on the
// in-memory store, through the probe's interpreter that tests/guest_state.rs
// replays it with in the real host
// (plugins/fixtures/state-sdk-probe-js/probe.js); then what the file does
// not state: the host calls the overlay makes, the batch loop, and the
// errors of this SDK's API.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { beforeEach, describe, it } from 'node:test';

import { Event, Invalid, Output, Retryable } from '../index.js';
import { bind } from '../runtime.js';
import * as state from '../state.js';
import { MemoryStore, Overlay, StateError, testing } from '../state.js';
import { usesState } from '../build.mjs';
import { probe } from '../../../fixtures/state-sdk-probe-js/probe.js';

const enc = new TextEncoder();
const dec = new TextDecoder();
const RULE = new URL('../../../state-rule.json', import.meta.url);
const probeProcess = probe({ state, Invalid, Output, Retryable });

/** A string's UTF-8, or {"base64": ...}, as a binary string (one char per byte). */
function ruleBinary(value) {
  return typeof value === 'string' ? String.fromCharCode(...enc.encode(value)) : atob(value.base64);
}

/** The [key, value] entries (binary strings) a {"fill": P, "from": A, "to": B} item stands for, or null. */
function ruleFill(item) {
  if (item === null || typeof item !== 'object' || !Object.hasOwn(item, 'fill')) return null;
  const entries = [];
  for (let i = item.from; i < item.to; i++) entries.push([ruleBinary(`${item.fill}${String(i).padStart(4, '0')}`), String(i)]);
  return entries;
}

/** A state as a Map of binary strings. */
function ruleState(items) {
  const entries = new Map();
  for (const item of items) {
    for (const [key, value] of ruleFill(item) ?? [[ruleBinary(item[0]), ruleBinary(item[1])]]) entries.set(key, value);
  }
  return new Map([...entries].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** A list of keys and fill items, as the probe answers it. */
function ruleKeys(items) {
  const strict = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  return items
    .flatMap((item) => (ruleFill(item) ?? [[ruleBinary(item)]]).map(([key]) => key))
    .map((key) => {
      const bytes = Uint8Array.from(key, (c) => c.charCodeAt(0));
      try {
        return strict.decode(bytes);
      } catch {
        return { base64: btoa(key) };
      }
    });
}

/** The in-memory state as a Map of binary strings. */
function binaryState() {
  const out = new Map();
  for (const [key, value] of testing.state({ raw: true })) {
    out.set(String.fromCharCode(...key), String.fromCharCode(...value));
  }
  return out;
}

/** How the probe ended an event, and its answers. */
function runEvent(request) {
  try {
    const [output] = testing.process(probeProcess, Event.create({ value: enc.encode(request) }));
    return ['ok', JSON.parse(dec.decode(output.value))];
  } catch (err) {
    if (err instanceof Invalid) return ['invalid', JSON.parse(err.message)];
    if (err instanceof Retryable) return ['retryable', JSON.parse(err.message)];
    assert.ok(err.message.startsWith('trap after '), err.message);
    return ['trap', JSON.parse(err.message.slice('trap after '.length))];
  }
}

describe('the state rule (plugins/state-rule.json)', () => {
  beforeEach(() => testing.reset());

  it('every case, answer and state', () => {
    const { cases } = JSON.parse(readFileSync(RULE, 'utf8'));
    assert.ok(cases.length > 0);
    for (const testCase of cases) {
      testing.setState([...ruleState(testCase.state)].map(([k, v]) => [Uint8Array.from(k, (c) => c.charCodeAt(0)), Uint8Array.from(v, (c) => c.charCodeAt(0))]));
      testCase.events.forEach((event, i) => {
        const at = `${testCase.name}, event ${i + 1}`;
        const commands = event.run.map(([command]) => command);
        const [end, answers] = runEvent(JSON.stringify({ run: commands, end: event.end }));
        assert.equal(end, event.end, at);
        assert.equal(answers.length, commands.length, at);
        event.run.forEach(([command, want], j) => {
          const got = answers[j];
          if (command[0] === 'keys' || command[0] === 'next') want = ruleKeys(want);
          if (want !== null && typeof want === 'object' && Object.hasOwn(want, 'invalid')) {
            // A failed JSON read: the rest is the parser's words.
            assert.ok(got?.invalid?.startsWith(want.invalid), `${at}: ${JSON.stringify(command)} -> ${JSON.stringify(got)}`);
          } else {
            assert.deepEqual(got, want, `${at}: ${JSON.stringify(command)}`);
          }
        });
        assert.deepEqual(binaryState(), ruleState(event.state), `${at}: the state after it`);
      });
    }
  });
});

/** A store that records the calls it gets. */
class Recording extends MemoryStore {
  constructor(entries = []) {
    super();
    for (const [k, v] of entries) this.map.set(k, enc.encode(v));
    this.calls = [];
  }
  get(key) {
    this.calls.push(`get ${key}`);
    return super.get(key);
  }
  set(key, value) {
    this.calls.push(`set ${key}=${dec.decode(value)}`);
    super.set(key, value);
  }
  delete(key) {
    this.calls.push(`delete ${key}`);
    super.delete(key);
  }
  exists(key) {
    this.calls.push(`exists ${key}`);
    return super.exists(key);
  }
  listKeys(prefix, cursor, limit) {
    this.calls.push(`list ${prefix} after ${cursor} limit ${limit}`);
    return super.listKeys(prefix, cursor, limit);
  }
  deletePrefix(prefix) {
    this.calls.push(`delete_prefix ${prefix}`);
    return super.deletePrefix(prefix);
  }
  entries() {
    return [...this.map].map(([k, v]) => [k, dec.decode(v)]).sort();
  }
}

const allKeys = (overlay, store, prefix, page) => [...overlay.keys(store, prefix, page)];

describe('Overlay: the host calls behind the rule', () => {
  it('only reads of keys the event did not write reach the host; commit sends the writes in key order', () => {
    const store = new Recording([['a', '1'], ['b', '2']]);
    const o = new Overlay();
    o.set('a', enc.encode('10'));
    o.delete('b');
    o.set('c', enc.encode('3'));
    for (const key of ['a', 'b', 'c', 'z']) {
      o.get(store, key);
      o.exists(store, key);
    }
    assert.deepEqual(store.calls, ['get z', 'exists z']);
    assert.equal(store.map.size, 2, 'nothing written yet');
    store.calls.length = 0;
    o.commit(store);
    assert.deepEqual(store.calls, ['set a=10', 'delete b', 'set c=3']);
  });

  it('keys merge the host pages with the writes at any page size', () => {
    const store = new Recording(['k/1', 'k/2', 'k/3', 'k/5', 'k/6', 'other'].map((k) => [k, '']));
    const o = new Overlay();
    o.delete('k/2');
    o.set('k/4', new Uint8Array());
    o.set('k/5', new Uint8Array());
    o.set('k/7', new Uint8Array());
    o.delete('k/8');
    o.set('l', new Uint8Array());
    for (const page of [1, 2, 3, 100]) {
      assert.deepEqual(allKeys(o, store, 'k/', page), ['k/1', 'k/3', 'k/4', 'k/5', 'k/6', 'k/7'], `page ${page}`);
    }
    store.calls.length = 0;
    allKeys(o, store, 'k/', 2);
    assert.deepEqual(
      store.calls,
      ['list k/ after undefined limit 2', 'list k/ after k/2 limit 2', 'list k/ after k/5 limit 2'],
      'pages follow the cursor; a short page ends the listing',
    );
  });

  it('a prefix deletion is sent before the later writes', () => {
    const store = new Recording([['p/1', 'a'], ['p/2', 'b'], ['q', 'c']]);
    const o = new Overlay();
    o.set('p/3', enc.encode('new'));
    o.deletePrefix(store, 'p/');
    o.set('p/2', enc.encode('again'));
    store.calls.length = 0;
    o.commit(store);
    assert.deepEqual(store.calls, ['delete_prefix p/', 'set p/2=again']);
  });

  it('a wider prefix deletion replaces a narrower one; an empty overlay commits nothing', () => {
    const store = new Recording([['ab/1', ''], ['ac', '']]);
    const o = new Overlay();
    o.deletePrefix(store, 'ab');
    o.deletePrefix(store, 'a');
    store.calls.length = 0;
    o.commit(store);
    assert.deepEqual(store.calls, ['delete_prefix a']);
    const empty = new Overlay();
    assert.equal(empty.empty, true);
    store.calls.length = 0;
    empty.commit(store);
    assert.deepEqual(store.calls, []);
  });
});

describe('sluice-sdk/state', () => {
  beforeEach(() => testing.reset());

  it('JSON helpers in JavaScript', () => {
    testing.withEvent(() => {
      assert.throws(() => state.setJson('big', 1n), (err) => err instanceof Invalid && err.message.startsWith('cannot serialize state value as JSON: '));
      assert.throws(() => state.setJson('fn', () => 1), { message: 'cannot serialize state value as JSON: function has no JSON form' });
      assert.equal(state.exists('big'), false);
      assert.equal(state.exists('fn'), false);
    });
    assert.equal(testing.state().size, 0);
  });

  it('outside an event, state throws StateError', () => {
    assert.throws(() => state.set('k', 'v'), (err) =>
      err instanceof StateError &&
      err.message === 'sluice-sdk/state set: state is only available while an event is processed (in `process`, not in `init`); in tests, run the event with `testing.process` from sluice-sdk/state');
    assert.throws(() => testing.withEvent(() => state.get(1)), /a state key must be a string or a Uint8Array, got number/);
  });

  it('keys do not outlive their event', () => {
    testing.setState({ k: '' });
    const keys = testing.withEvent(() => state.keys(''));
    assert.throws(() => testing.withEvent(() => keys.next()), /advanced after the event it was created in/);
  });

  it('keyStrings decodes the keys', () => {
    testing.setState({ 'a/1': '', 'a/2': '', b: '' });
    assert.deepEqual(testing.withEvent(() => state.keyStrings('a/')), ['a/1', 'a/2']);
  });

  it('an async process keeps its overlay until its Promise settles', async () => {
    const outputs = await testing.process(async (event) => {
      state.set('k', 'v');
      await null;
      assert.equal(dec.decode(state.get('k')), 'v');
      return [new Output(enc.encode(event.valueString()))];
    }, Event.create({ value: 'x' }));
    assert.equal(outputs.length, 1);
    await assert.rejects(testing.process(async () => {
      state.set('gone', 'v');
      await null;
      throw new Invalid('no');
    }, Event.create({ value: 'y' })));
    assert.deepEqual([...testing.state()], [['k', 'v']]);
  });
});

describe('the batch loop with state', () => {
  beforeEach(() => testing.reset());

  const raw = (run, end = 'ok') => ({
    topic: 'in', partition: 0, offset: 0n, timestampMs: undefined, key: undefined,
    value: enc.encode(JSON.stringify({ run, end })), headers: [],
  });

  it('applies or discards per event', () => {
    const { init, process } = bind({ process: probeProcess }, () => {});
    assert.deepEqual(init([]), { tag: 'ok', val: undefined });
    const outcomes = process([
      raw([['set', 'a', '1']]),
      raw([['set', 'b', '2']], 'retryable'),
      raw([['set', 'a', '3']]),
      raw([['delete_prefix', '']]),
    ]);
    const summary = outcomes.map((o) => (o.tag === 'ok' ? dec.decode(o.val[0].value) : `${o.val.tag}: ${o.val.val}`));
    // The last event saw the first and third events' writes, not the second's.
    assert.deepEqual(summary, ['[null]', 'retryable: [null]', '[null]', '[1]']);
    assert.equal(testing.state().size, 0);
  });

  it('state in init refuses the plugin', () => {
    const { init } = bind({ init: () => state.get('k'), process: probeProcess }, () => {});
    const refused = init([]);
    assert.equal(refused.tag, 'err');
    assert.match(refused.val, /^StateError: sluice-sdk\/state get: state is only available/);
  });
});

describe('build: usesState', () => {
  it('looks for sluice-sdk/state among the bundle\'s inputs', () => {
    const sdk = new URL('..', import.meta.url).pathname;
    assert.equal(usesState({ inputs: { [`${sdk}state.js`]: {}, [`${sdk}index.js`]: {} } }, '/'), true);
    assert.equal(usesState({ inputs: { [`${sdk}index.js`]: {}, 'app/state.js': {} } }, '/'), false);
  });
});
