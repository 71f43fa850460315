"""scripts/check-layers catches what it is for: run on a copy of
runtime/src with a circle, a cycle among siblings, or an oversized file
added, it fails and names them; test code and comments do not count.

Run: python3 -m unittest discover -s scripts -p 'check_layers_test.py'
"""

import os
import shutil
import subprocess
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
CHECK = os.path.join(HERE, "check-layers")
SRC = os.path.join(os.path.dirname(HERE), "runtime", "src")


class CheckLayers(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp()
        self.src = os.path.join(self.dir, "src")
        shutil.copytree(SRC, self.src)

    def tearDown(self):
        shutil.rmtree(self.dir)

    def append(self, rel, text):
        with open(os.path.join(self.src, rel), "a", encoding="utf-8") as f:
            f.write(text)

    def run_check(self):
        done = subprocess.run([CHECK, self.src], capture_output=True, text=True)
        return done.returncode, done.stdout + done.stderr

    def test_the_tree_as_it_is_passes(self):
        code, out = self.run_check()
        self.assertEqual(code, 0, out)

    def test_a_circle_between_top_level_modules_fails(self):
        # `cli` uses `clock`; `clock` naming `cli` closes a circle.
        self.append("clock.rs", "\nuse crate::cli::main as _entry;\n")
        code, out = self.run_check()
        self.assertEqual(code, 1, out)
        self.assertIn("import circle in crate among cli, clock", out)
        self.assertIn("runtime/src/clock.rs:", out)

    def test_a_circle_in_a_use_group_among_siblings_fails(self):
        self.append("http/auth.rs", "\nuse super::{api::{self as _api}};\n")
        self.append("http/api.rs", "\nuse super::auth::Authorized as _A;\n")
        code, out = self.run_check()
        self.assertEqual(code, 1, out)
        self.assertIn("import circle in http among api, auth", out)

    def test_test_code_comments_and_strings_do_not_count(self):
        self.append(
            "clock.rs",
            "\n// crate::cli::main\n/// [`crate::cli`]\n"
            "const _S: &str = \"crate::cli::main\";\n"
            "#[cfg(test)]\nmod more_tests {\n    use crate::cli::main as _m;\n}\n",
        )
        code, out = self.run_check()
        self.assertEqual(code, 0, out)

    def test_a_file_over_the_cap_fails(self):
        self.append("clock.rs", "\n" * 600)
        code, out = self.run_check()
        self.assertEqual(code, 1, out)
        self.assertIn("runtime/src/clock.rs:", out)
        self.assertIn("over the cap of 500", out)


if __name__ == "__main__":
    unittest.main()
