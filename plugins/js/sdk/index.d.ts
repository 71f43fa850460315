// Types of sluice-sdk: write Sluice plugins (sluice:plugin/processor
// components) in JavaScript or TypeScript.
//
// A plugin module exports:
//
//   export function init(config: PluginConfig): void | string;   // optional
//   export function process(event: Event): Output[];
//
// `init` refuses the plugin by throwing or by returning an error string.
// `process` returns the records to write ([] filters the event out) or
// throws `Invalid` / `Retryable`; any other exception traps the instance.

/** The pipeline's `config` table for this plugin: key → string value. */
export type PluginConfig = Record<string, string>;

/** A plugin's `init` export. */
export type InitFn = (config: PluginConfig) => void | string | undefined;

/** A plugin's `process` export: per event, the outputs, or a Promise of them (awaited before the next event). */
export type ProcessFn = (event: Event) => Output[] | Promise<Output[]>;

/** Bytes: a string is taken as its UTF-8 encoding. */
export type BytesLike = string | Uint8Array | ArrayBufferView | ArrayBuffer;

/** A Kafka record header: name and raw value. Names may repeat. */
export type Header = [name: string, value: Uint8Array];

/** Why one event could not be processed. Throw a subclass from `process`. */
export class ProcessError extends Error {
  /** `invalid` or `retryable`: the WIT `process-error` case. */
  readonly kind: 'invalid' | 'retryable';
  /** Whether the host will retry the event. */
  readonly retryable: boolean;
}

/** Permanent failure: the event goes to the dead-letter topic with the message. */
export class Invalid extends ProcessError {
  readonly kind: 'invalid';
}

/** Transient failure: retried with backoff, then dead-lettered as `retries-exhausted`. */
export class Retryable extends ProcessError {
  readonly kind: 'retryable';
}

/** A `Config` lookup error; its message names the key. Thrown from `init`, it refuses the plugin. */
export class ConfigError extends Error {}

/** `null`, `boolean`, `number`, `string`, `array` or `object`. */
export function jsonType(value: unknown): string;

/** `Invalid`: ``field `FIELD` must be EXPECTED, got TYPE``. Throw it. */
export function wrongType(field: string, expected: string, got: unknown): Invalid;

/** The raw WIT `event` record, as the component bindings lift it. */
export interface RawEvent {
  topic: string;
  partition: number;
  offset: bigint;
  timestampMs?: bigint | null;
  key?: Uint8Array | null;
  value?: Uint8Array | null;
  headers: Header[];
}

/** Fields of a test event (`Event.create`). */
export interface EventInit {
  topic?: string;
  partition?: number;
  offset?: number | bigint;
  timestampMs?: number | bigint | null;
  key?: BytesLike | null;
  /** null or absent: a tombstone. */
  value?: BytesLike | null;
  headers?: Array<[string, BytesLike]> | Record<string, BytesLike>;
}

/** One consumed Kafka record. Accessors are lazy: nothing is decoded until asked for. */
export class Event {
  /** Wraps a raw WIT record (the runtime does this). */
  constructor(raw: RawEvent);
  /** A test event; defaults: topic "", partition 0, offset 0, no timestamp, key, value or headers. */
  static create(init?: EventInit): Event;

  readonly topic: string;
  readonly partition: number;
  /** The offset as a number (exact below 2^53). */
  readonly offset: number;
  /** Milliseconds since the Unix epoch, or null. */
  readonly timestampMs: number | null;
  /** null for a record without a key. */
  readonly key: Uint8Array | null;
  /** null for a tombstone. */
  readonly value: Uint8Array | null;
  /** All headers in record order. Do not modify. */
  readonly headers: readonly Header[];

  isTombstone(): boolean;
  /** The value as text. @throws Invalid for a tombstone or invalid UTF-8. */
  valueString(): string;
  /** The key as text, or null. @throws Invalid for invalid UTF-8. */
  keyString(): string | null;
  /**
   * The value parsed as JSON. @throws Invalid for a tombstone, or
   * ``event value is not valid JSON: <parser message>`` (also for numbers
   * that overflow a double and for lone surrogates, as serde_json).
   */
  json<T = any>(): T;
  /** The first header called `name`, or null. */
  header(name: string): Uint8Array | null;
  /** `header(name)` as text, or null. @throws Invalid for invalid UTF-8. */
  headerString(name: string): string | null;
}

/**
 * One record to write; also the WIT `output` record itself. Unset fields
 * are inherited by the host: topic → the result topic, key → the input's
 * key, headers → the input's headers. The first header call switches to an
 * explicit list. Builders change the output and return it.
 */
export class Output {
  constructor(value: Uint8Array | undefined);
  /** An output with `value` (strings are UTF-8 encoded). */
  static of(value: BytesLike): Output;
  /** An output with `JSON.stringify(value)`. @throws Invalid if it has no JSON form. */
  static json(value: unknown): Output;
  /** The event's value passed on unchanged (a tombstone stays one). */
  static forward(event: Event): Output;
  /** A tombstone (no value). */
  static tombstone(): Output;

  /** undefined: the pipeline's result topic. */
  readonly topic: string | undefined;
  /** undefined: the input's key. */
  readonly key: Uint8Array | undefined;
  /** undefined: a tombstone. */
  readonly value: Uint8Array | undefined;
  /** undefined: the input's headers; a list: exactly these. */
  readonly headers: Header[] | undefined;

  /** Writes to `topic`, which the pipeline must allow. */
  toTopic(topic: string): this;
  /** Sets the key instead of inheriting the input's. */
  withKey(key: BytesLike): this;
  /** Appends a header to the explicit list. */
  withHeader(name: string, value: BytesLike): this;
  /** Appends all of the event's headers to the explicit list (call before `withHeader` to add to them). */
  withInputHeaders(event: Event): this;
  /** Writes no headers instead of inheriting the input's. */
  withoutHeaders(): this;
  /** The value as text, or null for a tombstone (for tests). */
  valueString(): string | null;
}

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error';

/**
 * Logging through the host (tagged with pipeline and plugin). Before the
 * first `init` (module top level runs at build time) and under plain node,
 * lines go to stderr.
 */
export const log: {
  log(level: LogLevel, message: unknown): void;
  trace(message: unknown): void;
  debug(message: unknown): void;
  info(message: unknown): void;
  warn(message: unknown): void;
  error(message: unknown): void;
};

/** Lookups in `init`'s config; errors are `ConfigError`s worded as the Rust SDK's. */
export const Config: {
  get(config: PluginConfig, key: string): string | undefined;
  get<D>(config: PluginConfig, key: string, fallback: D): string | D;
  /** @throws ConfigError ``missing required config key `KEY` `` */
  require(config: PluginConfig, key: string): string;
  /** Rust `f64` syntax (`inf`, `NaN` parse). @throws ConfigError ``config key `KEY`: invalid value "V": invalid float literal`` */
  number(config: PluginConfig, key: string): number | undefined;
  number<D>(config: PluginConfig, key: string, fallback: D): number | D;
  /** A safe integer. @throws ConfigError */
  integer(config: PluginConfig, key: string): number | undefined;
  integer<D>(config: PluginConfig, key: string, fallback: D): number | D;
  /** `true` or `false`. @throws ConfigError */
  boolean(config: PluginConfig, key: string): boolean | undefined;
  boolean<D>(config: PluginConfig, key: string, fallback: D): boolean | D;
};

/** Rust's `f64::from_str`: `{value}` or `{error}` with Rust's message. */
export function parseFloatStrict(text: string): { value: number } | { error: string };
/** JSON.parse plus serde_json's refusals. @throws Invalid ``WHAT is not valid JSON: …`` */
export function parseJson(text: string, what?: string): any;
/** Bytes of a string (UTF-8) or buffer. @throws TypeError */
export function toBytes(value: BytesLike, what?: string): Uint8Array;
/** Rust's `Utf8Error` text for invalid UTF-8, or null if valid. */
export function utf8Error(bytes: Uint8Array): string | null;
/** `s` quoted as Rust's `{:?}`. */
export function debugString(s: string): string;
/** `x` as Rust's `{}` formats an f64 (`-1.5`, `100`, `0.0000001`, `inf`, `NaN`). */
export function formatFloat(x: number): string;
/** `x` as Rust's `{:e}` formats an f64 (`1e300`, `1.5e-7`). */
export function formatFloatExp(x: number): string;

/** For the runtime: where log lines go. */
export function __setLogSink(sink: ((level: LogLevel, message: string) => void) | null): void;
/** For sluice-sdk/state: registers its per-event runner. */
export function __setStateRunner(fn: <A, T>(handler: (arg: A) => T, arg: A) => T): void;
/** For the runtime: the per-event state runner, or null for a stateless plugin. */
export function __stateRunner(): (<A, T>(handler: (arg: A) => T, arg: A) => T) | null;
