// Faster bindings for the world's `process` export (build time only).
//
// componentize-js generates JS that lifts the `list<event>` argument out of
// linear memory into JS values and lowers the returned outcomes back. In
// SpiderMonkey's interpreter that generated code was about half of a
// plugin's per-event cost: every field read goes through `$memory.buffer`
// (a native getter) to rebuild a DataView, every byte list makes two or
// three throwaway views, and every string is measured by a JS loop over its
// characters before it is encoded.
//
// `patchBindings` swaps the generated `export_process` for the one in
// export-process.js, which does the same work with one set of typed-array
// views over memory (renewed only when memory has grown past them) and
// native encoding. It lifts and lowers the same values, in the same order,
// with the same errors (test/bindings.test.js checks), and frees the same
// allocations. It is applied only when the
// generated function is, byte for byte, the one it was written against
// (componentize-js 0.23.0, `wit/plugin.wit` at sluice:plugin@0.1.0);
// anything else keeps the generated bindings.

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';

// sha256 of the generated `async function export_process(...) {...}`.
const GENERATED_SHA256 = '277205fafd5a2573ec8a030e5a2756c9a88b1fca5a96fa8dc994b8aea0781ae0';

const FAST_EXPORT_PROCESS = readFileSync(new URL('./export-process.js', import.meta.url), 'utf8');

const START = 'async function export_process(arg0, arg1, arg2) {\n';
const END = '\n}\n';

/** The generated `export_process` in `js`, or null. */
function findExportProcess(js) {
  const start = js.indexOf(START);
  if (start < 0) return null;
  const end = js.indexOf(END, start);
  if (end < 0) return null;
  return { start, end: end + END.length - 1, text: js.slice(start, end + END.length - 1) };
}

/**
 * The bindings with the fast `export_process`, if `jsBindings` has the
 * generated one this was written against; otherwise unchanged.
 */
export function patchBindings(jsBindings) {
  const found = findExportProcess(jsBindings);
  if (found === null) return { js: jsBindings, patched: false, reason: 'no export_process in the generated bindings' };
  const sha = createHash('sha256').update(found.text).digest('hex');
  if (sha !== GENERATED_SHA256) {
    return { js: jsBindings, patched: false, reason: `generated export_process differs (sha256 ${sha})` };
  }
  return { js: jsBindings.slice(0, found.start) + FAST_EXPORT_PROCESS.trimEnd() + jsBindings.slice(found.end), patched: true };
}

export const __test = { findExportProcess, FAST_EXPORT_PROCESS };
