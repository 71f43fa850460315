import io
import os
import tempfile
import unittest
from contextlib import redirect_stderr
from pathlib import Path
from unittest import mock

import support

from sluice_sdk import build


class FindWitTest(unittest.TestCase):
    def test_checkout(self):
        wit = build.find_wit(None, support.PYTHON_DIR / "order-enrich" / "order_enrich.py")
        self.assertEqual(wit, support.PYTHON_DIR.parents[1] / "wit")
        self.assertTrue((wit / "plugin.wit").is_file())

    def test_explicit_and_env(self):
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "plugin.wit").write_text("package x:y;")
            self.assertEqual(build.find_wit(tmp, Path("app.py")), Path(tmp).resolve())
            self.assertEqual(build.find_wit(str(Path(tmp) / "plugin.wit"), Path("app.py")), Path(tmp).resolve())
            with mock.patch.dict(os.environ, {"SLUICE_WIT": tmp}):
                self.assertEqual(build.find_wit(None, Path("app.py")), Path(tmp).resolve())
            with self.assertRaisesRegex(build.BuildError, "no plugin.wit there"):
                build.find_wit(str(Path(tmp) / "nope"), Path("app.py"))

    def test_walks_up_from_the_app_when_not_in_a_checkout(self):
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "wit").mkdir()
            (Path(tmp) / "wit" / "plugin.wit").write_text("package x:y;")
            (Path(tmp) / "src").mkdir()
            app = Path(tmp) / "src" / "app.py"
            with mock.patch.object(build, "SDK_DIR", Path(tmp) / "a" / "b" / "c" / "sluice_sdk"):
                self.assertEqual(build.find_wit(None, app), Path(tmp) / "wit")


    def test_the_copy_an_installed_sdk_carries(self):
        with tempfile.TemporaryDirectory() as tmp:
            sdk = Path(tmp) / "site-packages" / "sluice_sdk"
            (sdk / "wit").mkdir(parents=True)
            (sdk / "wit" / "plugin.wit").write_text("package x:y;")
            app = Path(tmp) / "elsewhere" / "app.py"
            with mock.patch.object(build, "SDK_DIR", sdk), mock.patch.object(Path, "cwd", lambda: Path(tmp)):
                self.assertEqual(build.find_wit(None, app), sdk / "wit")
            with mock.patch.object(build, "SDK_DIR", Path(tmp) / "x" / "y" / "z" / "sluice_sdk"), \
                    mock.patch.object(Path, "cwd", lambda: Path(tmp)), \
                    self.assertRaisesRegex(build.BuildError, "cannot find wit/plugin.wit"):
                build.find_wit(None, app)


class BuildArgsTest(unittest.TestCase):
    def error(self, *argv):
        stderr = io.StringIO()
        with redirect_stderr(stderr):
            self.assertEqual(build.main(["build", *argv]), 1)
        return stderr.getvalue()

    def test_bad_apps(self):
        with tempfile.TemporaryDirectory() as tmp:
            self.assertIn("not a Python file", self.error(str(Path(tmp) / "missing.py")))
            bad = Path(tmp) / "my-app.py"
            bad.write_text("")
            self.assertIn("not a valid module name", self.error(str(bad)))
            reserved = Path(tmp) / "sluice_sdk.py"
            reserved.write_text("")
            self.assertIn("reserved", self.error(str(reserved)))
            ok = Path(tmp) / "app.py"
            ok.write_text("")
            self.assertIn("not a Python name", self.error(str(ok), "--plugin", "a-b"))


class WorldTest(unittest.TestCase):
    def test_the_world_follows_the_import_unless_told(self):
        seen = []

        def fake_run(command, env=None):
            seen.append(command[command.index("-w") + 1])
            Path(command[command.index("-o") + 1]).write_bytes(b"")
            return mock.Mock(returncode=0)

        with tempfile.TemporaryDirectory() as tmp, mock.patch.object(build.subprocess, "run", fake_run), \
                mock.patch.object(build, "_check_componentize_py", lambda: None):
            plain = Path(tmp) / "plain.py"
            plain.write_text("from sluice_sdk import Output\n")
            stateful = Path(tmp) / "counts.py"
            stateful.write_text("from sluice_sdk import Output, state\n")
            for app, flag in ((plain, None), (stateful, None), (plain, True), (stateful, False)):
                build.build(str(app), str(Path(tmp) / "out.wasm"), quiet=True, stateful=flag)
            with redirect_stderr(io.StringIO()):
                self.assertEqual(build.main(["build", str(plain), "-o", str(Path(tmp) / "o.wasm"), "-q", "--stateful"]), 0)
        self.assertEqual(
            seen,
            ["processor", "stateful-processor", "stateful-processor", "processor", "stateful-processor"],
        )


if __name__ == "__main__":
    unittest.main()
