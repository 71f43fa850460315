#!/usr/bin/env node
// sluice-build: bundles a JS plugin module with the SDK (esbuild) and turns
// it into a Sluice plugin component (componentize-js, SpiderMonkey).
//
//   node plugins/js/sdk/build.mjs app.js -o app.wasm
//   npx sluice-build app.js -o app.wasm          (after npm install of the SDK)
//
// Run with --help for the options.

import { existsSync, realpathSync } from 'node:fs';
import { mkdtemp, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const SDK_DIR = dirname(fileURLToPath(import.meta.url));
// The SDK lives at <checkout>/plugins/js/sdk; the contract at <checkout>/wit.
const SDK_WIT = resolve(SDK_DIR, '..', '..', '..', 'wit');
const WORLD = 'processor';
// A plugin whose bundle holds sluice-sdk/state is built for this world,
// which adds the host's state interface to its imports. componentize-js
// puts every import of the world in the component, used or not, and the
// host treats a plugin that imports the state interface as stateful, so
// the choice is made per plugin.
const STATEFUL_WORLD = 'stateful-processor';
const HOST_IMPORT = 'sluice:plugin/host@0.1.0';
const STATE_IMPORT = 'sluice:plugin/state@0.1.0';
const STATE_MODULE = join(SDK_DIR, 'state.js');
// WASI features the build leaves out unless asked: `fetch-event` is the
// incoming-HTTP-handler export, which a plugin never serves. `http` stays,
// so fetch() works in a pipeline whose sandbox grants the network (the
// host refuses every request otherwise).
const DEFAULT_DISABLED = ['fetch-event'];

const USAGE = `Usage: sluice-build <plugin.js|.mjs|.ts> -o <plugin.wasm> [options]

Bundles the plugin module with sluice-sdk and builds a Sluice plugin
component with componentize-js: world sluice:plugin/processor, or
stateful-processor when the plugin imports sluice-sdk/state.

Options:
  -o, --out <file>       the component to write (required; written atomically)
      --wit <dir>        the WIT contract (default: $SLUICE_WIT, else the
                         checkout's wit/ next to this SDK (${SDK_WIT}),
                         else the first wit/plugin.wit above the cwd)
      --keep-bundle <f>  also write the bundled JS (what trap stack traces
                         point into) to <f>
      --enable <feat>    keep a WASI feature the build disables by default
                         (fetch-event; repeatable)
      --disable <feat>   disable another feature (http, stdio, random,
                         clocks; repeatable)
      --generated-bindings
                         keep componentize-js's generated \`process\`
                         bindings instead of the SDK's faster ones
  -q, --quiet            print nothing on success
  -h, --help             this text`;

let componentizing = Promise.resolve();

export async function build({
  input,
  out,
  wit = process.env.SLUICE_WIT || defaultWit(),
  enable = [],
  disable = [],
  keepBundle = null,
  fastBindings = true,
} = {}) {
  if (!input || !out) throw new Error('build needs an input module and an output path');
  input = resolve(input);
  out = resolve(out);
  wit = resolve(wit);
  await mustExist(input, 'plugin module');
  await mustExist(wit, 'WIT contract (set --wit or SLUICE_WIT)');

  const started = performance.now();
  const work = await mkdtemp(join(tmpdir(), 'sluice-build-'));
  try {
    // 1. Bundle: entry = host import + SDK runtime + the author's module,
    // plus the state import when the first bundle holds sluice-sdk/state.
    const name = basename(out, extname(out)) || 'plugin';
    const entry = join(work, 'entry.js');
    const bundle = join(work, `${name}.js`);
    let stateful = false;
    let result = await bundleEntry(entry, bundle, input, false);
    if (usesState(result.metafile, work)) {
      stateful = true;
      result = await bundleEntry(entry, bundle, input, true);
    }
    for (const warning of result.warnings) console.error(`esbuild warning: ${warning.text}`);
    if (keepBundle) await writeFile(resolve(keepBundle), await readFile(bundle));

    // 2. Componentize (SpiderMonkey + wizer snapshot of the module's top level).
    const { componentize } = await import('@bytecodealliance/componentize-js');
    const disableFeatures = [...new Set([...DEFAULT_DISABLED.filter((f) => !enable.includes(f)), ...disable])];
    // One componentize at a time per process: the bindings swap wraps a
    // shared object for the length of a build (and each build takes
    // ~500 MB anyway).
    let bindings;
    let component;
    const run = componentizing.then(async () => {
      bindings = fastBindings ? await useFastBindings() : { patched: false, reason: 'not asked for' };
      try {
        ({ component } = await componentize({
          sourcePath: bundle,
          witPath: wit,
          worldName: stateful ? STATEFUL_WORLD : WORLD,
          disableFeatures,
        }));
      } finally {
        bindings.restore?.();
      }
    });
    componentizing = run.catch(() => {});
    await run;

    // 3. Write atomically: the host hot-reloads plugins from their directory.
    const tmp = join(dirname(out), `.${basename(out)}.tmp`);
    await writeFile(tmp, component);
    await rename(tmp, out);
    return {
      out,
      bytes: component.length,
      seconds: (performance.now() - started) / 1000,
      disableFeatures,
      world: stateful ? STATEFUL_WORLD : WORLD,
      fastBindings: bindings.patched,
      bindingsNote: bindings.reason ?? null,
      // For a stateful build: whether import-state.js went in, and if not why.
      fastStateImports: bindings.stateImports?.patched ?? null,
      stateImportsNote: bindings.stateImports?.reason ?? null,
    };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

// Writes the entry module and bundles it (esbuild) into `bundle`; with
// `stateful`, the entry also hands the host's state functions to
// sluice-sdk/state.
async function bundleEntry(entry, bundle, input, stateful) {
  await writeFile(
    entry,
    [
      `import { log } from ${JSON.stringify(HOST_IMPORT)};`,
      ...(stateful
        ? [
            `import * as hostState from ${JSON.stringify(STATE_IMPORT)};`,
            `import { __useHost } from ${JSON.stringify(STATE_MODULE)};`,
            '__useHost(hostState);',
          ]
        : []),
      `import { bind } from ${JSON.stringify(join(SDK_DIR, 'runtime.js'))};`,
      `import * as plugin from ${JSON.stringify(input)};`,
      'const exports = bind(plugin, log);',
      'export const init = exports.init;',
      'export const process = exports.process;',
      '',
    ].join('\n'),
  );
  const esbuild = await import('esbuild');
  return esbuild.build({
    entryPoints: [entry],
    outfile: bundle,
    bundle: true,
    format: 'esm',
    platform: 'neutral',
    target: 'es2022',
    mainFields: ['module', 'main'],
    // Host and WASI interfaces are provided by the component's bindings.
    external: ['sluice:*', 'wasi:*'],
    plugins: [sdkAlias()],
    logLevel: 'silent',
    legalComments: 'none',
    // Class and function names survive bundling: error messages and
    // stack traces name them as written.
    keepNames: true,
    // Which modules went in: usesState reads it.
    metafile: true,
    absWorkingDir: dirname(entry),
  });
}

/** Whether a bundle's metafile lists sluice-sdk/state among its inputs. */
export function usesState(metafile, workingDir) {
  const real = (path) => {
    try {
      return realpathSync(path);
    } catch {
      return path;
    }
  };
  const stateModule = real(STATE_MODULE);
  return Object.keys(metafile.inputs).some((path) => real(resolve(workingDir, path)) === stateModule);
}

// componentize-js calls its splicer (a plain object, shared by every
// importer of the module) to generate the bindings; wrapping its
// spliceBindings for the duration of one build swaps in the faster
// `process` export (bindings.mjs). `patched` says whether it applied.
async function useFastBindings() {
  const entry = fileURLToPath(import.meta.resolve('@bytecodealliance/componentize-js'));
  const splicerPath = join(dirname(entry), '..', 'lib', 'spidermonkey-embedding-splicer.js');
  const { splicer } = await import(pathToFileURL(splicerPath).href);
  const { patchBindings, patchStateImports } = await import('./bindings.mjs');
  const original = splicer.spliceBindings;
  const state = { patched: false, reason: 'the splicer was not called', stateImports: null };
  splicer.spliceBindings = (...args) => {
    const result = original(...args);
    const { js, patched, reason } = patchBindings(result.jsBindings);
    state.patched = patched;
    state.reason = reason;
    // The state imports of a stateful build (import-state.js).
    const imports = patchStateImports(js);
    state.stateImports = imports.stateful ? imports : null;
    return { ...result, jsBindings: imports.js };
  };
  state.restore = () => {
    splicer.spliceBindings = original;
  };
  return state;
}

// The SDK's checkout, else (an SDK installed as a copy, e.g. with
// --install-links) the nearest wit/plugin.wit from the cwd upwards.
function defaultWit() {
  if (existsSync(join(SDK_WIT, 'plugin.wit'))) return SDK_WIT;
  for (let dir = process.cwd(); ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'wit', 'plugin.wit'))) return join(dir, 'wit');
    if (dirname(dir) === dir) return SDK_WIT;
  }
}

// Every `sluice-sdk` import, the author's or the runtime's, resolves to this
// SDK's files, so the bundle has exactly one copy (`instanceof` works).
function sdkAlias() {
  const files = { 'sluice-sdk': 'index.js', 'sluice-sdk/runtime': 'runtime.js', 'sluice-sdk/state': 'state.js' };
  return {
    name: 'sluice-sdk-alias',
    setup(b) {
      b.onResolve({ filter: /^sluice-sdk(\/.*)?$/ }, (args) => {
        const file = files[args.path];
        if (!file) return { errors: [{ text: `sluice-sdk has no module ${args.path}` }] };
        return { path: join(SDK_DIR, file) };
      });
    },
  };
}

async function mustExist(path, what) {
  try {
    await stat(path);
  } catch {
    throw new Error(`${what} not found: ${path}`);
  }
}

function isMain() {
  try {
    return pathToFileURL(realpathSync(process.argv[1])).href === import.meta.url;
  } catch {
    return false;
  }
}

async function main(argv) {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      out: { type: 'string', short: 'o' },
      wit: { type: 'string' },
      'keep-bundle': { type: 'string' },
      enable: { type: 'string', multiple: true, default: [] },
      disable: { type: 'string', multiple: true, default: [] },
      'generated-bindings': { type: 'boolean', default: false },
      quiet: { type: 'boolean', short: 'q', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (positionals.length !== 1 || !values.out) {
    console.error(USAGE);
    return 2;
  }
  const built = await build({
    input: positionals[0],
    out: values.out,
    wit: values.wit,
    enable: values.enable,
    disable: values.disable,
    keepBundle: values['keep-bundle'],
    fastBindings: !values['generated-bindings'],
  });
  if (!values['generated-bindings'] && !built.fastBindings) {
    console.error(`sluice-build: warning: using componentize-js's generated process bindings (${built.bindingsNote})`);
  }
  if (!values['generated-bindings'] && built.fastStateImports === false) {
    console.error(`sluice-build: warning: using componentize-js's generated state imports (${built.stateImportsNote})`);
  }
  if (!values.quiet) {
    const mib = (built.bytes / 1048576).toFixed(1);
    console.error(`sluice-build: wrote ${built.out} (${mib} MiB, world ${built.world}) in ${built.seconds.toFixed(1)} s`);
  }
  return 0;
}

if (isMain()) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err) => {
      // esbuild's errors carry located messages; componentize-js's carry
      // the wizer output (e.g. an exception at module top level).
      const located = err.errors?.map((e) => (e.location ? `${e.location.file}:${e.location.line}:${e.location.column}: ${e.text}` : e.text));
      console.error(`sluice-build: ${located?.length ? located.join('\n') : err.message}`);
      process.exit(1);
    },
  );
}
