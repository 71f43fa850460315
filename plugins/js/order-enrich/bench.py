#!/usr/bin/env python3
"""Per-event cost of order-enrich through `sluice exec`, JS vs Rust.

    python3 plugins/js/order-enrich/bench.py [--events 10000] [--batch-size 128]
        [--runs 3] [--wasm NAME=PATH ...]

For each plugin, runs `sluice exec --batch-size B` over N generated orders,
`--runs` times (interleaved across plugins), and prints the median (and
the minimum, the run a loaded machine disturbed least) of:

- wall/N: the whole run's wall time over N, compile included (a JS
  component takes seconds to compile, so this says little about events);
- per event, wall: from the first outcome line on stdout (the component
  is compiled and the first batch done) to the N-th, over N - 1;
- per event, CPU: the sluice process's user+sys CPU time over the same
  span (from /proc; 10 ms ticks), which a loaded machine disturbs less.

The host's JSON-lines parsing and printing are in every number, the same
for every plugin; a do-nothing plugin shows that floor.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
sys.path.insert(0, HERE)
from compare import gen_orders  # noqa: E402


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(sluice, wasm, path, batch, count):
    """(total wall, wall per event, CPU per event) of one run over `count` events."""
    start = time.perf_counter()
    proc = subprocess.Popen([sluice, "exec", wasm, "-i", path, "--batch-size", str(batch)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.readline()
    t_first, cpu_first = time.perf_counter(), cpu_seconds(proc.pid)
    lines = 1
    t_last = cpu_last = None
    for _ in proc.stdout:
        lines += 1
        if lines == count:
            t_last, cpu_last = time.perf_counter(), cpu_seconds(proc.pid)
    err = proc.stderr.read()
    proc.wait()
    total = time.perf_counter() - start
    if proc.returncode != 0 or lines != count:
        sys.exit(f"{wasm}: exit {proc.returncode}, {lines} lines: {err.decode()[-500:]}")
    return total, (t_last - t_first) / (count - 1), (cpu_last - cpu_first) / (count - 1)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--events", type=int, default=10000)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--sluice", default=os.path.join(ROOT, "target/release/sluice"))
    p.add_argument("--wasm", action="append", metavar="NAME=PATH",
                   help="plugins to measure (default: js and rust order-enrich)")
    a = p.parse_args()
    plugins = [w.split("=", 1) for w in a.wasm] if a.wasm else [
        ("js", os.path.join(ROOT, "plugins/order-enrich-js.wasm")),
        ("rust", os.path.join(ROOT, "plugins/order-enrich.wasm")),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "orders.jsonl")
        with open(path, "w") as f:
            f.writelines(json.dumps(e) + "\n" for e in gen_orders(a.events, 7))
        results = {name: [] for name, _ in plugins}
        for _ in range(a.runs):
            for name, wasm in plugins:
                results[name].append(measure(a.sluice, wasm, path, a.batch_size, a.events))
    print(f"{a.events} events, batch size {a.batch_size}, {a.runs} runs: median (min)")
    print(f"{'plugin':18} {'wall':>8} {'wall/N':>8} {'per event, wall':>20} {'per event, CPU':>20}")
    for name, _ in plugins:
        runs = results[name]
        med = [statistics.median(r[i] for r in runs) for i in range(3)]
        low = [min(r[i] for r in runs) for i in range(3)]
        print(f"{name:18} {med[0]:7.2f}s {med[0] / a.events * 1e6:6.0f}us "
              f"{med[1] * 1e6:10.1f}us ({low[1] * 1e6:5.1f}) {med[2] * 1e6:10.1f}us ({low[2] * 1e6:5.1f})")

if __name__ == "__main__":
    main()
