"""End to end: builds tests/plugins/kitchen_sink.py into a component and
runs it with the real host (`sluice exec`). Slow (a build is ~15 s, each
`sluice exec` compiles the component for ~10 s) and needs componentize-py
and target/release/sluice, so it runs only with SLUICE_COMPONENT_TESTS=1:

    SLUICE_COMPONENT_TESTS=1 python3 -m unittest discover -s plugins/python/tests -p test_component.py
"""

import json
import os
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

import support

SLUICE = Path(os.environ.get("SLUICE_BIN", support.PYTHON_DIR.parents[1] / "target" / "release" / "sluice"))
ENABLED = os.environ.get("SLUICE_COMPONENT_TESTS") == "1"


@unittest.skipUnless(ENABLED, "set SLUICE_COMPONENT_TESTS=1 to build and run a component")
class ComponentTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.wasm = Path(cls.tmp.name) / "kitchen-sink.wasm"
        subprocess.run(
            [sys.executable, "-m", "sluice_sdk", "build", "-q",
             str(support.PYTHON_DIR / "tests" / "plugins" / "kitchen_sink.py"), "-o", str(cls.wasm)],
            check=True, cwd=support.PYTHON_DIR,
        )

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def exec(self, lines, *config):
        args = [str(SLUICE), "exec", str(self.wasm)]
        for pair in config:
            args += ["-c", pair]
        proc = subprocess.run(args, input="".join(json.dumps(l) + "\n" for l in lines),
                              capture_output=True, text=True)
        return proc.returncode, [json.loads(l) for l in proc.stdout.splitlines()], proc.stderr

    def test_outcomes(self):
        code, out, stderr = self.exec([
            {"value": "plain"}, {"value": "drop"}, {"value": "invalid"}, {"value": "retry"},
            {"value": "log"}, {"value": "fan", "key": "K", "headers": [["h", "1"], ["h", "2"]]},
            {"value": "header", "headers": [["h", "v1"], ["h", "v2"]]}, {"value": None},
            {"value_base64": "/w=="}, {"value": "nan"}, {"value": "single"},
        ], "prefix=P-")
        self.assertEqual(code, 0, stderr)
        self.assertEqual(out[0]["outputs"], [{"topic": None, "key": None, "value": "P-plain", "headers": []}])
        self.assertEqual(out[1]["outputs"], [])
        self.assertEqual(out[2]["error"], {"kind": "invalid", "message": "asked to be invalid"})
        self.assertEqual(out[3]["error"], {"kind": "retryable", "message": "asked to retry"})
        self.assertIn("a warning from python", stderr)
        self.assertIn("kitchen sink ready, prefix 'P-'", stderr)
        self.assertEqual(out[5]["outputs"], [
            {"topic": "a", "key": "k1", "value": "P-one", "headers": [["h", "1"], ["h", "2"]]},
            {"topic": None, "key": "K", "value": '{"two":2,"é":[1.5,null]}',
             "headers": [["h", "1"], ["h", "2"], ["x", {"base64": "/w=="}]]},
            {"topic": None, "key": "K", "value": "three", "headers": []},
            {"topic": None, "key": "K", "value": None, "headers": [["only", "this"]]},
        ])
        self.assertEqual(out[6]["outputs"][0]["value"], "v1")
        self.assertEqual(out[7]["outputs"], [{"topic": None, "key": None, "value": None, "headers": []}])
        self.assertEqual(out[8]["error"]["kind"], "invalid")
        self.assertTrue(out[8]["error"]["message"].startswith("event value is not valid UTF-8: "))
        self.assertEqual(out[9]["error"], {
            "kind": "invalid",
            "message": "cannot serialize output as JSON: Out of range float values are not JSON compliant: nan"})
        self.assertEqual(out[10]["outputs"][0]["value"], "single")

    def test_an_exception_is_a_trap_with_the_traceback(self):
        code, out, _ = self.exec([{"value": "a"}, {"value": "boom"}, {"value": "b"}, {"value": "none"}])
        self.assertEqual(code, 0)
        self.assertEqual([o["ok"] for o in out], [True, False, True, False])
        trap = out[1]["error"]
        self.assertEqual(trap["kind"], "trap")
        for part in ("Traceback", "kitchen_sink.py", "ValueError: kaboom from python",
                     "sluice: raised by process() on the event at exec/0@1"):
            self.assertIn(part, trap["message"])
        self.assertEqual(out[3]["error"]["kind"], "trap")
        self.assertIn("TypeError: process() returned None", out[3]["error"]["message"])

    def test_init_refusals(self):
        code, _, stderr = self.exec([{"value": "a"}], "refuse=not today")
        self.assertNotEqual(code, 0)
        self.assertIn("init failed: not today", stderr)
        code, _, stderr = self.exec([{"value": "a"}], "explode=boom")
        self.assertNotEqual(code, 0)
        self.assertIn("init failed: KeyError: 'boom'", stderr)


if __name__ == "__main__":
    unittest.main()
