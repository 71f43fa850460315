// sluice-sdk: write Sluice plugins in JavaScript.
//
// The author's module exports `process(event)` (and optionally
// `init(config)`); `runtime.js` wraps them into the WIT exports of the
// `sluice:plugin/processor` world, and `build.mjs` turns the whole into a
// component. This file is pure JavaScript with no import of the host, so it
// runs (and is unit-tested) under plain node too.
//
// Hot-path rules, because the plugin runs in an interpreter (no JIT):
// - an `Event` is one object wrapping the raw WIT record; every accessor is
//   lazy (bytes are decoded only when asked for);
// - an `Output` *is* the WIT `output` record (fields `topic`, `key`,
//   `value`, `headers`), so the runtime hands it to the bindings as is;
// - one TextEncoder and one TextDecoder for the whole instance.

const encoder = new TextEncoder();
// `fatal`: invalid UTF-8 is an error, not U+FFFD. `ignoreBOM`: a leading
// BOM stays in the text, so `json()` rejects it as serde_json does.
const strictDecoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

// ---------------------------------------------------------------------------
// Errors

/**
 * Why one event could not be processed. Throw a subclass from `process`:
 * `Invalid` (dead-lettered at once) or `Retryable` (retried with backoff).
 */
export class ProcessError extends Error {
  /** Whether the host will retry the event. */
  get retryable() {
    return this.kind === 'retryable';
  }
}
ProcessError.prototype.name = 'ProcessError';
ProcessError.prototype.kind = 'invalid';

/** A permanent failure: the event goes to the dead-letter topic with the message. */
export class Invalid extends ProcessError {}
Invalid.prototype.name = 'Invalid';
Invalid.prototype.kind = 'invalid';

/** A transient failure: the host retries the event with backoff, then dead-letters it. */
export class Retryable extends ProcessError {}
Retryable.prototype.name = 'Retryable';
Retryable.prototype.kind = 'retryable';

/**
 * An error from a `Config` lookup; its message names the key. Thrown from
 * `init`, it refuses the plugin with that message.
 */
export class ConfigError extends Error {}
ConfigError.prototype.name = 'ConfigError';

/**
 * The JSON type of a parsed value, for messages: `null`, `boolean`,
 * `number`, `string`, `array` or `object`.
 */
export function jsonType(value) {
  if (value === null) return 'null';
  const type = typeof value;
  if (type === 'object') return Array.isArray(value) ? 'array' : 'object';
  return type; // boolean, number, string (or a non-JSON type's own name)
}

/**
 * `Invalid` for a JSON field of the wrong type:
 * ``field `FIELD` must be EXPECTED, got TYPE``.
 */
export function wrongType(field, expected, got) {
  return new Invalid(`field \`${field}\` must be ${expected}, got ${jsonType(got)}`);
}

// ---------------------------------------------------------------------------
// Bytes and text

/** `value` as bytes: strings are UTF-8 encoded; Uint8Arrays are used as they are. */
export function toBytes(value, what = 'value') {
  if (typeof value === 'string') return encoder.encode(value);
  if (value instanceof Uint8Array) return value;
  if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  throw new TypeError(`${what} must be a string or a Uint8Array, got ${value === null ? 'null' : typeof value}`);
}

/**
 * Rust's `Utf8Error` text for `bytes`, e.g. `invalid utf-8 sequence of 1
 * bytes from index 0`, or `null` if the bytes are valid UTF-8. Follows
 * `core::str::from_utf8` exactly (`valid_up_to`, `error_len`).
 */
export function utf8Error(bytes) {
  const n = bytes.length;
  let i = 0;
  while (i < n) {
    const b = bytes[i];
    if (b < 0x80) {
      i++;
      continue;
    }
    const start = i;
    let width;
    if (b >= 0xc2 && b <= 0xdf) width = 2;
    else if (b >= 0xe0 && b <= 0xef) width = 3;
    else if (b >= 0xf0 && b <= 0xf4) width = 4;
    else return `invalid utf-8 sequence of 1 bytes from index ${start}`;
    // The second byte's range depends on the first (no overlongs, no
    // surrogates, nothing above U+10FFFF); the others are 80..BF.
    let lo = 0x80;
    let hi = 0xbf;
    if (b === 0xe0) lo = 0xa0;
    else if (b === 0xed) hi = 0x9f;
    else if (b === 0xf0) lo = 0x90;
    else if (b === 0xf4) hi = 0x8f;
    for (let k = 1; k < width; k++) {
      if (start + k >= n) return `incomplete utf-8 byte sequence from index ${start}`;
      const c = bytes[start + k];
      const ok = k === 1 ? c >= lo && c <= hi : c >= 0x80 && c <= 0xbf;
      if (!ok) return `invalid utf-8 sequence of ${k} bytes from index ${start}`;
    }
    i = start + width;
  }
  return null;
}

function decodeStrict(bytes, what) {
  try {
    return strictDecoder.decode(bytes);
  } catch {
    throw new Invalid(`${what} is not valid UTF-8: ${utf8Error(bytes) ?? 'invalid utf-8'}`);
  }
}

// JSON.parse accepts two things serde_json (the Rust SDK's parser) rejects:
// numbers that overflow f64 (JSON.parse gives Infinity) and escaped lone
// surrogates ("\ud800"). Both need a telltale in the text: an exponent of
// three or more digits, 309 digits in a row, or a `\u` escape. The full
// check (a second parse with a reviver) runs only when one of these cheap
// scans finds one. (One regex with all three alternatives costs ~10x more
// in the interpreter than these separate scans.)
const BIG_EXPONENT = /[eE]\+?\d\d\d/;
const LONG_DIGITS = /\d{309}/;

function suspicious(text) {
  return BIG_EXPONENT.test(text) || text.includes('\\u') || (text.length >= 309 && LONG_DIGITS.test(text));
}

function strictReviver(key, value) {
  if (typeof value === 'number') {
    if (value === Infinity || value === -Infinity) throw new SyntaxError('number out of range');
  } else if (typeof value === 'string') {
    if (!isWellFormed(value)) throw new SyntaxError('lone surrogate in string');
  }
  if (!isWellFormed(key)) throw new SyntaxError('lone surrogate in string');
  return value;
}

function isWellFormed(s) {
  if (typeof s.isWellFormed === 'function') return s.isWellFormed();
  return !/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(s);
}

/**
 * Parses JSON text as the Rust SDK does: `JSON.parse`, plus serde_json's
 * refusals of out-of-range numbers and lone surrogates. Throws `Invalid`
 * (``event value is not valid JSON: …``) with the parser's message.
 */
export function parseJson(text, what = 'event value') {
  let value;
  try {
    value = JSON.parse(text);
    if (suspicious(text)) JSON.parse(text, strictReviver);
  } catch (err) {
    throw new Invalid(`${what} is not valid JSON: ${err.message}`);
  }
  return value;
}

// ---------------------------------------------------------------------------
// Event

const TOMBSTONE = 'event has no value (tombstone)';

/**
 * One consumed Kafka record. Built by the runtime around the raw WIT record;
 * use `Event.create` in tests.
 */
export class Event {
  /** @param raw the WIT `event` record, as the bindings lift it. */
  constructor(raw) {
    this._raw = raw;
  }

  /**
   * A test event. `value`/`key` and header values may be strings (UTF-8
   * encoded) or Uint8Arrays; `value: null` (or leaving it out) is a
   * tombstone. Defaults: topic "", partition 0, offset 0, no timestamp, key
   * or headers.
   */
  static create({ topic = '', partition = 0, offset = 0, timestampMs = null, key = null, value = null, headers = [] } = {}) {
    return new Event({
      topic: String(topic),
      partition,
      offset: BigInt(offset),
      timestampMs: timestampMs == null ? undefined : BigInt(timestampMs),
      key: key == null ? undefined : toBytes(key, 'key'),
      value: value == null ? undefined : toBytes(value, 'value'),
      headers: headersFrom(headers),
    });
  }

  /** The topic the record was read from. */
  get topic() {
    return this._raw.topic;
  }
  /** The partition the record was read from. */
  get partition() {
    return this._raw.partition;
  }
  /** The record's offset within its partition (a number). */
  get offset() {
    return Number(this._raw.offset);
  }
  /** Milliseconds since the Unix epoch, or null if the record has none. */
  get timestampMs() {
    const t = this._raw.timestampMs;
    return t === undefined || t === null ? null : Number(t);
  }
  /** The key bytes, or null for a record without a key. */
  get key() {
    return this._raw.key ?? null;
  }
  /** The value bytes, or null for a tombstone. */
  get value() {
    return this._raw.value ?? null;
  }
  /** All headers as `[name, bytes]` pairs, in record order (names may repeat). Do not modify. */
  get headers() {
    return this._raw.headers;
  }
  /** Whether the record is a tombstone (has no value). */
  isTombstone() {
    return this._raw.value == null;
  }

  /** The value as text; throws `Invalid` for a tombstone or a value that is not UTF-8. */
  valueString() {
    const value = this._raw.value;
    if (value == null) throw new Invalid(TOMBSTONE);
    return decodeStrict(value, 'event value');
  }

  /** The key as text, or null without a key; throws `Invalid` if it is not UTF-8. */
  keyString() {
    const key = this._raw.key;
    return key == null ? null : decodeStrict(key, 'event key');
  }

  /**
   * The value parsed as JSON; throws `Invalid` for a tombstone or a value
   * that is not JSON (``event value is not valid JSON: …``).
   */
  json() {
    const value = this._raw.value;
    if (value == null) throw new Invalid(TOMBSTONE);
    let text;
    try {
      text = strictDecoder.decode(value);
    } catch {
      throw new Invalid(`event value is not valid JSON: ${utf8Error(value) ?? 'invalid utf-8'}`);
    }
    return parseJson(text);
  }

  /** The value of the first header called `name`, or null. */
  header(name) {
    const headers = this._raw.headers;
    for (let i = 0; i < headers.length; i++) {
      if (headers[i][0] === name) return headers[i][1];
    }
    return null;
  }

  /** `header(name)` as text, or null; throws `Invalid` if it is not UTF-8. */
  headerString(name) {
    const value = this.header(name);
    return value === null ? null : decodeStrict(value, `header \`${name}\``);
  }
}

function headersFrom(headers) {
  const list = Array.isArray(headers) ? headers : Object.entries(headers);
  return list.map(([name, value]) => [String(name), toBytes(value, `header \`${name}\``)]);
}

// ---------------------------------------------------------------------------
// Output

/**
 * One record to write. Unset fields are inherited from the input event by
 * the host: topic → the pipeline's result topic, key → the input's key,
 * headers → the input's headers. The first header call switches to an
 * explicit list, written exactly as built.
 *
 * The builder methods change the output and return it (no copies).
 * The four fields are the WIT `output` record; treat them as read-only.
 */
export class Output {
  constructor(value) {
    // Only `value` is an own property from the start: `topic`, `key` and
    // `headers` default to undefined on the prototype (one store per output
    // instead of four; the bindings read all four alike).
    this.value = value;
  }

  /** An output whose value is `value` (a string, UTF-8 encoded, or bytes). */
  static of(value) {
    return new Output(toBytes(value, 'Output.of(value)'));
  }

  /** An output whose value is `JSON.stringify(value)`; `Invalid` if it has no JSON form. */
  static json(value) {
    let text;
    try {
      text = JSON.stringify(value);
    } catch (err) {
      throw new Invalid(`cannot serialize output as JSON: ${err.message}`);
    }
    if (text === undefined) {
      throw new Invalid(`cannot serialize output as JSON: ${typeof value} has no JSON form`);
    }
    return new Output(encoder.encode(text));
  }

  /** The input event's value passed on unchanged (a tombstone stays one); key and headers inherited. */
  static forward(event) {
    return new Output(event._raw.value ?? undefined);
  }

  /** A tombstone (no value): deletes the key in a compacted topic. */
  static tombstone() {
    return new Output(undefined);
  }

  /** Writes to `topic` (which the pipeline must allow) instead of the result topic. */
  toTopic(topic) {
    if (typeof topic !== 'string') throw new TypeError(`toTopic(topic) needs a string, got ${typeof topic}`);
    this.topic = topic;
    return this;
  }

  /** Sets the key (a string or bytes) instead of inheriting the input's. */
  withKey(key) {
    this.key = toBytes(key, 'withKey(key)');
    return this;
  }

  /** Appends a header to the explicit list (see the class docs). */
  withHeader(name, value) {
    if (typeof name !== 'string') throw new TypeError(`withHeader(name) needs a string, got ${typeof name}`);
    (this.headers ??= []).push([name, toBytes(value, `header \`${name}\``)]);
    return this;
  }

  /** Appends all of `event`'s headers to the explicit list; call before `withHeader` to add to them. */
  withInputHeaders(event) {
    const list = (this.headers ??= []);
    const input = event._raw.headers;
    for (let i = 0; i < input.length; i++) list.push(input[i]);
    return this;
  }

  /** Writes no headers at all instead of inheriting the input's. */
  withoutHeaders() {
    this.headers = [];
    return this;
  }

  /** The value as text (for tests), or null for a tombstone. */
  valueString() {
    return this.value == null ? null : new TextDecoder().decode(this.value);
  }
}

/** Destination topic; undefined for the pipeline's result topic. */
Output.prototype.topic = undefined;
/** Key bytes; undefined inherits the input's key. */
Output.prototype.key = undefined;
/** Explicit `[name, bytes]` list; undefined inherits the input's headers. */
Output.prototype.headers = undefined;

// ---------------------------------------------------------------------------
// Logging

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error'];
let sink = null;

function write(level, message) {
  const text = typeof message === 'string' ? message : String(message);
  if (sink !== null) sink(level, text);
  else console.error(`[plugin ${level}] ${text}`);
}

/**
 * Logging through the host: lines land in the host's log tagged with the
 * pipeline and plugin. Before the first `init` (at module top level, which
 * runs at build time) and under plain node, lines go to stderr instead.
 */
export const log = Object.freeze({
  log(level, message) {
    if (!LEVELS.includes(level)) throw new TypeError(`log level must be one of ${LEVELS.join(', ')}, got ${level}`);
    write(level, message);
  },
  trace: (message) => write('trace', message),
  debug: (message) => write('debug', message),
  info: (message) => write('info', message),
  warn: (message) => write('warn', message),
  error: (message) => write('error', message),
});

// Set by `sluice-sdk/state` when the plugin imports it: runs one event's
// handler inside an overlay of its state writes (`runEvent`). The runtime
// calls a stateless plugin's `process` directly.
let stateRunner = null;

/** For sluice-sdk/state: registers its per-event runner. */
export function __setStateRunner(fn) {
  stateRunner = fn;
}

/** For the runtime: the per-event state runner, or null for a stateless plugin. */
export function __stateRunner() {
  return stateRunner;
}

/** For the runtime: where log lines go (the host import), or null for stderr. */
export function __setLogSink(fn) {
  sink = fn;
}

// ---------------------------------------------------------------------------
// Config

const FLOAT = /^[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf|infinity|nan)$/i;
const INTEGER = /^[+-]?\d+$/;

function invalidValue(key, value, reason) {
  return new ConfigError(`config key \`${key}\`: invalid value ${debugString(value)}: ${reason}`);
}

/** Parses `text` as Rust's `f64::from_str` does; returns the number or a Rust error text. */
export function parseFloatStrict(text) {
  if (text === '') return { error: 'cannot parse float from empty string' };
  if (!FLOAT.test(text)) return { error: 'invalid float literal' };
  const lower = text.toLowerCase();
  const sign = lower.startsWith('-') ? -1 : 1;
  const body = lower.replace(/^[+-]/, '');
  if (body === 'nan') return { value: NaN };
  if (body === 'inf' || body === 'infinity') return { value: sign * Infinity };
  return { value: Number(text.replace(/^\+/, '')) };
}

/**
 * Lookups in the plain `config` object `init` receives. Errors are
 * `ConfigError`s whose messages name the key, worded as the Rust SDK's
 * `Config`; throw them (or let them escape) from `init` to refuse.
 */
export const Config = Object.freeze({
  /** The value of `key`, or `fallback` (default undefined) if it is not set. */
  get(config, key, fallback = undefined) {
    return Object.hasOwn(config, key) ? config[key] : fallback;
  },

  /** The value of `key`; ``missing required config key `KEY` `` if it is not set. */
  require(config, key) {
    if (!Object.hasOwn(config, key)) throw new ConfigError(`missing required config key \`${key}\``);
    return config[key];
  },

  /** `key` as a number (Rust `f64` syntax, so `inf` and `NaN` parse), or `fallback`. */
  number(config, key, fallback = undefined) {
    if (!Object.hasOwn(config, key)) return fallback;
    const parsed = parseFloatStrict(config[key]);
    if ('error' in parsed) throw invalidValue(key, config[key], parsed.error);
    return parsed.value;
  },

  /** `key` as a safe integer (Rust integer syntax), or `fallback`. */
  integer(config, key, fallback = undefined) {
    if (!Object.hasOwn(config, key)) return fallback;
    const text = config[key];
    if (text === '') throw invalidValue(key, text, 'cannot parse integer from empty string');
    if (!INTEGER.test(text)) throw invalidValue(key, text, 'invalid digit found in string');
    const value = Number(text);
    if (!Number.isSafeInteger(value)) {
      const which = value < 0 ? 'small' : 'large';
      throw invalidValue(key, text, `number too ${which} to fit in target type`);
    }
    return value;
  },

  /** `key` as `true`/`false`, or `fallback`. */
  boolean(config, key, fallback = undefined) {
    if (!Object.hasOwn(config, key)) return fallback;
    const text = config[key];
    if (text === 'true') return true;
    if (text === 'false') return false;
    throw invalidValue(key, text, 'provided string was not `true` or `false`');
  },
});

// ---------------------------------------------------------------------------
// Rust-compatible formatting, for messages that must match a Rust plugin's

/** `s` quoted as Rust's `{:?}` quotes a `str` (control characters escaped). */
export function debugString(s) {
  let out = '"';
  for (const ch of String(s)) {
    const c = ch.codePointAt(0);
    if (ch === '"') out += '\\"';
    else if (ch === '\\') out += '\\\\';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (c === 0) out += '\\0';
    else if (c < 0x20 || (c >= 0x7f && c <= 0x9f)) out += `\\u{${c.toString(16)}}`;
    else out += ch;
  }
  return out + '"';
}

function shortest(x) {
  // toExponential() with no argument is the shortest round-trip digits, as
  // Rust's float formatting uses.
  const m = /^-?(\d)(?:\.(\d+))?e([+-]\d+)$/.exec(x.toExponential());
  return { digits: m[1] + (m[2] ?? ''), exp: Number(m[3]) };
}

function special(x) {
  if (Number.isNaN(x)) return 'NaN';
  if (x === Infinity) return 'inf';
  if (x === -Infinity) return '-inf';
  return null;
}

/** `x` as Rust's `{}` prints an `f64`: `-1.5`, `100`, `0.0000001`, `inf`, `NaN`, never an exponent. */
export function formatFloat(x) {
  const s = special(x);
  if (s !== null) return s;
  const sign = x < 0 || Object.is(x, -0) ? '-' : '';
  if (x === 0) return `${sign}0`;
  const { digits, exp } = shortest(Math.abs(x));
  const point = exp + 1; // digits before the decimal point
  if (point <= 0) return `${sign}0.${'0'.repeat(-point)}${digits}`;
  if (point >= digits.length) return sign + digits + '0'.repeat(point - digits.length);
  return `${sign}${digits.slice(0, point)}.${digits.slice(point)}`;
}

/** `x` as Rust's `{:e}` prints an `f64`: `1e300`, `1.5e-7`, `0e0`. */
export function formatFloatExp(x) {
  const s = special(x);
  if (s !== null) return s;
  const sign = x < 0 || Object.is(x, -0) ? '-' : '';
  if (x === 0) return `${sign}0e0`;
  const { digits, exp } = shortest(Math.abs(x));
  const mantissa = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
  return `${sign}${mantissa}e${exp}`;
}
