import io
import types
import unittest
from contextlib import redirect_stderr

import support
from support import err, invalid, ok, retryable

from sluice_sdk import Event, Output
from sluice_sdk.runner import load


def module(name, source):
    """A module made from `source`, as if imported from name.py."""
    mod = types.ModuleType(name)
    mod.__file__ = f"{name}.py"
    exec(source, mod.__dict__)
    return mod


COUNTER = '''
from sluice_sdk import Invalid, Output, Retryable

class Counter:
    """Echoes values, counts events, and fails on demand."""

    def init(self, config):
        if "refuse" in config:
            return config["refuse"]
        self.seen = 0

    def process(self, event):
        self.seen += 1
        value = event.value_str()
        if value == "drop":
            return []
        if value == "retry":
            raise Retryable("later")
        if value == "boom":
            raise RuntimeError("kaboom")
        return [Output(f"{value}#{self.seen}").to_topic("t")]
'''


def raw(value):
    return Event(value, topic="in")


def values(outcomes):
    out = []
    for kind, payload in outcomes:
        if kind == "ok":
            out.append([o.value.decode() for o in payload])
        else:
            out.append(f"{payload[0]}: {payload[1]}")
    return out


class RunnerTest(unittest.TestCase):
    def test_lifecycle_and_batch_loop(self):
        runner = support.runner(load(module("counter", COUNTER)))
        not_init = "invalid: plugin not initialised"
        self.assertEqual(values(runner.process([raw("a"), raw("b")])), [not_init, not_init])

        self.assertIsNone(runner.init([]))
        outcomes = runner.process([raw("a"), raw("drop"), raw(None), raw("retry"), raw("b")])
        self.assertEqual(values(outcomes), [
            ["a#1"], [], "invalid: event has no value (tombstone)", "retryable: later", ["b#5"],
        ])
        first = outcomes[0].value[0]
        self.assertEqual((first.topic, first.key, first.headers), ("t", None, None))
        self.assertEqual(runner.process([]), [])

        # Re-init starts a fresh plugin object.
        self.assertIsNone(runner.init([]))
        self.assertEqual(values(runner.process([raw("c")])), [["c#1"]])

        # A failed re-init leaves the plugin uninitialised.
        self.assertEqual(runner.init([("refuse", "no")]), "no")
        self.assertEqual(values(runner.process([raw("d")])), [not_init])

    def test_ok_outcomes_are_reused_across_batches(self):
        runner = support.runner(load(module("counter", COUNTER)))
        runner.init([])
        first = runner.process([raw("a"), raw("b")])
        self.assertEqual(values(first), [["a#1"], ["b#2"]])
        second = runner.process([raw("c"), raw("retry"), raw("d"), raw("e")])
        self.assertEqual(values(second), [["c#3"], "retryable: later", ["d#5"], ["e#6"]])
        self.assertIs(second[0], first[0], "slot 0 of the pool")
        self.assertIsNot(second[2], first[1], "slot 2, new: slot 1 went unused for the error")

    def test_other_exceptions_propagate_with_a_note(self):
        runner = support.runner(load(module("counter", COUNTER)))
        runner.init([])
        event = Event("boom", topic="orders", partition=2, offset=9)
        with self.assertRaises(RuntimeError) as caught:
            runner.process([raw("a"), event])
        self.assertEqual(str(caught.exception), "kaboom")
        self.assertEqual(caught.exception.__notes__,
                         ["sluice: raised by process() on the event at orders/2@9"])

    def test_module_functions(self):
        mod = module("funcs", '''
from sluice_sdk import ConfigError, Invalid, Output
prefix = None
def init(config):
    global prefix
    prefix = config.require("prefix")
def process(event):
    if event.value == b"bad":
        raise Invalid("bad value")
    return [Output(prefix.encode() + event.value)]
''')
        runner = support.runner(load(mod))
        self.assertEqual(runner.init([]), "missing required config key `prefix`")
        self.assertEqual(runner.init([("prefix", "p-")]), None)
        self.assertEqual(values(runner.process([raw("x"), raw("bad")])), [["p-x"], "invalid: bad value"])

    def test_init_is_optional(self):
        runner = support.runner(load(module("bare", "def process(event):\n    return []\n")))
        self.assertIsNone(runner.init([("any", "thing")]))
        self.assertEqual(runner.process([raw("x")]), [ok([])])

    def test_init_refusals(self):
        cases = {
            "return 'nope'": "nope",
            "raise ConfigError('bad key')": "bad key",
            "raise Invalid('no')": "no",
            "return 42": "init() must return None or an error message, got int",
            "raise KeyError('x')": "KeyError: 'x'",
        }
        for body, message in cases.items():
            mod = module("refuser", f'''
from sluice_sdk import ConfigError, Invalid
def init(config):
    {body}
def process(event):
    return []
''')
            runner = support.runner(load(mod))
            with self.subTest(body), redirect_stderr(io.StringIO()) as stderr:
                self.assertEqual(runner.init([]), message)
                self.assertEqual(runner.process([raw("x")]), [err(invalid("plugin not initialised"))])
            if body.startswith("raise KeyError"):
                self.assertIn("Traceback", stderr.getvalue())

    def test_return_values(self):
        mod = module("returns", '''
from sluice_sdk import Output
def process(event):
    what = event.value_str()
    if what == "tuple":
        return (Output("a"), Output("b"))
    if what == "single":
        return Output("s")
    if what == "none":
        return None
    if what == "str":
        return "oops"
    if what == "item":
        return [Output("a"), "oops"]
    return [Output(what)]
''')
        runner = support.runner(load(mod))
        runner.init([])
        self.assertEqual(values(runner.process([raw("tuple"), raw("single")])), [["a", "b"], ["s"]])
        for what, message in [
            ("none", "process() returned None; return a list of Output (an empty list filters the event out)"),
            ("str", "process() must return a list of Output, got str"),
            ("item", "process() must return a list of Output, got an item of type str"),
        ]:
            with self.subTest(what), self.assertRaises(TypeError) as caught:
                runner.process([raw(what)])
            self.assertEqual(str(caught.exception), message)

    def test_outcome_constructors(self):
        runner = support.runner(load(module("bare", "def process(event):\n    return []\n")))
        runner.init([])
        self.assertEqual(runner.process([raw("x")]), [ok([])])
        mod = module("failing", "from sluice_sdk import Retryable\ndef process(event):\n    raise Retryable('r')\n")
        runner = support.runner(load(mod))
        runner.init([])
        self.assertEqual(runner.process([raw("x")]), [err(retryable("r"))])


class LoadTest(unittest.TestCase):
    def test_finds_the_plugin(self):
        funcs = module("funcs", "def process(event):\n    return []\n")
        self.assertIs(load(funcs), funcs)
        classy = module("classy", "from sluice_sdk import Plugin\nclass P(Plugin):\n    def process(self, e):\n        return []\n")
        self.assertIs(load(classy), classy.P)
        self.assertIs(load(classy, "P"), classy.P)

    def test_imported_classes_do_not_count(self):
        mod = module("imports", "from sluice_sdk import Output, Plugin\nclass Mine:\n    def process(self, e):\n        return []\n")
        self.assertIs(load(mod), mod.Mine)

    def test_errors(self):
        with self.assertRaisesRegex(LookupError, "defines no plugin"):
            load(module("empty", "x = 1\n"))
        two = module("two", "class A:\n    def process(self, e): pass\nclass B:\n    def process(self, e): pass\n")
        with self.assertRaisesRegex(LookupError, r"several plugin classes \(A, B\); choose one with --plugin NAME"):
            load(two)
        self.assertIs(load(two, "B"), two.B)
        with self.assertRaisesRegex(LookupError, "has no attribute 'C'"):
            load(two, "C")
        with self.assertRaisesRegex(LookupError, "has no `process` method"):
            load(module("x", "y = 1\n"), "y")

    def test_base_class_defaults(self):
        classy = module("classy", "from sluice_sdk import Plugin, Output\nclass P(Plugin):\n    def process(self, e):\n        return [Output.forward(e)]\n")
        runner = support.runner(load(classy))
        self.assertIsNone(runner.init([("k", "v")]))
        self.assertEqual(values(runner.process([raw("v")])), [["v"]])


if __name__ == "__main__":
    unittest.main()
