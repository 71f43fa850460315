"""Reproduces the linear-memory growth of componentize-py 0.25.1 guests
without the SDK: a bare `WitWorld` for `wit/plugin.wit`.

Config `size`: every event gets one output whose value is SIZE bytes (the
same `bytes` object each time); `size=-1` returns no outputs (`Ok([])`),
`size=-2` fails every event with `Err(invalid("x"))`. Python's own heap
stays flat (tracemalloc and `gc.get_objects()` do not move); what grows is
memory the componentize-py runtime allocates in Rust and never frees:

- every `list<u8>` the guest returns (an output's value, key or header
  value) is copied into a fresh allocation (`maybe_pop_list` in its
  `runtime/src/lib.rs`) that is never handed to `defer_deallocate`, so it
  is not freed after post-return: one chunk per value, its size rounded up;
- every empty list that crosses the boundary, either way (an event without
  headers, an `Ok([])`, `without_headers()`), costs a 16-byte chunk: its
  `cabi_realloc` passes size 0 to `alloc::alloc` (undefined behaviour in
  Rust; wasi-libc's malloc returns a minimum chunk), and the wit-dylib glue
  skips the deallocation of zero-byte lists.

Build and measure (bytes per event, from the event counts at which the host
replaces the instance under two memory caps: 3/4 of the extra 4 MiB of
room, divided by the extra events the larger cap allows):

    cd plugins/python/tests/plugins
    componentize-py -d ../../../../wit -w processor componentize leak_repro -o /tmp/leak.wasm
    python3 -c "print('{\\"value\\":null}\\n' * 1000000, end='')" > /tmp/tomb.jsonl
    python3 -c "print('{\\"value\\":null,\\"headers\\":[[\\"h\\",\\"v\\"]]}\\n' * 1000000, end='')" > /tmp/tombh.jsonl
    rate() {  # rate INPUT SIZE
      at() { SLUICE_LOG=sluice=debug sluice exec /tmp/leak.wasm -c size=$2 --memory-mib $3 -i $1 2>&1 \\
             | grep -n 'nears the cap' | head -1 | cut -d: -f1; }
      a=$(at $1 $2 16); b=$(at $1 $2 20)
      if [ -z "$b" ]; then echo "$1 size=$2: flat"
      else python3 -c "print('$1 size=$2:', round(0.75 * 4 * 2**20 / ($b - $a), 1), 'B/event')"; fi; }
    rate /tmp/tomb.jsonl -1; rate /tmp/tombh.jsonl -1; rate /tmp/tomb.jsonl -2; rate /tmp/tombh.jsonl -2

Measured (sluice exec, wasmtime 48): no headers + `Ok([])` 33.8 B/event;
one header + `Ok([])` 16.9; no headers + `Err` 20.5; one header + `Err`
flat (no replacement in 1M events). With one output of SIZE bytes, on
generated orders (no headers): SIZE=1 44.5, 16 48.0, 100 146, 1000 ~1024,
10000 ~9830 B/event.
"""

from componentize_py_types import Err, Ok

import wit_world
from wit_world.imports import types

size = 100


class WitWorld(wit_world.WitWorld):
    def init(self, config):
        global size
        size = int(dict(config).get("size", "100"))

    def process(self, events):
        if size == -2:
            return [Err(types.ProcessError_Invalid("x")) for _ in events]
        if size == -1:
            return [Ok([]) for _ in events]
        value = b"x" * size
        return [Ok([types.Output(None, None, value, None)]) for _ in events]
