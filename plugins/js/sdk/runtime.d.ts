import type { Event, InitFn, LogLevel, Output, ProcessFn, RawEvent } from './index.js';

/** WIT `result<T, E>` as the componentize-js bindings take it. */
export type WitResult<T, E> = { tag: 'ok'; val: T } | { tag: 'err'; val: E };
export type WitProcessError = { tag: 'invalid' | 'retryable'; val: string };

/** A plugin module: its namespace, an object, or a module whose default export is one. */
export interface PluginModule {
  init?: InitFn;
  process: ProcessFn;
}

/** The world's exports for `plugin`; `hostLog` is the host's `log` import. */
export function bind(
  plugin: PluginModule | { default: PluginModule },
  hostLog: (level: LogLevel, message: string) => void,
): {
  init(config: Array<[string, string]>): WitResult<undefined, string>;
  process(
    events: RawEvent[],
  ): Array<WitResult<Output[], WitProcessError>> | Promise<Array<WitResult<Output[], WitProcessError>>>;
};

/** A thrown value as text (`TypeError: ...` for non-plain errors). */
export function describe(err: unknown): string;
