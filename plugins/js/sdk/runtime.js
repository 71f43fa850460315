// The guest side of the WIT contract: turns the author's `init(config)` /
// `process(event)` module into the world's `init` and `process` exports.
//
// `build.mjs` generates the component's entry module:
//
//   import { log } from 'sluice:plugin/host@0.1.0';
//   import { bind } from '<sdk>/runtime.js';
//   import * as plugin from '<author module>';
//   const exports = bind(plugin, log);
//   export const init = exports.init, process = exports.process;
//
// Pure JS: the host import is passed in, so node tests can drive it.

import { Event, Output, ProcessError, __setLogSink, __stateRunner } from './index.js';

const NOT_INITIALISED = { tag: 'err', val: { tag: 'invalid', val: 'plugin not initialised' } };

/** A thrown value as text, for `init`'s error and for traps. */
export function describe(err) {
  if (err instanceof Error) {
    const plain = err.constructor === Error || err instanceof ProcessError || err.name === 'ConfigError';
    return plain ? err.message : `${err.name}: ${err.message}`;
  }
  return String(err);
}

function isThenable(value) {
  return value !== null && typeof value === 'object' && typeof value.then === 'function';
}

function kindOf(value) {
  if (value === null) return 'null';
  if (typeof value !== 'object') return typeof value;
  return value.constructor?.name ?? 'object';
}

/**
 * The world's exports for the plugin module `plugin` (its namespace, or an
 * object with `init`/`process`, or a module whose default export is one).
 * `hostLog` is the host's `log(level, message)` import.
 */
export function bind(plugin, hostLog) {
  const source = typeof plugin.process === 'function' ? plugin : plugin.default ?? {};
  const userProcess = source.process;
  const userInit = source.init;
  if (typeof userProcess !== 'function') {
    throw new TypeError('the plugin module must export a function `process(event)`');
  }
  if (userInit !== undefined && typeof userInit !== 'function') {
    throw new TypeError('the plugin module\'s `init` export must be a function');
  }
  let ready = false;
  // The author's `process`, or (for a plugin that imports sluice-sdk/state)
  // a wrapper that applies or discards each event's state writes with its
  // outcome. Chosen at `init`: every module, the state one included, has
  // been evaluated by then.
  let handle = userProcess;

  /** WIT `init: func(config: list<tuple<string, string>>) -> result<_, string>`. */
  function init(pairs) {
    __setLogSink(hostLog);
    const runEvent = __stateRunner();
    handle = runEvent === null ? userProcess : (event) => runEvent(userProcess, event);
    // A failed re-init leaves the plugin uninitialised, not running on a
    // stale config.
    ready = false;
    if (userInit !== undefined) {
      // Fresh object each time; fromEntries keeps `__proto__` a plain key
      // and the last of repeated keys.
      const config = Object.fromEntries(pairs);
      let result;
      try {
        result = userInit(config);
      } catch (err) {
        return { tag: 'err', val: describe(err) };
      }
      if (typeof result === 'string') return { tag: 'err', val: result };
      if (isThenable(result)) {
        return { tag: 'err', val: 'init must be synchronous (it returned a Promise)' };
      }
    }
    ready = true;
    return { tag: 'ok', val: undefined };
  }

  /**
   * WIT `process: func(events: list<event>) -> list<result<list<output>,
   * process-error>>`: one outcome per event, in order (or a Promise of
   * them, once the author's `process` returned one). A `ProcessError`
   * becomes that event's `err`; any other exception escapes, which traps the
   * instance with the exception's text on stderr (the host then retries the
   * batch's events one by one, so only the culprit fails).
   */
  function process(events) {
    const n = events.length;
    const outcomes = new Array(n);
    if (!ready) {
      outcomes.fill(NOT_INITIALISED);
      return outcomes;
    }
    for (let i = 0; i < n; i++) {
      let outputs;
      try {
        outputs = handle(new Event(events[i]));
      } catch (err) {
        outcomes[i] = failure(err);
        continue;
      }
      if (isThenable(outputs)) return finishAsync(events, outcomes, i, outputs);
      outcomes[i] = success(outputs);
    }
    return outcomes;
  }

  // An async `process` (one that awaits fetch(), say): from event `i` on,
  // each result is awaited before the next event starts, so events are
  // still processed one at a time and in order. The component's export
  // awaits the returned Promise, running the event loop until it settles.
  async function finishAsync(events, outcomes, i, pending) {
    for (;;) {
      try {
        outcomes[i] = success(await pending);
      } catch (err) {
        outcomes[i] = failure(err);
      }
      if (++i === events.length) return outcomes;
      try {
        pending = handle(new Event(events[i]));
      } catch (err) {
        pending = Promise.reject(err);
      }
    }
  }

  /** A thrown ProcessError as the event's outcome; anything else traps. */
  function failure(err) {
    if (err instanceof ProcessError) return { tag: 'err', val: { tag: err.kind, val: err.message } };
    throw fail(err);
  }

  /** A returned array of Outputs as the event's outcome; anything else traps. */
  function success(outputs) {
    if (!Array.isArray(outputs)) {
      throw fail(new Error(`process must return an array of Output, got ${kindOf(outputs)}`));
    }
    for (let j = 0; j < outputs.length; j++) {
      if (!(outputs[j] instanceof Output)) {
        throw fail(new Error(`process must return an array of Output, element ${j} is ${kindOf(outputs[j])}`));
      }
    }
    return { tag: 'ok', val: outputs };
  }

  // The exception that will trap the instance. The stderr tail carries its
  // text into the host's trap report; the log line also names the plugin,
  // and survives a build with --disable stdio.
  function fail(err) {
    const escaping = trap(err);
    try {
      hostLog('error', `process trapped: ${escaping.message}`);
    } catch {
      // Logging must not hide the exception.
    }
    return escaping;
  }

  return { init, process };
}

// StarlingMonkey prints an uncaught exception's message and stack (not its
// name) to stderr before aborting, and the host puts that stderr tail in
// its trap report. The stack it prints is where the Error was created, and
// changing `message` afterwards does not change what it prints. So: a plain
// Error escapes as it is; any other Error (TypeError, a custom class...)
// becomes an Error saying `Name: message (at <where it was thrown>)`; a
// thrown non-Error becomes `uncaught exception: <value>`.
function trap(err) {
  if (err instanceof Error) {
    if (err.constructor === Error) return err;
    return new Error(`${err.name}: ${err.message}${thrownAt(err)}`);
  }
  return new Error(`uncaught exception: ${describe(err)}`);
}

// The innermost frame of an error's stack: `fn@file:line:col` in
// SpiderMonkey, `    at fn (file:line:col)` in V8 (node, for tests).
function thrownAt(err) {
  if (typeof err.stack !== 'string') return '';
  for (const raw of err.stack.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('at ')) return ` (at ${line.slice(3)})`;
    if (line.includes('@')) return ` (at ${line})`;
  }
  return '';
}
