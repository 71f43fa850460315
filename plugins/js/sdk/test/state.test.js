// Unit tests of sluice-sdk/state: the per-event overlay, the public API on
// the in-memory store, and the batch loop's apply-or-discard per event.

import assert from 'node:assert/strict';
import { beforeEach, describe, it } from 'node:test';

import { Event, Invalid, Output, Retryable } from '../index.js';
import { bind } from '../runtime.js';
import * as state from '../state.js';
import { MemoryStore, Overlay, StateError, testing } from '../state.js';
import { usesState } from '../build.mjs';

const enc = new TextEncoder();
const dec = new TextDecoder();
const b = (s) => s; // keys are binary strings inside the overlay; ASCII here

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

describe('Overlay', () => {
  it('reads see the event\'s writes and only commit reaches the host', () => {
    const store = new Recording([['a', '1'], ['b', '2']]);
    const o = new Overlay();
    o.set(b('a'), enc.encode('10'));
    o.delete(b('b'));
    o.set(b('c'), enc.encode('3'));
    assert.equal(dec.decode(o.get(store, 'a')), '10');
    assert.equal(o.get(store, 'b'), undefined);
    assert.equal(o.exists(store, 'b'), false);
    assert.equal(o.exists(store, 'c'), true);
    assert.equal(o.get(store, 'z'), undefined);
    assert.deepEqual(store.calls, ['get z'], 'only the key the event did not write');
    assert.equal(store.map.size, 2, 'nothing written yet');
    store.calls.length = 0;
    o.commit(store);
    assert.deepEqual(store.calls, ['set a=10', 'delete b', 'set c=3']);
    assert.deepEqual(store.entries(), [['a', '10'], ['c', '3']]);
  });

  it('keys merge the host pages with the writes', () => {
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
    assert.deepEqual(store.calls, [
      'list k/ after undefined limit 2',
      'list k/ after k/2 limit 2',
      'list k/ after k/5 limit 2',
    ]);
    assert.equal(allKeys(o, store, '', 2).length, 8);
    assert.deepEqual(allKeys(o, store, 'none', 2), []);
  });

  it('delete_prefix counts, hides, and is applied before later writes', () => {
    const store = new Recording([['p/1', 'a'], ['p/2', 'b'], ['q', 'c']]);
    const o = new Overlay();
    o.set('p/3', enc.encode('new'));
    o.delete('p/1');
    assert.equal(o.deletePrefix(store, 'p/'), 2);
    assert.equal(o.get(store, 'p/2'), undefined);
    assert.equal(o.exists(store, 'p/3'), false);
    assert.deepEqual(allKeys(o, store, 'p', 2), []);
    assert.equal(o.deletePrefix(store, 'p/'), 0);
    o.set('p/2', enc.encode('again'));
    assert.equal(dec.decode(o.get(store, 'p/2')), 'again');
    assert.deepEqual(allKeys(o, store, '', 2), ['p/2', 'q']);
    store.calls.length = 0;
    o.commit(store);
    assert.deepEqual(store.calls, ['delete_prefix p/', 'set p/2=again']);
    assert.deepEqual(store.entries(), [['p/2', 'again'], ['q', 'c']]);
  });

  it('a wider prefix deletion replaces a narrower one; an empty overlay commits nothing', () => {
    const store = new Recording([['ab/1', ''], ['ac', '']]);
    const o = new Overlay();
    assert.equal(o.deletePrefix(store, 'ab'), 1);
    assert.equal(o.deletePrefix(store, 'a'), 1);
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

/** Sets from `key=value`, deletes from `-key`, clears from `*prefix`; fails (after writing) on a trailing `!`. */
function writer(event) {
  let command = event.valueString();
  const fail = command.endsWith('!');
  if (fail) command = command.slice(0, -1);
  let out;
  if (command.startsWith('-')) {
    state.delete(command.slice(1));
    out = `deleted ${command.slice(1)}`;
  } else if (command.startsWith('*')) {
    out = `cleared ${state.deletePrefix(command.slice(1))}`;
  } else {
    const [key, value] = command.split('=');
    state.set(key, value);
    out = `${key}=${dec.decode(state.get(key))}`;
  }
  if (fail) throw new Retryable('asked to fail');
  return [new Output(enc.encode(out))];
}

function runOne(command) {
  try {
    return dec.decode(testing.process(writer, Event.create({ value: command }))[0].value);
  } catch (err) {
    if (err instanceof Retryable) return `retryable: ${err.message}`;
    throw err;
  }
}

describe('sluice-sdk/state', () => {
  beforeEach(() => testing.reset());

  it('failed events leave no trace', () => {
    testing.setState({ a: '1', 'b/1': '2', 'b/2': '3' });
    for (const command of ['a=9!', '-a!', '*b/!']) assert.equal(runOne(command), 'retryable: asked to fail');
    assert.deepEqual([...testing.state()], [['a', '1'], ['b/1', '2'], ['b/2', '3']]);
    assert.equal(runOne('a=9'), 'a=9');
    assert.equal(runOne('*b/'), 'cleared 2');
    assert.equal(runOne('-a'), 'deleted a');
    assert.equal(runOne('c=1'), 'c=1');
    assert.deepEqual([...testing.state()], [['c', '1']]);
  });

  it('keys, exists, and bytes keys', () => {
    testing.setState([['account/ACC-2', '20'], ['config/x', '1'], [new Uint8Array([0xff]), 'x']]);
    const keys = testing.withEvent(() => {
      state.set('account/ACC-1', '10');
      assert.equal(state.exists(enc.encode('account/ACC-1')), true);
      assert.equal(state.exists('nope'), false);
      assert.deepEqual([...state.keys(new Uint8Array([0xff]))], [new Uint8Array([0xff])]);
      return state.keyStrings('account/');
    });
    assert.deepEqual(keys, ['account/ACC-1', 'account/ACC-2']);
    assert.equal(testing.state().size, 4);
  });

  it('JSON helpers', () => {
    testing.setState([['bad', '{'], [new Uint8Array([0xff]), 'nan']]);
    testing.withEvent(() => {
      assert.equal(state.getJson('none'), undefined);
      state.setJson('acc', { cents: 5, name: 'é' });
      assert.deepEqual(state.getJson('acc'), { cents: 5, name: 'é' });
      assert.throws(() => state.getJson('bad'), (err) => err instanceof Invalid && err.message.startsWith('state value of key `bad` is not the expected JSON: '));
      assert.throws(() => state.getJson(new Uint8Array([0xff])), /state value of key `\\xff` is not the expected JSON/);
      assert.throws(() => state.setJson('big', 1n), (err) => err instanceof Invalid && err.message.startsWith('cannot serialize state value as JSON: '));
      assert.throws(() => state.setJson('fn', () => 1), { message: 'cannot serialize state value as JSON: function has no JSON form' });
      assert.equal(state.exists('big'), false);
    });
    assert.equal(testing.state().get('acc'), '{"cents":5,"name":"é"}');
  });

  it('outside an event, state throws StateError', () => {
    assert.throws(() => state.set('k', 'v'), (err) =>
      err instanceof StateError &&
      err.message === 'sluice-sdk/state set: state is only available while an event is processed (in `process`, not in `init`); in tests, run the event with `testing.process` from sluice-sdk/state');
    assert.throws(() => testing.withEvent(() => state.get(1)), /a state key must be a string or a Uint8Array, got number/);
  });

  it('keys snapshot the event\'s writes when called', () => {
    const keys = testing.withEvent(() => {
      state.set('k/1', '');
      const iterator = state.keys('k/');
      state.set('k/2', ''); // after the call: not in this listing
      return [...iterator].map((k) => dec.decode(k));
    });
    assert.deepEqual(keys, ['k/1']);
  });

  it('keys do not outlive their event', () => {
    testing.setState({ k: '' });
    const keys = testing.withEvent(() => state.keys(''));
    assert.throws(() => testing.withEvent(() => keys.next()), /advanced after the event it was created in/);
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

  it('applies or discards per event', () => {
    const raw = (v) => ({ topic: 'in', partition: 0, offset: 0n, timestampMs: undefined, key: undefined, value: enc.encode(v), headers: [] });
    const { init, process } = bind({ process: writer }, () => {});
    assert.deepEqual(init([]), { tag: 'ok', val: undefined });
    const outcomes = process(['a=1', 'b=2!', 'a=3', '*'].map(raw));
    const summary = outcomes.map((o) => (o.tag === 'ok' ? dec.decode(o.val[0].value) : `${o.val.tag}: ${o.val.val}`));
    // The last event saw the first and third events' writes, not the second's.
    assert.deepEqual(summary, ['a=1', 'retryable: asked to fail', 'a=3', 'cleared 1']);
    assert.equal(testing.state().size, 0);
  });

  it('state in init refuses the plugin', () => {
    const { init } = bind({ init: () => state.get('k'), process: writer }, () => {});
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
