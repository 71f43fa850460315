"""Packaging hook: a wheel of the SDK carries a copy of the checkout's
`wit/plugin.wit` (as `sluice_sdk/wit/plugin.wit`), so an SDK installed with
`pip install plugins/python` can build plugins outside the checkout. An
editable install and a checkout use `wit/` itself. Metadata is in
pyproject.toml."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

WIT = Path(__file__).resolve().parents[2] / "wit" / "plugin.wit"


class BuildPy(build_py):
    def run(self):
        super().run()
        if WIT.is_file() and not getattr(self, "editable_mode", False):
            target = Path(self.build_lib) / "sluice_sdk" / "wit"
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy2(WIT, target / "plugin.wit")


setup(cmdclass={"build_py": BuildPy})
