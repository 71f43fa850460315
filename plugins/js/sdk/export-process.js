// The world's `process` export, as build.mjs puts it into the component's
// bindings in place of the one componentize-js 0.23.0 generates (see
// bindings.mjs). Not a module: it is spliced into the generated bindings
// script and uses that script's names ($memory, $realloc, $dealloc,
// process$1, TEXT_DECODER_UTF8, TEXT_ENCODER_UTF8,
// _requireValidNumericPrimitive, contentGlobal).
//
// Record layouts (canonical ABI, wit/plugin.wit): event 72 bytes, align 8;
// header 16; outcome (result<list<output>, process-error>) 16; output 48.

async function export_process(arg0, arg1, arg2) {
  // Memory views, renewed when an address lies past them (memory grew).
  // Growing never moves existing bytes, so an old view stays valid for
  // everything it covers. 32-bit fields are read and written as typed
  // array elements, which the interpreter does in about a third of the
  // time of a DataView method call; every such field is 4-aligned (the
  // lists are checked or come from malloc). wasm is little-endian, and so
  // are typed arrays on it.
  let u8, u32, i32, dv;
  const renew = () => {
    const buffer = $memory.buffer;
    u8 = new Uint8Array(buffer);
    u32 = new Uint32Array(buffer, 0, buffer.byteLength >>> 2);
    i32 = new Int32Array(buffer, 0, buffer.byteLength >>> 2);
    dv = new DataView(buffer);
  };
  renew();
  // malloc aligns to 8 or more; checked anyway, as a misaligned pointer
  // would make the element index below silently wrong.
  const aligned = (ptr) => {
    if ((ptr & 3) !== 0) throw new TypeError(`list pointer [${ptr}] is not aligned to 4`);
  };
  const U8 = contentGlobal.Uint8Array;

  const count = arg1;
  const list = arg0;
  if (list % 8 !== 0) throw new TypeError(`list pointer [${list}] is not aligned to 8`);
  const events = new Array(count);
  for (let i = 0; i < count; i++) {
    const base = list + i * 72;
    const topicPtr = u32[base >>> 2];
    const topicLen = u32[(base + 4) >>> 2];
    const topic = TEXT_DECODER_UTF8.decode(u8.subarray(topicPtr, topicPtr + topicLen));
    if (topicLen !== 0) $dealloc(topicPtr, topicLen, 1);
    const timestampMs = u8[base + 24] ? dv.getBigInt64(base + 32, true) : undefined;
    let key;
    if (u8[base + 40]) {
      const ptr = u32[(base + 44) >>> 2];
      const len = u32[(base + 48) >>> 2];
      key = u8.slice(ptr, ptr + len);
      if (len !== 0) $dealloc(ptr, len, 1);
    }
    let value;
    if (u8[base + 52]) {
      const ptr = u32[(base + 56) >>> 2];
      const len = u32[(base + 60) >>> 2];
      value = u8.slice(ptr, ptr + len);
      if (len !== 0) $dealloc(ptr, len, 1);
    }
    const headerCount = u32[(base + 68) >>> 2];
    const headerList = u32[(base + 64) >>> 2];
    if (headerList % 4 !== 0) throw new TypeError(`list pointer [${headerList}] is not aligned to 4`);
    const headers = [];
    for (let h = 0; h < headerCount; h++) {
      const at = headerList + h * 16;
      const namePtr = u32[at >>> 2];
      const nameLen = u32[(at + 4) >>> 2];
      const name = TEXT_DECODER_UTF8.decode(u8.subarray(namePtr, namePtr + nameLen));
      if (nameLen !== 0) $dealloc(namePtr, nameLen, 1);
      const ptr = u32[(at + 8) >>> 2];
      const len = u32[(at + 12) >>> 2];
      const bytes = u8.slice(ptr, ptr + len);
      if (len !== 0) $dealloc(ptr, len, 1);
      headers.push([name, bytes]);
    }
    if (headerCount !== 0) $dealloc(headerList, headerCount * 16, 4);
    events[i] = {
      topic,
      partition: i32[(base + 8) >>> 2],
      offset: dv.getBigInt64(base + 16, true),
      timestampMs,
      key,
      value,
      headers,
    };
  }
  if (count !== 0) $dealloc(list, count * 72, 8);

  const outcomes = await process$1(events);

  // Lowering. Allocation (and JS allocation in between) may grow memory:
  // renew the views before touching an address past them.
  let strPtr = 0;
  let strLen = 0;
  const lowerString = (s) => {
    if (typeof s !== 'string') throw new TypeError('expected a string, received [' + typeof s + ']');
    if (s.length === 0) {
      strPtr = 1;
      strLen = 0;
      return;
    }
    const bytes = TEXT_ENCODER_UTF8.encode(s);
    strLen = bytes.length;
    strPtr = $realloc(0, 0, 1, strLen);
    if (strPtr + strLen > u8.length) renew();
    u8.set(bytes, strPtr);
  };
  // A byte list from a Uint8Array (either realm's), or as the generated
  // bindings take it: an array of u8 numbers, another typed array or an
  // ArrayBuffer (its bytes).
  const lowerBytes = (v) => {
    if (v instanceof U8 || v instanceof Uint8Array) {
      strLen = v.length;
      strPtr = $realloc(0, 0, 1, strLen);
      if (strPtr + strLen > u8.length) renew();
      u8.set(v, strPtr);
      return;
    }
    const isArray = Array.isArray(v);
    strLen = isArray ? v.length : v.byteLength;
    strPtr = $realloc(0, 0, 1, strLen);
    if (strPtr + strLen > u8.length) renew();
    if (isArray) {
      let offset = 0;
      for (const b of v) {
        _requireValidNumericPrimitive('u8', b);
        u8[strPtr + offset] = b;
        offset += 1;
      }
    } else {
      u8.set(new Uint8Array(v.buffer || v, v.byteOffset, strLen), strPtr);
    }
  };

  const total = outcomes.length;
  const result = $realloc(0, 0, 4, total * 16);
  if (total !== 0) aligned(result);
  if (result + total * 16 > u8.length) renew();
  for (let i = 0; i < outcomes.length; i++) {
    const outcome = outcomes[i];
    const base = result + i * 16;
    switch (outcome.tag) {
      case 'ok': {
        const outputs = outcome.val;
        u8[base] = 0;
        const n = outputs.length;
        const block = $realloc(0, 0, 4, n * 48);
        if (n !== 0) aligned(block);
        if (block + n * 48 > u8.length) renew();
        for (let j = 0; j < outputs.length; j++) {
          const at = block + j * 48;
          const { topic, key, value, headers } = outputs[j];
          if (topic === null || topic === undefined) {
            u8[at] = 0;
          } else {
            u8[at] = 1;
            lowerString(topic);
            u32[(at + 8) >>> 2] = strLen;
            u32[(at + 4) >>> 2] = strPtr;
          }
          if (key === null || key === undefined) {
            u8[at + 12] = 0;
          } else {
            u8[at + 12] = 1;
            lowerBytes(key);
            u32[(at + 20) >>> 2] = strLen;
            u32[(at + 16) >>> 2] = strPtr;
          }
          if (value === null || value === undefined) {
            u8[at + 24] = 0;
          } else {
            u8[at + 24] = 1;
            lowerBytes(value);
            u32[(at + 32) >>> 2] = strLen;
            u32[(at + 28) >>> 2] = strPtr;
          }
          if (headers === null || headers === undefined) {
            u8[at + 36] = 0;
          } else {
            u8[at + 36] = 1;
            const h = headers.length;
            const pairs = $realloc(0, 0, 4, h * 16);
            if (h !== 0) aligned(pairs);
            if (pairs + h * 16 > u8.length) renew();
            for (let k = 0; k < headers.length; k++) {
              const pair = headers[k];
              const hat = pairs + k * 16;
              let name;
              let bytes;
              if (Array.isArray(pair)) {
                name = pair[0];
                bytes = pair[1];
              } else {
                [name, bytes] = pair;
              }
              lowerString(name);
              u32[(hat + 4) >>> 2] = strLen;
              u32[hat >>> 2] = strPtr;
              lowerBytes(bytes);
              u32[(hat + 12) >>> 2] = strLen;
              u32[(hat + 8) >>> 2] = strPtr;
            }
            u32[(at + 44) >>> 2] = h;
            u32[(at + 40) >>> 2] = pairs;
          }
        }
        u32[(base + 8) >>> 2] = n;
        u32[(base + 4) >>> 2] = block;
        break;
      }
      case 'err': {
        const error = outcome.val;
        u8[base] = 1;
        switch (error.tag) {
          case 'invalid': {
            u8[base + 4] = 0;
            lowerString(error.val);
            u32[(base + 12) >>> 2] = strLen;
            u32[(base + 8) >>> 2] = strPtr;
            break;
          }
          case 'retryable': {
            u8[base + 4] = 1;
            lowerString(error.val);
            u32[(base + 12) >>> 2] = strLen;
            u32[(base + 8) >>> 2] = strPtr;
            break;
          }
          default: {
            throw new TypeError(`invalid variant tag value \`${JSON.stringify(error.tag)}\` (received \`${error}\`) specified for \`ProcessError\``);
          }
        }
        break;
      }
      default: {
        throw new TypeError('invalid variant specified for result');
      }
    }
  }
  aligned(arg2);
  if (arg2 + 8 > u8.length) renew();
  u32[(arg2 + 4) >>> 2] = total;
  u32[arg2 >>> 2] = result;
  return;
}
