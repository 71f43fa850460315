#!/usr/bin/env python3
"""Per-event cost of order-enrich through `sluice exec --batch-size 128`,
Python versus Rust.

For each plugin it runs `sluice exec` over N generated orders and reports:

- `wall`: the whole run (instantiation and Cranelift compilation included;
  compiling the ~19 MB Python component dominates it);
- `startup`: the same run on a single event;
- `(wall - startup) / N`: the per-event cost end to end;
- `stream`: the time from the first output line to the last, divided by
  the events printed in between: the steady-state per-event cost, free of
  compilation noise.

Each figure is the best of --repeat runs.

With --boundary it also runs `sluice-bench boundary` (the host's own
in-process benchmark: thread CPU time per event, so other load on the
machine inflates it less) on the Python passthrough and order-enrich,
then on the Rust ones.

    python3 plugins/python/bench.py [--events 10000] [--repeat 3] [--boundary]
"""

import argparse
import json
import os
import shutil
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def orders(n, seed=1):
    rng = random.Random(seed)
    for i in range(n):
        order = {
            "order_id": f"ORD-{i:06d}",
            "customer_id": f"CUST-{rng.randint(1, 999):03d}",
            "amount": round(rng.uniform(0, 300), 2),
            "timestamp": 1732400000.0 + i,
        }
        yield json.dumps({"key": order["customer_id"], "value": order})


def run(sluice, plugin, path, batch):
    started = time.monotonic()
    proc = subprocess.Popen(
        [sluice, "exec", str(plugin), "--batch-size", str(batch), "-i", path],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )
    first = None
    first_lines = lines = 0
    for chunk in iter(lambda: proc.stdout.read1(1 << 16), b""):
        lines += chunk.count(b"\n")
        if first is None:
            # The first chunk of output: compilation and the first batch are
            # behind us; count the rest.
            first, first_lines = time.monotonic(), lines
    end = time.monotonic()
    if proc.wait() != 0:
        sys.exit(f"sluice exec {plugin} failed")
    return end - started, (end - first) / max(lines - first_lines, 1), lines


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sluice", default=os.environ.get("SLUICE_BIN", str(ROOT / "target/release/sluice")),
                        help="the host binary (default: $SLUICE, else target/release/sluice)")
    parser.add_argument("--python", default=str(HERE / "order-enrich.wasm"))
    parser.add_argument("--rust", default=str(ROOT / "plugins/order-enrich.wasm"))
    parser.add_argument("--boundary", action="store_true", help="also run sluice-bench boundary")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        many = Path(tmp, "orders.jsonl")
        one = Path(tmp, "one.jsonl")
        many.write_text("\n".join(orders(args.events)) + "\n")
        one.write_text(next(orders(1)) + "\n")
        for name, plugin in (("python", args.python), ("rust", args.rust)):
            walls, streams, startups = [], [], []
            for _ in range(args.repeat):
                wall, stream, lines = run(args.sluice, plugin, str(many), args.batch_size)
                assert lines == args.events, (lines, args.events)
                startup, _, _ = run(args.sluice, plugin, str(one), args.batch_size)
                walls.append(wall)
                streams.append(stream)
                startups.append(startup)
            wall, startup, stream = min(walls), min(startups), min(streams)
            print(
                f"{name:6} {args.events} events, batch {args.batch_size}: wall {wall:.2f} s "
                f"({wall / args.events * 1e6:.0f} µs/event), startup {startup:.2f} s, "
                f"(wall - startup)/N {(wall - startup) / args.events * 1e6:.1f} µs/event, "
                f"stream {stream * 1e6:.1f} µs/event"
            )
        if args.boundary:
            boundary(args, Path(tmp))


def boundary(args, tmp):
    """`sluice-bench boundary` at batch 128 on the Python plugins, then the Rust ones."""
    bench = Path(args.sluice).with_name("sluice-bench")
    pydir = tmp / "python-plugins"
    pydir.mkdir()
    sys.path.insert(0, str(HERE))
    from sluice_sdk.build import build

    build(str(HERE / "tests" / "plugins" / "passthrough.py"), str(pydir / "passthrough.wasm"), quiet=True)
    shutil.copy(args.python, pydir / "order-enrich.wasm")
    for name, directory in (("python", pydir), ("rust", Path(args.rust).parent)):
        print(f"\n{name}: sluice-bench boundary --plugins-dir {directory}")
        subprocess.run(
            [str(bench), "boundary", "--plugins-dir", str(directory), "--batch-sizes", "128",
             "--events", "256000", "--instances", "20", "--compiles", "1"],
            check=True,
        )


if __name__ == "__main__":
    main()
