// Unit tests of the SDK's pure parts: node --test (no componentize-js needed).

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import {
  Config,
  ConfigError,
  Event,
  Invalid,
  Output,
  ProcessError,
  Retryable,
  __setLogSink,
  debugString,
  formatFloat,
  formatFloatExp,
  jsonType,
  log,
  parseJson,
  toBytes,
  utf8Error,
  wrongType,
} from '../index.js';

const text = (bytes) => new TextDecoder().decode(bytes);
const bytes = (s) => new TextEncoder().encode(s);

function invalid(fn) {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof Invalid, `expected Invalid, got ${err}`);
    assert.equal(err.kind, 'invalid');
    return err.message;
  }
  assert.fail('expected Invalid, nothing was thrown');
}

describe('errors', () => {
  it('kinds and classes', () => {
    const bad = new Invalid('bad');
    assert.ok(bad instanceof ProcessError && bad instanceof Error);
    assert.equal(bad.kind, 'invalid');
    assert.equal(bad.retryable, false);
    assert.equal(bad.message, 'bad');
    assert.equal(String(bad), 'Invalid: bad');
    const later = new Retryable('later');
    assert.equal(later.kind, 'retryable');
    assert.equal(later.retryable, true);
    assert.equal(later.name, 'Retryable');
  });

  it('jsonType and wrongType', () => {
    assert.deepEqual(
      [null, true, 1.5, 'x', [1], { a: 1 }].map(jsonType),
      ['null', 'boolean', 'number', 'string', 'array', 'object'],
    );
    const err = wrongType('order_id', 'a string', 7);
    assert.ok(err instanceof Invalid);
    assert.equal(err.message, 'field `order_id` must be a string, got number');
  });
});

describe('Event', () => {
  const event = Event.create({
    topic: 'orders',
    partition: 3,
    offset: 42,
    timestampMs: 1_732_400_000_000,
    key: 'k',
    value: 'v',
    headers: [['a', '1'], ['b', bytes('2')], ['a', '3']],
  });

  it('accessors', () => {
    assert.equal(event.topic, 'orders');
    assert.equal(event.partition, 3);
    assert.equal(event.offset, 42);
    assert.equal(event.timestampMs, 1_732_400_000_000);
    assert.equal(text(event.key), 'k');
    assert.equal(text(event.value), 'v');
    assert.equal(event.keyString(), 'k');
    assert.equal(event.valueString(), 'v');
    assert.equal(event.isTombstone(), false);
    assert.equal(text(event.header('a')), '1', 'first of repeated names');
    assert.equal(event.headerString('b'), '2');
    assert.equal(event.header('c'), null);
    assert.equal(event.headerString('c'), null);
    assert.equal(event.headers.length, 3);
  });

  it('wraps the raw WIT record lazily (bigint offsets, undefined options)', () => {
    const raw = {
      topic: 't',
      partition: 0,
      offset: 7n,
      timestampMs: undefined,
      key: undefined,
      value: bytes('{"a":1}'),
      headers: [],
    };
    const e = new Event(raw);
    assert.equal(e.offset, 7);
    assert.equal(e.timestampMs, null);
    assert.equal(e.key, null);
    assert.equal(e.keyString(), null);
    assert.deepEqual(e.json(), { a: 1 });
  });

  it('tombstones', () => {
    const tomb = Event.create();
    assert.equal(tomb.isTombstone(), true);
    assert.equal(tomb.value, null);
    assert.equal(invalid(() => tomb.valueString()), 'event has no value (tombstone)');
    assert.equal(invalid(() => tomb.json()), 'event has no value (tombstone)');
  });

  it('valueString rejects bad UTF-8 with the Rust message', () => {
    assert.equal(Event.create({ value: 'héllo' }).valueString(), 'héllo');
    const e = Event.create({ value: new Uint8Array([0xff, 0xfe]) });
    assert.equal(invalid(() => e.valueString()), 'event value is not valid UTF-8: invalid utf-8 sequence of 1 bytes from index 0');
    const h = Event.create({ headers: [['h', new Uint8Array([0x61, 0xc3])]] });
    assert.equal(invalid(() => h.headerString('h')), 'header `h` is not valid UTF-8: incomplete utf-8 byte sequence from index 1');
  });

  it('json', () => {
    assert.deepEqual(Event.create({ value: '{"id":"A-1","amount":2.5}' }).json(), { id: 'A-1', amount: 2.5 });
    for (const bad of ['{not json', '', 'not json', '{"a":1} x', '{"a":1,}', '\ufeff{}']) {
      const message = invalid(() => Event.create({ value: bad }).json());
      assert.match(message, /^event value is not valid JSON: /, bad);
    }
    const notUtf8 = Event.create({ value: new Uint8Array([0x22, 0xff, 0x22]) });
    assert.equal(invalid(() => notUtf8.json()), 'event value is not valid JSON: invalid utf-8 sequence of 1 bytes from index 1');
  });

  it('json refuses what serde_json refuses: f64 overflow, lone surrogates', () => {
    const message = (value) => invalid(() => Event.create({ value }).json());
    assert.equal(message('{"a":1e400}'), 'event value is not valid JSON: number out of range');
    assert.equal(message('[-1E+999]'), 'event value is not valid JSON: number out of range');
    assert.equal(message(`[${'9'.repeat(400)}]`), 'event value is not valid JSON: number out of range');
    assert.equal(message('["\\ud800"]'), 'event value is not valid JSON: lone surrogate in string');
    assert.equal(message('{"\\udc00":1}'), 'event value is not valid JSON: lone surrogate in string');
    // ...but not what it accepts.
    assert.deepEqual(parseJson('[1e308, 1e-400, "\\ud83d\\ude00", "\\u00e9"]'), [1e308, 0, '😀', 'é']);
    assert.deepEqual(parseJson(`[${'9'.repeat(300)}]`), [Number('9'.repeat(300))]);
  });
});

describe('Output', () => {
  it('of: strings, bytes, other views', () => {
    const o = Output.of('v');
    assert.equal(o.valueString(), 'v');
    assert.equal(o.topic, undefined);
    assert.equal(o.key, undefined);
    assert.equal(o.headers, undefined);
    const b = new Uint8Array([1, 2]);
    assert.equal(Output.of(b).value, b, 'bytes are not copied');
    assert.deepEqual([...Output.of(new Uint16Array([0x0201])).value], [1, 2]);
    assert.deepEqual([...Output.of(new Uint8Array([1, 2, 3]).buffer).value], [1, 2, 3]);
    assert.throws(() => Output.of(null), TypeError);
    assert.throws(() => Output.of(42), /must be a string or a Uint8Array, got number/);
  });

  it('json', () => {
    assert.equal(Output.json({ a: 1, b: [true, null] }).valueString(), '{"a":1,"b":[true,null]}');
    assert.equal(Output.json('x').valueString(), '"x"');
    const cyclic = {};
    cyclic.self = cyclic;
    assert.match(invalid(() => Output.json(cyclic)), /^cannot serialize output as JSON: /);
    assert.match(invalid(() => Output.json(1n)), /^cannot serialize output as JSON: /);
    assert.equal(invalid(() => Output.json(undefined)), 'cannot serialize output as JSON: undefined has no JSON form');
  });

  it('forward and tombstone', () => {
    const event = Event.create({ value: 'v', key: 'k', headers: { h: '1' } });
    const f = Output.forward(event);
    assert.equal(f.value, event.value, 'forwarded, not copied');
    assert.equal(f.key, undefined, 'key inherited');
    assert.equal(f.headers, undefined, 'headers inherited');
    assert.equal(Output.forward(Event.create()).value, undefined);
    assert.equal(Output.tombstone().value, undefined);
    assert.equal(Output.tombstone().valueString(), null);
  });

  it('builders set the WIT record fields and chain', () => {
    const o = Output.of('v').toTopic('t').withKey('k').withHeader('a', '1');
    assert.equal(o.topic, 't');
    assert.equal(text(o.key), 'k');
    assert.deepEqual(o.headers.map(([n, v]) => [n, text(v)]), [['a', '1']]);
    assert.throws(() => Output.of('v').toTopic(5), TypeError);
    assert.throws(() => Output.of('v').withHeader(5, 'x'), TypeError);
  });

  it('headers switch to an explicit list', () => {
    const event = Event.create({ value: 'v', headers: [['a', '1'], ['b', '2']] });
    assert.equal(Output.of('v').withHeader('x', '9').headers.length, 1);
    const extended = Output.of('v').withInputHeaders(event).withHeader('x', '9');
    assert.deepEqual(extended.headers.map(([n]) => n), ['a', 'b', 'x']);
    assert.equal(event.headers.length, 2, 'input headers untouched');
    assert.deepEqual(Output.of('v').withoutHeaders().headers, []);
  });
});

describe('log', () => {
  it('goes to the sink (the host import) once set, else stderr', (t) => {
    const lines = [];
    __setLogSink((level, message) => lines.push([level, message]));
    t.after(() => __setLogSink(null));
    log.info('ready');
    log.warn(42);
    log.trace('t');
    log.debug('d');
    log.error('e');
    log.log('info', 'x');
    assert.deepEqual(lines, [
      ['info', 'ready'],
      ['warn', '42'],
      ['trace', 't'],
      ['debug', 'd'],
      ['error', 'e'],
      ['info', 'x'],
    ]);
    assert.throws(() => log.log('loud', 'x'), TypeError);
  });
});

describe('Config', () => {
  const config = Object.fromEntries([['b', '2'], ['a', 'x'], ['f', '1.5'], ['b', '3'], ['t', 'true']]);

  function configError(fn) {
    try {
      fn();
    } catch (err) {
      assert.ok(err instanceof ConfigError);
      return err.message;
    }
    assert.fail('expected ConfigError');
  }

  it('get and require', () => {
    assert.equal(Config.get(config, 'a'), 'x');
    assert.equal(Config.get(config, 'b'), '3', 'last value wins');
    assert.equal(Config.get(config, 'zz'), undefined);
    assert.equal(Config.get(config, 'zz', 'd'), 'd');
    assert.equal(Config.get(config, 'toString', 'd'), 'd', 'own keys only');
    assert.equal(Config.require(config, 'a'), 'x');
    assert.equal(configError(() => Config.require(config, 'field')), 'missing required config key `field`');
  });

  it('number: Rust f64 syntax and messages', () => {
    assert.equal(Config.number(config, 'f'), 1.5);
    assert.equal(Config.number(config, 'zz', 7), 7);
    assert.equal(configError(() => Config.number(config, 'a', 1)), 'config key `a`: invalid value "x": invalid float literal');
    const n = (v) => Config.number({ k: v }, 'k');
    assert.equal(n('+1e1'), 10);
    assert.equal(n('.5'), 0.5);
    assert.equal(n('5.'), 5);
    assert.equal(n('-0'), -0);
    assert.equal(n('inf'), Infinity);
    assert.equal(n('-Infinity'), -Infinity);
    assert.ok(Number.isNaN(n('NaN')));
    assert.equal(n('1e400'), Infinity);
    for (const bad of [' 5', '0x10', '1_000', '.', 'e5', '1e', '--1', 'infinite']) {
      assert.match(configError(() => n(bad)), /: invalid float literal$/, bad);
    }
    assert.equal(configError(() => n('')), 'config key `k`: invalid value "": cannot parse float from empty string');
  });

  it('integer and boolean', () => {
    assert.equal(Config.integer(config, 'b'), 3);
    assert.equal(Config.integer({ k: '-12' }, 'k'), -12);
    assert.equal(Config.integer({ k: '+12' }, 'k'), 12);
    assert.equal(Config.integer(config, 'zz', 9), 9);
    assert.equal(configError(() => Config.integer(config, 'f')), 'config key `f`: invalid value "1.5": invalid digit found in string');
    assert.equal(configError(() => Config.integer({ k: '' }, 'k')), 'config key `k`: invalid value "": cannot parse integer from empty string');
    assert.match(configError(() => Config.integer({ k: '9'.repeat(20) }, 'k')), /number too large to fit in target type$/);
    assert.match(configError(() => Config.integer({ k: `-${'9'.repeat(20)}` }, 'k')), /number too small to fit in target type$/);
    assert.equal(Config.boolean(config, 't'), true);
    assert.equal(Config.boolean({ k: 'false' }, 'k'), false);
    assert.equal(Config.boolean(config, 'zz', true), true);
    assert.equal(configError(() => Config.boolean({ k: 'yes' }, 'k')), 'config key `k`: invalid value "yes": provided string was not `true` or `false`');
  });

  it('debugString quotes like Rust {:?}', () => {
    assert.equal(debugString('lots'), '"lots"');
    assert.equal(debugString('a"b\\c\n\t\r\0\u0001\u007f é'), '"a\\"b\\\\c\\n\\t\\r\\0\\u{1}\\u{7f} é"');
  });
});

describe('Rust-compatible float formatting', () => {
  it('formatFloat is Rust {} for f64', () => {
    const cases = [
      [-1.5, '-1.5'],
      [-1, '-1'],
      [100, '100'],
      [0, '0'],
      [-0, '-0'],
      [0.1, '0.1'],
      [-1e-7, '-0.0000001'],
      [1.5e-10, '0.00000000015'],
      [-1e21, '-1000000000000000000000'],
      [1.2345678901234568e17, '123456789012345680'],
      [123.456, '123.456'],
      [NaN, 'NaN'],
      [Infinity, 'inf'],
      [-Infinity, '-inf'],
    ];
    for (const [x, want] of cases) assert.equal(formatFloat(x), want, String(x));
    assert.equal(formatFloat(1e300), `1${'0'.repeat(300)}`);
  });

  it('formatFloatExp is Rust {:e} for f64', () => {
    const cases = [
      [1e300, '1e300'],
      [1.5e300, '1.5e300'],
      [1.2345678901234568e17, '1.2345678901234568e17'],
      [-1.5e-7, '-1.5e-7'],
      [0, '0e0'],
      [-0, '-0e0'],
      [9.007199254740994e13, '9.007199254740994e13'],
      [Infinity, 'inf'],
    ];
    for (const [x, want] of cases) assert.equal(formatFloatExp(x), want, String(x));
  });
});

describe('bytes', () => {
  it('toBytes', () => {
    assert.deepEqual([...toBytes('é')], [0xc3, 0xa9]);
    assert.throws(() => toBytes({}), TypeError);
  });

  it('utf8Error follows core::str::from_utf8', () => {
    const err = (...b) => utf8Error(new Uint8Array(b));
    assert.equal(err(0x61, 0xc3, 0xa9), null);
    assert.equal(err(0xf0, 0x9f, 0x98, 0x80), null);
    assert.equal(err(0xff), 'invalid utf-8 sequence of 1 bytes from index 0');
    assert.equal(err(0x61, 0x80), 'invalid utf-8 sequence of 1 bytes from index 1');
    assert.equal(err(0xc0, 0x80), 'invalid utf-8 sequence of 1 bytes from index 0', 'overlong lead');
    assert.equal(err(0xe0, 0x80, 0x80), 'invalid utf-8 sequence of 1 bytes from index 0', 'overlong 3-byte');
    assert.equal(err(0xed, 0xa0, 0x80), 'invalid utf-8 sequence of 1 bytes from index 0', 'surrogate');
    assert.equal(err(0xe2, 0x82, 0x41), 'invalid utf-8 sequence of 2 bytes from index 0');
    assert.equal(err(0xf0, 0x9f, 0x98, 0x41), 'invalid utf-8 sequence of 3 bytes from index 0');
    assert.equal(err(0x61, 0xe2, 0x82), 'incomplete utf-8 byte sequence from index 1');
    assert.equal(err(0xf4, 0x90, 0x80, 0x80), 'invalid utf-8 sequence of 1 bytes from index 0', 'above U+10FFFF');
  });
});
