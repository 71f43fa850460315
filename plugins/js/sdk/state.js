// sluice-sdk/state: keyed state the host keeps for the plugin (WIT
// interface `sluice:plugin/state`), so an aggregation (a balance per
// account, a count per key) survives instance replacement.
//
//   import { Invalid, Output } from 'sluice-sdk';
//   import * as state from 'sluice-sdk/state';
//
//   export function process(event) {
//     if (event.key === null) throw new Invalid('event has no key');
//     const key = `count/${event.keyString()}`;
//     const count = state.getJson(key) ?? { seen: 0 };
//     count.seen += 1;
//     state.setJson(key, count);
//     return [Output.json(count)];
//   }
//
// Importing this module makes the plugin stateful: the build sees it in the
// bundle and builds for the world `stateful-processor`, whose imports
// include the host's state interface. A plugin whose bundle does not
// contain this module is built for `processor` and loads exactly like any
// stateless plugin. (componentize-js puts every import of the world in the
// component, used or not, hence the choice at build time.)
//
// Keys and values are bytes: a string is taken as its UTF-8 bytes, and
// reads return a Uint8Array. `getJson`/`setJson` store JSON.
//
// One event, all or nothing: the SDK keeps an event's writes until
// `process` returns (or its Promise settles). Outputs: the writes go to
// the host, in order, before the next event. `Invalid`/`Retryable` thrown:
// they are discarded, so a failed event leaves no trace. Reads see the
// event's own writes. A trap (any other exception) discards the writes of
// the whole batch; the host then retries the events one by one.
// `plugins/state-rule.json` (in the Sluice repository) is this rule's
// specification, as cases of events with the answer of every call and the
// state after every event; this SDK, the Rust and the Python SDK are
// tested against it, on their own and through the host.
//
// Scope: one state per pipeline step and input partition. Limits: the
// host's (a write beyond them dead-letters its event as `state-limit`).
// Only inside `process`: elsewhere (in `init`, at module top level) every
// function throws `StateError`.
//
// Pure JavaScript: the build's entry module hands the host's functions in
// with `__useHost`; under node the store is an in-memory map, which the
// `testing` helpers below seed and read.

import { Invalid, __setStateRunner } from './index.js';

const encoder = new TextEncoder();

/** How many keys one host `list-keys` call asks for. */
export const PAGE = 256;

/**
 * A state call that cannot work: outside an event, a `keys` iterator used
 * after its event, or a host refusal. Not an event's failure: thrown from
 * `process` it traps the instance; from `init` it refuses the plugin.
 */
export class StateError extends Error {
  get name() {
    return 'StateError';
  }
}

// Keys are held as "binary strings" (one char per byte, 0-255), which
// compare in byte order and work as Map keys.
function bin(bytes) {
  if (bytes.length <= 8192) return String.fromCharCode.apply(null, bytes);
  let s = '';
  for (let i = 0; i < bytes.length; i += 8192) {
    s += String.fromCharCode.apply(null, bytes.subarray(i, i + 8192));
  }
  return s;
}

function unbin(s) {
  const bytes = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) bytes[i] = s.charCodeAt(i);
  return bytes;
}

function toBytes(value, what) {
  if (typeof value === 'string') return encoder.encode(value);
  if (value instanceof Uint8Array) return value;
  if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  throw new TypeError(`a state ${what} must be a string or a Uint8Array, got ${value === null ? 'null' : typeof value}`);
}

const keyOf = (key, what = 'key') => bin(toBytes(key, what));
const strictDecoder = new TextDecoder('utf-8', { fatal: true });

/** `key` as Rust's `escape_ascii` writes it, for messages. */
export function escapeAscii(bytes) {
  let out = '';
  for (const b of bytes) {
    if (b === 0x5c) out += '\\\\';
    else if (b === 0x22) out += '\\"';
    else if (b === 0x27) out += "\\'";
    else if (b === 0x09) out += '\\t';
    else if (b === 0x0a) out += '\\n';
    else if (b === 0x0d) out += '\\r';
    else if (b >= 0x20 && b < 0x7f) out += String.fromCharCode(b);
    else out += `\\x${b.toString(16).padStart(2, '0')}`;
  }
  return out;
}

/**
 * The host's store off Wasm: a Map of binary-string keys, for unit tests.
 * Its methods take and return binary strings and Uint8Arrays, as the
 * host's adapter (`hostStore`) does.
 */
export class MemoryStore {
  constructor() {
    this.map = new Map();
  }
  get(key) {
    return this.map.get(key);
  }
  set(key, value) {
    this.map.set(key, value);
  }
  delete(key) {
    this.map.delete(key);
  }
  exists(key) {
    return this.map.has(key);
  }
  listKeys(prefix, cursor, limit) {
    return [...this.map.keys()]
      .filter((k) => k.startsWith(prefix) && (cursor === undefined || k > cursor))
      .sort(compare)
      .slice(0, limit);
  }
  deletePrefix(prefix) {
    let n = 0;
    for (const k of [...this.map.keys()]) {
      if (k.startsWith(prefix)) {
        this.map.delete(k);
        n++;
      }
    }
    return n;
  }
}

function compare(a, b) {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** A state function's `err(unavailable(msg))`, as componentize-js throws it, as a StateError. */
function unavailable(err) {
  const payload = err?.payload ?? err;
  return new StateError(`state is unavailable: ${payload?.val ?? err?.message ?? String(err)}`);
}

/**
 * The host's state functions (the WIT import), as the overlay calls its
 * store. Where the caller has a key's bytes already it passes them, which
 * saves converting the binary string back.
 */
export function hostStore(wit) {
  return {
    get(key, bytes = unbin(key)) {
      try {
        return wit.get(bytes);
      } catch (err) {
        throw unavailable(err);
      }
    },
    set(key, value, bytes = unbin(key)) {
      try {
        wit.set(bytes, value);
      } catch (err) {
        throw unavailable(err);
      }
    },
    delete(key, bytes = unbin(key)) {
      try {
        wit.delete(bytes);
      } catch (err) {
        throw unavailable(err);
      }
    },
    exists(key, bytes = unbin(key)) {
      try {
        return wit.exists(bytes);
      } catch (err) {
        throw unavailable(err);
      }
    },
    listKeys(prefix, cursor, limit) {
      let keys;
      try {
        keys = wit.listKeys(unbin(prefix), cursor === undefined ? undefined : unbin(cursor), limit);
      } catch (err) {
        throw unavailable(err);
      }
      return keys.map(bin);
    },
    deletePrefix(prefix) {
      try {
        return Number(wit.deletePrefix(unbin(prefix)));
      } catch (err) {
        throw unavailable(err);
      }
    },
  };
}

/** The current event's writes, not yet sent to the host. */
export class Overlay {
  constructor() {
    /** Prefixes the event deleted; they apply before `writes`. */
    this.cleared = [];
    /**
     * Writes made after those deletions, by key: `[key bytes, value]`, the
     * value a Uint8Array to set or null to delete.
     */
    this.writes = new Map();
  }

  isCleared(key) {
    const cleared = this.cleared;
    for (let i = 0; i < cleared.length; i++) if (key.startsWith(cleared[i])) return true;
    return false;
  }

  /** `key` is the binary string; `bytes`, when given, the same key as bytes. */
  get(store, key, bytes) {
    const write = this.writes.get(key);
    if (write !== undefined) return write[1] ?? undefined;
    if (this.cleared.length !== 0 && this.isCleared(key)) return undefined;
    return bytes === undefined ? store.get(key) : store.get(key, bytes);
  }

  exists(store, key, bytes) {
    const write = this.writes.get(key);
    if (write !== undefined) return write[1] !== null;
    if (this.cleared.length !== 0 && this.isCleared(key)) return false;
    return bytes === undefined ? store.exists(key) : store.exists(key, bytes);
  }

  set(key, value, bytes = unbin(key)) {
    this.writes.set(key, [bytes, value]);
  }

  delete(key, bytes = unbin(key)) {
    this.writes.set(key, [bytes, null]);
  }

  /**
   * The keys under `prefix` as of now: the host's, a page at a time as the
   * iterator advances, merged with a snapshot (taken now) of the writes.
   */
  keys(store, prefix, page = PAGE) {
    const mine = [...this.writes]
      .filter(([k]) => k.startsWith(prefix))
      .map(([k, [, v]]) => [k, v !== null])
      .sort((a, b) => compare(a[0], b[0]));
    const cleared = [...this.cleared];
    page = Math.max(page, 1);
    function* host() {
      let after;
      for (;;) {
        const keys = store.listKeys(prefix, after, page);
        for (const key of keys) {
          if (!cleared.some((c) => key.startsWith(c))) yield key;
        }
        if (keys.length < page) return;
        after = keys[keys.length - 1];
      }
    }
    function* merged() {
      const hosts = host();
      let next = hosts.next();
      let i = 0;
      while (!next.done || i < mine.length) {
        if (i < mine.length && (next.done || mine[i][0] <= next.value)) {
          const [key, isSet] = mine[i++];
          if (!next.done && key === next.value) next = hosts.next();
          if (isSet) yield key;
        } else {
          const key = next.value;
          next = hosts.next();
          yield key;
        }
      }
    }
    return merged();
  }

  deletePrefix(store, prefix) {
    let count = 0;
    for (const _ of this.keys(store, prefix)) count++;
    for (const key of [...this.writes.keys()]) {
      if (key.startsWith(prefix)) this.writes.delete(key);
    }
    // A deletion under this prefix is now redundant.
    this.cleared = this.cleared.filter((c) => !c.startsWith(prefix));
    this.cleared.push(prefix);
    return count;
  }

  get empty() {
    return this.cleared.length === 0 && this.writes.size === 0;
  }

  /** Sends the writes to the host: prefix deletions first, then the keys in byte order. */
  commit(store) {
    for (const prefix of this.cleared) store.deletePrefix(prefix);
    const writes = this.writes;
    const keys = writes.size === 1 ? writes.keys() : [...writes.keys()].sort(compare);
    for (const key of keys) {
      const [bytes, value] = writes.get(key);
      if (value === null) store.delete(key, bytes);
      else store.set(key, value, bytes);
    }
  }
}

// The store: the host's in the component (`__useHost`), a map under node.
let store = new MemoryStore();
let inWasm = false;
// The current event's overlay, or null outside an event.
let overlay = null;
// Counts events, so a `keys` iterator can tell it outlived its own.
let generation = 0;

function current(fn) {
  if (overlay === null) {
    const hint = inWasm ? '' : '; in tests, run the event with `testing.process` from sluice-sdk/state';
    throw new StateError(
      `sluice-sdk/state ${fn}: state is only available while an event is processed (in \`process\`, not in \`init\`)${hint}`,
    );
  }
  return overlay;
}

/** The value of `key`, or `undefined` when it has none. */
export function get(key) {
  const overlay = current('get');
  const bytes = toBytes(key, 'key');
  return overlay.get(store, bin(bytes), bytes);
}

/** Sets `key` to `value` (a string is written as UTF-8); it takes effect when the event succeeds. */
export function set(key, value) {
  const overlay = current('set');
  const bytes = ownBytes(key, 'key');
  overlay.set(bin(bytes), ownBytes(value, 'value'), bytes);
}

/** `value` as bytes the caller cannot change afterwards (a copy of theirs). */
function ownBytes(value, what) {
  return typeof value === 'string' ? encoder.encode(value) : toBytes(value, what).slice();
}

/** Removes `key`; removing a key that has no value does nothing. */
function remove(key) {
  const overlay = current('delete');
  const bytes = ownBytes(key, 'key');
  overlay.delete(bin(bytes), bytes);
}
export { remove as delete, remove };

/** Whether `key` has a value. */
export function exists(key) {
  const overlay = current('exists');
  const bytes = toBytes(key, 'key');
  return overlay.exists(store, bin(bytes), bytes);
}

/**
 * The keys that start with `prefix` (empty: every key) as Uint8Arrays, in
 * byte order, read from the host a page at a time as the iterator
 * advances. Use it up within the event (`[...state.keys('account/')]`).
 */
export function keys(prefix = '') {
  const cursor = current('keys').keys(store, keyOf(prefix, 'prefix'));
  const event = generation;
  return {
    [Symbol.iterator]() {
      return this;
    },
    next() {
      if (overlay === null || generation !== event) {
        throw new StateError(
          'sluice-sdk/state keys: the iterator was advanced after the event it was created in; collect the keys within the event',
        );
      }
      const step = cursor.next();
      return step.done ? step : { done: false, value: unbin(step.value) };
    },
  };
}

/** The keys that start with `prefix`, as UTF-8 strings (`keys` decoded). */
export function keyStrings(prefix = '') {
  const decoder = new TextDecoder();
  return [...keys(prefix)].map((k) => decoder.decode(k));
}

/**
 * Removes every key that starts with `prefix` (empty: every key); returns
 * how many had a value. Counting means listing the keys: a host call per
 * page of `keys`.
 */
export function deletePrefix(prefix) {
  return current('deletePrefix').deletePrefix(store, keyOf(prefix, 'prefix'));
}

/**
 * The value of `key` parsed as JSON, or `undefined` when it has none.
 * Throws `Invalid` (``state value of key `KEY` is not the expected JSON: …``)
 * when it is not JSON.
 */
export function getJson(key) {
  const overlay = current('getJson');
  const bytes = toBytes(key, 'key');
  const value = overlay.get(store, bin(bytes), bytes);
  if (value === undefined) return undefined;
  try {
    return JSON.parse(strictDecoder.decode(value));
  } catch (err) {
    throw new Invalid(`state value of key \`${escapeAscii(bytes)}\` is not the expected JSON: ${err.message}`);
  }
}

/**
 * Sets `key` to `value` as JSON (`JSON.stringify`). Throws `Invalid`
 * (`cannot serialize state value as JSON: …`) when it cannot; nothing is
 * written then.
 */
export function setJson(key, value) {
  const o = current('setJson');
  let text;
  try {
    text = JSON.stringify(value);
  } catch (err) {
    throw new Invalid(`cannot serialize state value as JSON: ${err.message}`);
  }
  if (text === undefined) throw new Invalid(`cannot serialize state value as JSON: ${typeof value} has no JSON form`);
  const bytes = ownBytes(key, 'key');
  o.set(bin(bytes), encoder.encode(text), bytes);
}

// The event loop (runtime.js) runs every event of a plugin that imports
// this module through `runEvent`; a plugin without state pays nothing.

function begin() {
  generation++;
  overlay = new Overlay();
  return overlay;
}

function end(mine, succeeded) {
  if (overlay === mine) overlay = null;
  if (succeeded && !mine.empty) mine.commit(store);
}

/**
 * Runs one event's handler `fn(arg)`: its writes are applied if it returns
 * (or its Promise resolves), discarded if it throws (or rejects).
 */
export function runEvent(fn, arg) {
  const mine = begin();
  let result;
  try {
    result = fn(arg);
  } catch (err) {
    end(mine, false);
    throw err;
  }
  if (result !== null && typeof result === 'object' && typeof result.then === 'function') {
    return Promise.resolve(result).then(
      (value) => {
        end(mine, true);
        return value;
      },
      (err) => {
        end(mine, false);
        throw err;
      },
    );
  }
  end(mine, true);
  return result;
}

__setStateRunner(runEvent);

/** For the component's entry module: the host's state functions. */
export function __useHost(wit) {
  store = hostStore(wit);
  inWasm = true;
}

/**
 * Helpers for unit tests under node, where the state is one in-memory map
 * for the process: `testing.process(plugin, event)` runs an event as the
 * host does (writes applied if it returns, discarded if it throws);
 * `setState`, `state` (a Map of UTF-8 strings, or `{ raw: true }` for
 * bytes) and `reset` seed, read and empty it; `withEvent(fn)` runs `fn()`
 * as if it handled an event.
 */
export const testing = Object.freeze({
  process(plugin, event) {
    const fn = typeof plugin === 'function' ? plugin : plugin.process.bind(plugin);
    return runEvent(fn, event);
  },
  withEvent(fn) {
    return runEvent(() => fn());
  },
  reset() {
    memory().map.clear();
  },
  setState(entries) {
    const map = memory().map;
    map.clear();
    const pairs = entries instanceof Map || Array.isArray(entries) ? entries : Object.entries(entries);
    for (const [k, v] of pairs) map.set(keyOf(k), ownBytes(v, 'value'));
  },
  state({ raw = false } = {}) {
    const decoder = new TextDecoder();
    const out = new Map();
    for (const k of [...memory().map.keys()].sort(compare)) {
      const v = memory().map.get(k);
      out.set(raw ? unbin(k) : decoder.decode(unbin(k)), raw ? v : decoder.decode(v));
    }
    return out;
  },
});

function memory() {
  if (!(store instanceof MemoryStore)) throw new Error('sluice-sdk/state testing works under node only');
  return store;
}
