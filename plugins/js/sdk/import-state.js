// The `sluice:plugin/state` imports, as build.mjs puts them into the
// component's bindings in place of the ones componentize-js 0.23.0
// generates (see bindings.mjs). Not a module: each function is spliced into
// the generated bindings script and uses that script's names ($memory,
// $realloc, $dealloc, the $import_sluice_plugin_state_0_1_0$* core imports,
// TEXT_DECODER_UTF8, ComponentError, _requireValidNumericPrimitive,
// toUint32).
//
// The generated functions re-read `$memory.buffer` (a native getter) and
// rebuild a DataView for every field, and build a `{tag, val}` result
// object per call only to unwrap it; in SpiderMonkey's interpreter that was
// two thirds of a `get`'s cost. These read the return area with one view
// made after the call (the call may grow memory), lower and lift the same
// values, throw the same errors and free the same allocations, in the same
// order (test/bindings.test.js checks).
//
// Return areas (canonical ABI): `result<T, error>` has its discriminant at
// +0; the `error` case's own discriminant and string follow T's alignment:
// at +4 (+8 ptr, +12 len) for get, set, delete, exists and list-keys, at
// +8 (+12, +16) for delete-prefix, whose `ok` u64 is at +8.

// @sluice-fast-import state-lower
function $stateLower(val) {
  // A `list<u8>` argument into fresh guest memory, as the generated code
  // does it (allocate, then check and copy); the length is left in
  // $stateLen (no array per call).
  const array = Array.isArray(val);
  const len = array ? val.length : val.byteLength;
  const ptr = $realloc(0, 0, 1, len);
  if (array) {
    const out = new Uint8Array($memory.buffer, ptr, len);
    let i = 0;
    for (const v of val) {
      _requireValidNumericPrimitive('u8', v);
      out[i++] = v;
    }
  } else {
    new Uint8Array($memory.buffer, ptr, len).set(new Uint8Array(val.buffer || val, val.byteOffset, len));
  }
  $stateLen = len;
  return ptr;
}
var $stateLen = 0;

function $stateError(dv, ret, at) {
  // The `error` case at `at`: frees its string and the return area, and
  // returns the exception the generated bindings throw.
  const ptr = dv.getUint32(ret + at + 4, true);
  const len = dv.getUint32(ret + at + 8, true);
  const message = TEXT_DECODER_UTF8.decode(new Uint8Array(dv.buffer, ptr, len));
  if (len !== 0) $dealloc(ptr, len, 1);
  $dealloc(ret);
  return new ComponentError({ tag: 'unavailable', val: message });
}

// @sluice-fast-import get
function import_sluice_plugin_state_0_1_0$get(arg0) {
  const ptr0 = $stateLower(arg0);
  const ret = $import_sluice_plugin_state_0_1_0$get(ptr0, $stateLen);
  const dv = new DataView($memory.buffer);
  if (dv.getUint8(ret) !== 0) throw $stateError(dv, ret, 4);
  let value;
  if (dv.getUint8(ret + 4) !== 0) {
    const ptr = dv.getUint32(ret + 8, true);
    const len = dv.getUint32(ret + 12, true);
    value = new Uint8Array(dv.buffer.slice(ptr, ptr + len));
    if (len !== 0) $dealloc(ptr, len, 1);
  }
  $dealloc(ret);
  return value;
}

// @sluice-fast-import set
function import_sluice_plugin_state_0_1_0$set(arg0, arg1) {
  const ptr0 = $stateLower(arg0);
  const len0 = $stateLen;
  const ptr1 = $stateLower(arg1);
  const ret = $import_sluice_plugin_state_0_1_0$set(ptr0, len0, ptr1, $stateLen);
  const dv = new DataView($memory.buffer);
  if (dv.getUint8(ret) !== 0) throw $stateError(dv, ret, 4);
  $dealloc(ret);
  return undefined;
}

// @sluice-fast-import delete
function import_sluice_plugin_state_0_1_0$delete(arg0) {
  const ptr0 = $stateLower(arg0);
  const ret = $import_sluice_plugin_state_0_1_0$delete(ptr0, $stateLen);
  const dv = new DataView($memory.buffer);
  if (dv.getUint8(ret) !== 0) throw $stateError(dv, ret, 4);
  $dealloc(ret);
  return undefined;
}

// @sluice-fast-import exists
function import_sluice_plugin_state_0_1_0$exists(arg0) {
  const ptr0 = $stateLower(arg0);
  const ret = $import_sluice_plugin_state_0_1_0$exists(ptr0, $stateLen);
  const dv = new DataView($memory.buffer);
  if (dv.getUint8(ret) !== 0) throw $stateError(dv, ret, 4);
  const found = dv.getUint8(ret + 4) !== 0;
  $dealloc(ret);
  return found;
}

// @sluice-fast-import listKeys
function import_sluice_plugin_state_0_1_0$listKeys(arg0, arg1, arg2) {
  const ptr0 = $stateLower(arg0);
  const len0 = $stateLen;
  let some = 0;
  let ptr1 = 0;
  let len1 = 0;
  if (arg1 !== null && arg1 !== undefined) {
    some = 1;
    ptr1 = $stateLower(arg1);
    len1 = $stateLen;
  }
  const ret = $import_sluice_plugin_state_0_1_0$listKeys(ptr0, len0, some, ptr1, len1, toUint32(arg2));
  const dv = new DataView($memory.buffer);
  if (dv.getUint8(ret) !== 0) throw $stateError(dv, ret, 4);
  const count = dv.getUint32(ret + 8, true);
  const list = dv.getUint32(ret + 4, true);
  if (list % 4 !== 0) throw new TypeError(`list pointer [${list}] is not aligned to 4`);
  const keys = new Array(count);
  for (let i = 0; i < count; i++) {
    const ptr = dv.getUint32(list + i * 8, true);
    const len = dv.getUint32(list + i * 8 + 4, true);
    keys[i] = new Uint8Array(dv.buffer.slice(ptr, ptr + len));
    if (len !== 0) $dealloc(ptr, len, 1);
  }
  if (count !== 0) $dealloc(list, count * 8, 4);
  $dealloc(ret);
  return keys;
}

// @sluice-fast-import deletePrefix
function import_sluice_plugin_state_0_1_0$deletePrefix(arg0) {
  const ptr0 = $stateLower(arg0);
  const ret = $import_sluice_plugin_state_0_1_0$deletePrefix(ptr0, $stateLen);
  const dv = new DataView($memory.buffer);
  if (dv.getUint8(ret) !== 0) throw $stateError(dv, ret, 8);
  const count = dv.getBigUint64(ret + 8, true);
  $dealloc(ret);
  return count;
}
