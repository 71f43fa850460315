// Unit tests of the batch loop and the WIT-shaped exports (runtime.js),
// driven with raw records shaped as the componentize-js bindings lift them.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { Invalid, Output, Retryable, log } from '../index.js';
import { bind, describe as describeError } from '../runtime.js';

const enc = new TextEncoder();
const dec = new TextDecoder();

function raw(value) {
  return {
    topic: 'in',
    partition: 0,
    offset: 0n,
    timestampMs: undefined,
    key: undefined,
    value: value === null ? undefined : enc.encode(value),
    headers: [],
  };
}

// What a test can compare: outcomes as [ok values] or "kind: message".
function summary(outcomes) {
  return outcomes.map((o) => {
    if (o.tag === 'ok') return o.val.map((out) => (out.value === undefined ? null : dec.decode(out.value)));
    return `${o.val.tag}: ${o.val.val}`;
  });
}

/** Echoes values, counts events, fails on demand. */
function counter() {
  let seen = 0;
  return {
    init(config) {
      seen = 0;
      if (config.refuse) return config.refuse;
      if (config.throw) throw new Error(config.throw);
      if (config.typo) null.x;
    },
    process(event) {
      seen += 1;
      const value = event.valueString();
      if (value === 'drop') return [];
      if (value === 'retry') throw new Retryable('later');
      if (value === 'bad') throw new Invalid('bad value');
      if (value === 'boom') throw new TypeError('kaboom');
      if (value === 'string') throw 'thrown string';
      if (value === 'notarray') return Output.of('x');
      if (value === 'notoutput') return [{ value: enc.encode('x') }];
      if (value === 'async') return Promise.resolve([Output.of(`async#${seen}`)]);
      if (value === 'async-bad') return Promise.reject(new Invalid('bad later'));
      if (value === 'async-boom') return Promise.reject(new TypeError('kaboom later'));
      return [Output.of(`${value}#${seen}`).toTopic('t')];
    },
  };
}

describe('bind', () => {
  it('lifecycle and batch loop', () => {
    const { init, process } = bind(counter(), () => {});
    const notInit = 'invalid: plugin not initialised';
    assert.deepEqual(summary(process([raw('a'), raw('b')])), [notInit, notInit]);

    assert.deepEqual(init([]), { tag: 'ok', val: undefined });
    const outcomes = process([raw('a'), raw('drop'), raw(null), raw('retry'), raw('bad'), raw('b')]);
    assert.deepEqual(summary(outcomes), [
      ['a#1'],
      [],
      'invalid: event has no value (tombstone)',
      'retryable: later',
      'invalid: bad value',
      ['b#6'],
    ]);
    const out = outcomes[0].val[0];
    assert.equal(out.topic, 't');
    assert.equal(out.key, undefined);
    assert.equal(out.headers, undefined);
    assert.deepEqual(process([]), []);

    // Re-init starts over; a failed re-init leaves the plugin uninitialised.
    assert.equal(init([]).tag, 'ok');
    assert.deepEqual(summary(process([raw('c')])), [['c#1']]);
    assert.deepEqual(init([['refuse', 'no']]), { tag: 'err', val: 'no' });
    assert.deepEqual(summary(process([raw('d')])), [notInit]);
  });

  it('init: config object, refusals', () => {
    let seen;
    const plugin = {
      init(config) {
        seen = config;
      },
      process: () => [],
    };
    const { init } = bind(plugin, () => {});
    init([['a', '1'], ['__proto__', 'p'], ['a', '2']]);
    assert.equal(seen.a, '2', 'last value wins');
    assert.ok(Object.hasOwn(seen, '__proto__'), '__proto__ is a plain key');
    assert.equal(Object.getPrototypeOf(seen), Object.prototype);

    const c = bind(counter(), () => {});
    assert.deepEqual(c.init([['throw', 'nope']]), { tag: 'err', val: 'nope' });
    assert.match(c.init([['typo', '1']]).val, /^TypeError: /);
    const async = bind({ init: async () => {}, process: () => [] }, () => {});
    assert.equal(async.init([]).tag, 'err');
  });

  it('no init export is fine; a default-export object works too', () => {
    const a = bind({ process: () => [Output.of('x')] }, () => {});
    assert.equal(a.init([]).tag, 'ok');
    assert.deepEqual(summary(a.process([raw('v')])), [['x']]);
    const b = bind({ default: { process: () => [] } }, () => {});
    assert.equal(b.init([]).tag, 'ok');
  });

  it('refuses a module without process', () => {
    assert.throws(() => bind({}, () => {}), /must export a function `process\(event\)`/);
    assert.throws(() => bind({ process() {}, init: 5 }, () => {}), /`init` export must be a function/);
  });

  it('other exceptions escape (a trap), with the error name in the message', () => {
    const logged = [];
    const { init, process } = bind(counter(), (level, message) => logged.push(`${level} ${message}`));
    init([]);
    assert.throws(() => process([raw('a'), raw('boom')]), { name: 'Error', message: /^TypeError: kaboom \(at .*runtime\.test\.js:\d+:\d+\)?\)$/ });
    const plain = new Error('plain');
    const p2 = bind({ process() { throw plain; } }, () => {});
    p2.init([]);
    assert.throws(() => p2.process([raw('a')]), (err) => err === plain, 'a plain Error escapes as it is');
    assert.throws(() => process([raw('string')]), { message: 'uncaught exception: thrown string' });
    assert.throws(() => process([raw('notarray')]), { message: 'process must return an array of Output, got Output' });
    assert.throws(() => process([raw('notoutput')]), { message: 'process must return an array of Output, element 0 is Object' });
    assert.match(logged[0], /^error process trapped: TypeError: kaboom \(at /);
    assert.equal(logged[1], 'error process trapped: uncaught exception: thrown string');
  });

  it('an async process is awaited event by event, in order', async () => {
    const { init, process } = bind(counter(), () => {});
    init([]);
    const sync = process([raw('a'), raw('b')]);
    assert.ok(Array.isArray(sync), 'no Promise unless process returns one');
    const pending = process([raw('a'), raw('async'), raw('b'), raw('async-bad'), raw('drop')]);
    assert.equal(typeof pending.then, 'function');
    assert.deepEqual(summary(await pending), [['a#3'], ['async#4'], ['b#5'], 'invalid: bad later', []]);
    await assert.rejects(process([raw('async'), raw('async-boom')]), { message: /^TypeError: kaboom later/ });
  });

  it('logs go to the host import once init ran', () => {
    const lines = [];
    const { init } = bind(
      {
        init() {
          log.info('ready');
        },
        process: () => [],
      },
      (level, message) => lines.push(`${level} ${message}`),
    );
    init([]);
    assert.deepEqual(lines, ['info ready']);
  });

  it('describe', () => {
    assert.equal(describeError(new Error('plain')), 'plain');
    assert.equal(describeError(new Invalid('x')), 'x');
    assert.equal(describeError(new RangeError('r')), 'RangeError: r');
    assert.equal(describeError(42), '42');
  });
});
