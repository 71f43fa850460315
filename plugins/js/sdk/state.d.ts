// Types of sluice-sdk/state: keyed state the host keeps for the plugin.
// See state.js and the README's "State" section.

/** A key or value: a string is taken as its UTF-8 bytes. */
export type Bytes = string | Uint8Array | ArrayBufferView;

/** How many keys one host `list-keys` call asks for. */
export const PAGE: number;

/** Outside an event, a `keys` iterator used after its event, or a host refusal. */
export class StateError extends Error {}

/** The value of `key`, or `undefined` when it has none. */
export function get(key: Bytes): Uint8Array | undefined;
/** Sets `key` to `value`; it takes effect when the event succeeds. */
export function set(key: Bytes, value: Bytes): void;
/** Removes `key` (`state.delete(key)`; `remove` is the same function). */
declare function remove(key: Bytes): void;
export { remove as delete, remove };
/** Whether `key` has a value. */
export function exists(key: Bytes): boolean;
/** The keys that start with `prefix`, in byte order, read from the host a page at a time. */
export function keys(prefix?: Bytes): IterableIterator<Uint8Array>;
/** The keys that start with `prefix`, decoded as UTF-8. */
export function keyStrings(prefix?: Bytes): string[];
/** Removes every key that starts with `prefix`; how many had a value. */
export function deletePrefix(prefix: Bytes): number;
/** The value of `key` parsed as JSON, or `undefined`; `Invalid` if it is not JSON. */
export function getJson<T = unknown>(key: Bytes): T | undefined;
/** Sets `key` to `JSON.stringify(value)`; `Invalid` if it has no JSON form. */
export function setJson(key: Bytes, value: unknown): void;

/** Test helpers (under node): an in-memory state for the whole process. */
export const testing: {
  /** Runs `plugin.process(event)` (or `plugin(event)`) as the host does. */
  process<T>(plugin: { process(event: any): T } | ((event: any) => T), event: any): T;
  /** Runs `fn()` as if it handled an event. */
  withEvent<T>(fn: () => T): T;
  /** Empties the state. */
  reset(): void;
  /** Replaces the state. */
  setState(entries: Map<Bytes, Bytes> | Array<[Bytes, Bytes]> | Record<string, Bytes>): void;
  /** A sorted copy: UTF-8 strings, or bytes with `{ raw: true }`. */
  state(options?: { raw?: false }): Map<string, string>;
  state(options: { raw: true }): Map<Uint8Array, Uint8Array>;
};

/** The runtime's hook: runs one event's handler inside its state overlay. */
export function runEvent<A, T>(fn: (arg: A) => T, arg: A): T;
/** For the component's entry module: the host's state functions. */
export function __useHost(wit: unknown): void;
/** `bytes` as Rust's `escape_ascii` writes them. */
export function escapeAscii(bytes: Uint8Array): string;
