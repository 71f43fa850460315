#!/usr/bin/env python3
"""Runs the Python and the Rust order-enrich through `sluice exec` on the
same events and compares what they do with each: the outcome (ok or the
error kind), the outputs (topic, key, headers, and the value as parsed JSON,
with ints and floats told apart) and the error messages.

Events: --orders generated orders (random amounts, tier boundaries, rounding
ties, extra and overwritten fields, Unicode, key orders) plus every bad
input in the Rust plugin's docs and the JSON parser's corner cases. Configs:
the default, custom thresholds, and every init refusal.

    python3 plugins/python/compare.py [--orders 300]

Exits 1 if an outcome, output or error kind differs, or a message differs
other than a JSON parser's own wording (`event value is not valid JSON: ...`).
"""

import argparse
import base64
import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PARSER_PREFIX = "event value is not valid JSON: "


def order_text(rng, i):
    """One valid order, as JSON text, with some variety."""
    amount = rng.choice([
        lambda: round(rng.uniform(0, 300), 2),
        lambda: round(rng.uniform(0, 300), rng.randint(0, 4)),
        lambda: rng.randint(0, 500),                    # integer amounts
        lambda: rng.choice([0, 0.0, 49.999, 50, 50.0, 99.99, 100, 100.0, 1234.565,
                            0.125, 0.005, 2.675, 1.005, 0.29, 1e-7, 5e-324,
                            90071992547409.92, 9007199254740.99]),
        lambda: rng.uniform(0, 1e6),                    # full-precision floats
        lambda: rng.uniform(0, 1e12),
    ])()
    fields = [
        ("order_id", f"ORD-{i:05d}"),
        ("customer_id", rng.choice([f"CUST-{rng.randint(1, 999):03d}", "Zoë ☕", "tab\there", 'q"uote'])),
        ("amount", amount),
        ("timestamp", 1732400000.0 + rng.randint(0, 10**6) / 10),
    ]
    extras = [
        ("items", [{"sku": "A-1", "qty": 2}, {"sku": "B", "qty": 1, "price": 9.99}]),
        ("note", None),
        ("vip", rng.random() < 0.5),
        ("tier", "stale"),            # overwritten
        ("amount_cents", -1),          # overwritten
        ("zz", {"nested": {"deep": [1, 2.5, "x"]}}),
        ("", "empty key"),
        ("Ä", "non-ASCII key"),
    ]
    fields += rng.sample(extras, rng.randint(0, 3))
    rng.shuffle(fields)
    return json.dumps(dict(fields), ensure_ascii=rng.random() < 0.5,
                      separators=rng.choice([(",", ":"), (", ", ": ")]))


def nested(depth):
    return '{"order_id":"A","amount":1,"x":' + "[" * (depth - 1) + "]" * (depth - 1) + "}"


# (label, value): text (sent as its UTF-8 bytes), bytes, or None (tombstone).
BAD = [
    ("tombstone", None),
    ("not JSON", "not json"),
    ("empty", ""),
    ("blank", "   "),
    ("truncated", '{"order_id":"A","amount":1'),
    ("trailing data", '{"order_id":"A","amount":1} x'),
    ("two values", '{"order_id":"A","amount":1}{}'),
    ("single quotes", "{'order_id':'A','amount':1}"),
    ("trailing comma", '{"order_id":"A","amount":1,}'),
    ("NaN literal", '{"order_id":"A","amount":NaN}'),
    ("Infinity literal", '{"order_id":"A","amount":Infinity}'),
    ("-Infinity literal", '{"order_id":"A","amount":-Infinity}'),
    ("non-UTF-8", b'{"order_id":"A\xff","amount":1}'),
    ("UTF-8 BOM", "\ufeff" + '{"order_id":"A","amount":1}'),
    ("encoded surrogate", b'{"order_id":"\xed\xa0\x80","amount":1}'),
    ("control char in string", '{"order_id":"A\x01","amount":1}'),
    ("lone surrogate escape", '{"order_id":"A\\ud800","amount":1}'),
    ("nested 128 deep", nested(128)),
    ("array", "[1,2]"),
    ("string", '"ORD-1"'),
    ("number", "42"),
    ("null", "null"),
    ("true", "true"),
    ("order_id missing", '{"amount":1}'),
    ("order_id number", '{"order_id":7,"amount":1}'),
    ("order_id null", '{"order_id":null,"amount":1}'),
    ("order_id bool", '{"order_id":true,"amount":1}'),
    ("order_id array", '{"order_id":["A"],"amount":1}'),
    ("order_id object", '{"order_id":{},"amount":1}'),
    ("amount missing", '{"order_id":"A"}'),
    ("amount string", '{"order_id":"A","amount":"11.5"}'),
    ("amount null", '{"order_id":"A","amount":null}'),
    ("amount bool", '{"order_id":"A","amount":false}'),
    ("amount array", '{"order_id":"A","amount":[1]}'),
    ("amount object", '{"order_id":"A","amount":{"v":1}}'),
    ("amount -1.5", '{"order_id":"A","amount":-1.5}'),
    ("amount -1", '{"order_id":"A","amount":-1}'),
    ("amount -0.0001", '{"order_id":"A","amount":-0.0001}'),
    ("amount -1e-300", '{"order_id":"A","amount":-1e-300}'),
    ("amount -1e21", '{"order_id":"A","amount":-1e21}'),
    ("amount 1e300", '{"order_id":"A","amount":1e300}'),
    ("amount 1e17", '{"order_id":"A","amount":1e17}'),
    ("amount 1.5e14 int", '{"order_id":"A","amount":150000000000000}'),
    ("amount 2^53/100 + a bit", '{"order_id":"A","amount":90071992547409.94}'),
    ("amount 10^30 int", '{"order_id":"A","amount":1000000000000000000000000000000}'),
    ("amount u64 max", '{"order_id":"A","amount":18446744073709551615}'),
    ("amount 1e400", '{"order_id":"A","amount":1e400}'),
    ("order_id checked first", '{"amount":"x"}'),
]

# Valid, but where a Python JSON parser could differ from serde_json.
TRICKY = [
    ("surrounding whitespace", ' \n{"order_id":"A","amount":1}\t '),
    ("duplicate keys", '{"order_id":"A","amount":1,"amount":2,"order_id":"B"}'),
    ("-0.0", '{"order_id":"A","amount":-0.0}'),
    ("-0", '{"order_id":"A","amount":-0}'),
    ("1e-400 underflow", '{"order_id":"A","amount":1e-400}'),
    ("escapes", '{"order_id":"A\\u00e9\\n\\"\\/","amount":1,"s":"\\ud83d\\ude00"}'),
    ("nested 127 deep", nested(127)),
    ("big ints elsewhere", '{"order_id":"A","amount":1,"n":-9223372036854775808,"u":18446744073709551615}'),
    ("ints beyond 64 bits", '{"order_id":"A","amount":1,"n":-9223372036854775809,"u":18446744073709551616}'),
    ("1e400 elsewhere", '{"order_id":"A","amount":1,"x":1e400}'),
    ("exponent forms", '{"order_id":"A","amount":1.25E2,"t":1e-5,"u":1E+3}'),
]

CONFIGS_OK = [[], ["silver_from=10", "gold_from=20.5"], ["silver_from=0", "gold_from=0"],
              ["silver_from=1e2", "gold_from=+1E3"]]
CONFIGS_BAD = [["silver_from=lots"], ["gold_from=-1"], ["gold_from=NaN"], ["silver_from=inf"],
               ["silver_from=60", "gold_from=40"], ["silver_from="], ["silver_from= 5"],
               ["gold_from=1_000"], ["silver_from=-0.5"], ["silver_from=150"], ["gold_from=inf"]]


def exec_line(value, i):
    line = {"topic": "orders", "partition": i % 3, "offset": i, "key": f"K{i}",
            "headers": [["source", "web"], ["n", str(i)]]}
    if isinstance(value, bytes):
        line["value_base64"] = base64.b64encode(value).decode()
    else:
        line["value"] = value
    return json.dumps(line)


def run(sluice, plugin, events, config, batch):
    args = [sluice, "exec", str(plugin), "--batch-size", str(batch), "-i", events]
    for pair in config:
        args += ["-c", pair]
    proc = subprocess.run(args, capture_output=True, text=True)
    error = None
    if proc.returncode != 0:
        lines = [l for l in proc.stderr.splitlines() if l.startswith("error:")]
        error = lines[-1] if lines else proc.stderr.strip()[-300:]
        # The plugin's name (from the file name) differs between the two.
        error = error.replace(f"plugin {Path(plugin).stem}:", "plugin X:")
    return [json.loads(l) for l in proc.stdout.splitlines()], error


def typed(value):
    """The parsed JSON value with ints and floats told apart."""
    if isinstance(value, dict):
        return {k: typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [typed(v) for v in value]
    return (type(value).__name__, value)


def parsed_output(output):
    value = output.get("value")
    if value is None:
        return ("raw", output.get("value_base64"))
    try:
        return ("json", typed(json.loads(value)))
    except ValueError:
        return ("raw", value)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=300)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--sluice", default=os.environ.get("SLUICE_BIN", str(ROOT / "target/release/sluice")),
                        help="the host binary (default: $SLUICE, else target/release/sluice)")
    parser.add_argument("--python", default=str(HERE / "order-enrich.wasm"))
    parser.add_argument("--rust", default=str(ROOT / "plugins/order-enrich.wasm"))
    parser.add_argument("-v", "--verbose", action="store_true", help="print every message difference")
    args = parser.parse_args()

    rng = random.Random(args.seed)
    cases = [(f"order {i}", order_text(rng, i)) for i in range(args.orders)] + BAD + TRICKY
    rng.shuffle(cases)
    failures = 0
    parser_wording = []
    with tempfile.TemporaryDirectory() as tmp:
        events = Path(tmp, "events.jsonl")
        events.write_text("".join(exec_line(v, i) + "\n" for i, (_, v) in enumerate(cases)))
        for config in CONFIGS_OK:
            (py, py_err), (rs, rs_err) = (run(args.sluice, p, str(events), config, args.batch_size)
                                          for p in (args.python, args.rust))
            if py_err or rs_err or len(py) != len(cases) or len(rs) != len(cases):
                print(f"config {config}: run failed: python {py_err!r} rust {rs_err!r}")
                failures += 1
                continue
            same_bytes = ok = invalid = exact = 0
            for (label, _), p, r in zip(cases, py, rs):
                if p["ok"] != r["ok"]:
                    failures += 1
                    print(f"DIFF {label} {config}: python {p} / rust {r}")
                elif p["ok"]:
                    ok += 1
                    strip = lambda o: {k: v for k, v in o.items() if k not in ("value", "value_base64")}
                    if [strip(o) for o in p["outputs"]] != [strip(o) for o in r["outputs"]] or [
                        parsed_output(o) for o in p["outputs"]] != [parsed_output(o) for o in r["outputs"]]:
                        failures += 1
                        print(f"DIFF output {label} {config}:\n  python {p['outputs']}\n  rust   {r['outputs']}")
                    if p["outputs"] == r["outputs"]:
                        same_bytes += 1
                    elif args.verbose:
                        print(f"  bytes differ, {label}:\n    python {p['outputs']}\n    rust   {r['outputs']}")
                else:
                    invalid += 1
                    pe, re_ = p["error"], r["error"]
                    if pe["kind"] != re_["kind"]:
                        failures += 1
                        print(f"DIFF kind {label} {config}: python {pe} / rust {re_}")
                    elif pe["message"] == re_["message"]:
                        exact += 1
                    elif pe["message"].startswith(PARSER_PREFIX) and re_["message"].startswith(PARSER_PREFIX):
                        parser_wording.append((label, pe["message"], re_["message"]))
                    else:
                        failures += 1
                        print(f"DIFF message {label} {config}: python {pe['message']!r} / rust {re_['message']!r}")
            print(f"config {config or 'default'}: {len(cases)} events: {ok} ok (outputs equal as parsed JSON; "
                  f"{same_bytes} byte for byte), {invalid} failed with the same kind "
                  f"({exact} same message, {invalid - exact} differing only in the JSON parser's wording)")
        if args.verbose or parser_wording:
            seen = set()
            for label, p, r in parser_wording:
                if label not in seen:
                    seen.add(label)
                    print(f"  parser wording, {label}: python {p[len(PARSER_PREFIX):]!r} / rust {r[len(PARSER_PREFIX):]!r}")
        one = Path(tmp, "one.jsonl")
        one.write_text(exec_line('{"order_id":"A","amount":1}', 0) + "\n")
        for config in CONFIGS_BAD:
            (_, py_err), (_, rs_err) = (run(args.sluice, p, str(one), config, 1) for p in (args.python, args.rust))
            same = py_err == rs_err
            failures += not same
            print(f"init {' '.join(config)}: {'same refusal' if same else 'DIFF'}: {py_err}"
                  + ("" if same else f" / rust: {rs_err}"))
    print("all equal" if not failures else f"{failures} differences")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
