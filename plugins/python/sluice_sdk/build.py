"""`python3 -m sluice_sdk build APP.py -o APP.wasm`: turns a plugin module
into a Sluice component with componentize-py.

It writes a small entry module that imports the SDK glue and the author's
module and defines `WitWorld`, then runs

    componentize-py -d WIT -w WORLD componentize ENTRY -p ... -o OUT

which generates the bindings for `wit/plugin.wit` on the fly (nothing
generated is written next to the sources), pre-initialises CPython with the
modules imported and snapshots it. The component is written to a hidden
temporary file beside OUT and renamed over it, so a host watching the
plugins directory never loads half a file.

WORLD is `processor`, or `stateful-processor` (which adds the host's state
interface to the component's imports) when the plugin's module imports
`sluice_sdk.state` (`uses_state`) or `--stateful` is given. componentize-py
imports every interface of the world it builds for, used or not, so a
stateless plugin must be built for `processor`: the host treats a plugin
that imports the state interface as stateful.

The WIT directory is, in order: `--wit DIR`, `$SLUICE_WIT`, the checkout's
`wit/` relative to this file, the first `wit/plugin.wit` found walking up
from the app's directory or the current directory, or the copy an
installed (non-editable) SDK carries.
"""

from __future__ import annotations

import argparse
import ast
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import List, Optional, Sequence

COMPONENTIZE_PY = "0.25.1"
WORLD = "processor"
STATEFUL_WORLD = "stateful-processor"
ENTRY = "sluice_entry"
SDK_DIR = Path(__file__).resolve().parent


class BuildError(Exception):
    """A build failure with a message for the user."""


def find_wit(explicit: Optional[str], app: Path) -> Path:
    """The directory holding `plugin.wit` (see the module docs for the order)."""
    if explicit:
        path = Path(explicit)
        if path.is_file():
            path = path.parent
        if not (path / "plugin.wit").is_file():
            raise BuildError(f"--wit {explicit}: no plugin.wit there")
        return path.resolve()
    env = os.environ.get("SLUICE_WIT")
    if env:
        if not (Path(env) / "plugin.wit").is_file():
            raise BuildError(f"SLUICE_WIT={env}: no plugin.wit there")
        return Path(env).resolve()
    # plugins/python/sluice_sdk/build.py -> the checkout's wit/
    checkout = SDK_DIR.parents[2] / "wit"
    if (checkout / "plugin.wit").is_file():
        return checkout
    for base in (app.parent, Path.cwd().resolve()):
        for directory in (base, *base.parents):
            if (directory / "wit" / "plugin.wit").is_file():
                return directory / "wit"
    packaged = SDK_DIR / "wit"  # the copy a wheel carries (setup.py)
    if (packaged / "plugin.wit").is_file():
        return packaged
    raise BuildError(
        "cannot find wit/plugin.wit (the SDK is not in a Sluice checkout); pass --wit DIR or set SLUICE_WIT"
    )


def uses_state(source: str, filename: str = "<plugin>") -> bool:
    """Whether the module `source` imports `sluice_sdk.state` (`import
    sluice_sdk.state`, `from sluice_sdk import state`, `from sluice_sdk.state
    import ...`), anywhere in the module."""
    try:
        tree = ast.parse(source, filename)
    except SyntaxError:
        return False  # componentize-py reports it, with the traceback
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            if any(alias.name == "sluice_sdk.state" or alias.name.startswith("sluice_sdk.state.") for alias in node.names):
                return True
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "sluice_sdk.state" or node.module.startswith("sluice_sdk.state."):
                return True
            if node.module == "sluice_sdk" and any(alias.name == "state" for alias in node.names):
                return True
    return False


def _check_componentize_py() -> None:
    try:
        from importlib.metadata import PackageNotFoundError, version
    except ImportError:  # pragma: no cover
        return
    try:
        found = version("componentize-py")
    except PackageNotFoundError:
        raise BuildError(
            f"componentize-py is not installed for {sys.executable}; "
            f"run: {sys.executable} -m pip install componentize-py=={COMPONENTIZE_PY}"
        ) from None
    if found != COMPONENTIZE_PY:
        print(
            f"warning: componentize-py {found} found; the SDK is tested with {COMPONENTIZE_PY}",
            file=sys.stderr,
        )


def build(
    app: str,
    output: Optional[str] = None,
    wit: Optional[str] = None,
    plugin: Optional[str] = None,
    python_path: Sequence[str] = (),
    quiet: bool = False,
    stateful: Optional[bool] = None,
) -> Path:
    """Builds the component for the plugin module `app` (a .py file); the
    path written. `stateful`: build for `stateful-processor` (True) or
    `processor` (False); None (the default) decides by `uses_state`."""
    app_path = Path(app).resolve()
    if app_path.suffix != ".py" or not app_path.is_file():
        raise BuildError(f"{app}: not a Python file")
    module = app_path.stem
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", module):
        raise BuildError(f"{app}: {module!r} is not a valid module name (use letters, digits and _)")
    if module in (ENTRY, "sluice_sdk", "wit_world", "componentize_py_types", WORLD):
        raise BuildError(f"{app}: the module name {module!r} is reserved; rename the file")
    if plugin is not None and not plugin.isidentifier():
        raise BuildError(f"--plugin {plugin}: not a Python name")
    wit_dir = find_wit(wit, app_path)
    if stateful is None:
        stateful = uses_state(app_path.read_text(encoding="utf-8"), str(app_path))
    world = STATEFUL_WORLD if stateful else WORLD
    out = Path(output) if output else Path.cwd() / f"{module}.wasm"
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = out.parent / f".{out.name}.tmp"
    _check_componentize_py()

    with tempfile.TemporaryDirectory(prefix="sluice-build-") as tmp:
        (Path(tmp) / f"{ENTRY}.py").write_text(
            "# Written by sluice_sdk.build: the component's entry module.\n"
            "import sys\n"
            "sys.dont_write_bytecode = True  # no __pycache__ in the author's tree\n"
            "# CPython imports the IDNA codec at a socket's first name lookup; only\n"
            "# what is imported at build time is in the component.\n"
            "import encodings.idna\n"
            "from sluice_sdk._component import world as _world\n"
            f"import {module} as _app\n"
            f"WitWorld = _world(_app, {plugin!r})\n"
        )
        paths: List[str] = [tmp, str(app_path.parent), str(SDK_DIR.parent), *python_path]
        command = [
            sys.executable,
            "-c",
            "import sys, componentize_py; sys.argv[0] = 'componentize-py'; componentize_py.script()",
            "-d", str(wit_dir),
            "-w", world,
            *(["--quiet"] if quiet else []),
            "componentize", ENTRY,
            *[arg for path in paths for arg in ("-p", path)],
            "-o", str(tmp_out),
        ]
        # An import error at pre-init is reported with its Python traceback;
        # anyhow's Rust backtrace after it is noise to a plugin author.
        env = dict(os.environ, RUST_LIB_BACKTRACE="0")
        started = time.monotonic()
        result = subprocess.run(command, env=env)
        elapsed = time.monotonic() - started
    if result.returncode != 0:
        tmp_out.unlink(missing_ok=True)
        raise BuildError(f"componentize-py failed (exit {result.returncode}); see its output above")
    os.replace(tmp_out, out)
    if not quiet:
        size = out.stat().st_size / 1e6
        print(
            f"built {out} ({size:.1f} MB) from {app_path} with {wit_dir}/plugin.wit, "
            f"world {world}, in {elapsed:.1f} s"
        )
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 -m sluice_sdk",
        description="Sluice plugin SDK for Python.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    b = commands.add_parser(
        "build",
        help="build a plugin module into a Sluice component (.wasm)",
        description="Build a plugin module into a Sluice component with componentize-py.",
    )
    b.add_argument("app", help="the plugin module, e.g. app.py")
    b.add_argument("-o", "--output", help="the component to write (default: ./MODULE.wasm)")
    b.add_argument("--wit", help="the directory holding plugin.wit (default: the checkout's wit/)")
    b.add_argument(
        "--plugin",
        help="the plugin's name in the module, when it is not found on its own "
        "(a top-level process function, or the one class with a process method)",
    )
    b.add_argument(
        "-p", "--python-path", action="append", default=[],
        help="another directory of modules the plugin imports (repeatable)",
    )
    b.add_argument(
        "--stateful", action="store_true", default=None,
        help="build for the world stateful-processor (the plugin keeps state) even when the "
        "plugin's module does not import sluice_sdk.state itself (it does through a helper)",
    )
    b.add_argument("-q", "--quiet", action="store_true", help="print errors only")
    args = parser.parse_args(argv)
    try:
        build(
            args.app, args.output, args.wit, args.plugin, args.python_path, args.quiet, args.stateful
        )
    except BuildError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0
