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

// The `sluice:plugin/state` imports (import-state.js), in a component built
// for `stateful-processor`: sha256 of each generated function, by name.
const STATE_IMPORTS_SHA256 = {
  get: '591137a27b7b06f06e0a008962d7cbe0fde53663747c3fb60b2dd8dbf718ea3c',
  set: '9c4f37dcf3bd5177833754c7a3c322655173b3540fce9a88bbe08cbfad50b4f5',
  delete: '041aa2a18319956cb73da495e2bf96987056e1a60f8ab582f54f668a0fcd8510',
  exists: '66050ba5a5f6a254284af561ac33f02c88fe9e407933f5853b6edf875eab6691',
  listKeys: '6068e4ee566e7c3e97feb56c69b7d6b4f1f30baac9bb1cc4ee13f920304a01dc',
  deletePrefix: 'c41beda8c5669b1d36ee2dea4a3ac6d3629907f9b752e231fd951ee7876e8470',
};

/** import-state.js cut at its `// @sluice-fast-import NAME` markers: NAME -> text. */
function fastStateImports() {
  const text = readFileSync(new URL('./import-state.js', import.meta.url), 'utf8');
  const parts = text.split(/^\/\/ @sluice-fast-import (\S+)\n/m);
  const sections = {};
  for (let i = 1; i < parts.length; i += 2) sections[parts[i]] = parts[i + 1].trimEnd();
  return sections;
}

const FAST_STATE_IMPORTS = fastStateImports();

/** The generated state import `name` in `js`, or null. */
function findStateImport(js, name) {
  const start = js.indexOf(`function import_sluice_plugin_state_0_1_0$${name}(`);
  if (start < 0) return null;
  const end = js.indexOf(END, start);
  if (end < 0) return null;
  return { start, end: end + END.length - 1, text: js.slice(start, end + END.length - 1) };
}

/**
 * Swaps the generated `sluice:plugin/state` imports in `jsBindings` for
 * import-state.js's, all or none: only when every one of them is, byte for
 * byte, the one they were written against. `stateful` is false when the
 * bindings have no state imports (a `processor` build).
 */
export function patchStateImports(jsBindings) {
  const names = Object.keys(STATE_IMPORTS_SHA256);
  const found = names.map((name) => findStateImport(jsBindings, name));
  if (found.every((f) => f === null)) return { js: jsBindings, patched: false, stateful: false, reason: 'no state imports' };
  for (let i = 0; i < names.length; i++) {
    if (found[i] === null) return { js: jsBindings, patched: false, stateful: true, reason: `no generated state import ${names[i]}` };
    const sha = createHash('sha256').update(found[i].text).digest('hex');
    if (sha !== STATE_IMPORTS_SHA256[names[i]]) {
      return { js: jsBindings, patched: false, stateful: true, reason: `generated state import ${names[i]} differs (sha256 ${sha})` };
    }
  }
  // Replace from the last to the first, so earlier offsets stay valid; the
  // helpers go in front of the first function.
  let js = jsBindings;
  const order = names.map((name, i) => [name, found[i]]).sort((a, b) => b[1].start - a[1].start);
  for (const [name, f] of order) {
    const first = f.start === Math.min(...found.map((x) => x.start));
    const text = (first ? `${FAST_STATE_IMPORTS['state-lower']}\n\n` : '') + FAST_STATE_IMPORTS[name];
    js = js.slice(0, f.start) + text + js.slice(f.end);
  }
  return { js, patched: true, stateful: true };
}

export const __test = { findExportProcess, FAST_EXPORT_PROCESS, FAST_STATE_IMPORTS, findStateImport };
