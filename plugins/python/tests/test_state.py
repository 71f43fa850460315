"""sluice_sdk.state: the per-event state rule (plugins/state-rule.json, its
one statement) replayed case by case on the in-memory store, through the
probe that tests/guest_state.rs replays it with in the real host
(plugins/fixtures/state-sdk-probe-py); then what the file does not state:
the host calls the overlay makes, the event loop, and the errors of this
SDK's API."""

import base64
import io
import json
import sys
import types
import unittest
from contextlib import redirect_stderr

import support
from support import retryable

from sluice_sdk import Event, Invalid, Retryable, state, testing
from sluice_sdk.build import uses_state
from sluice_sdk.state import MemoryStore, Overlay, StateError

PLUGINS_DIR = support.PYTHON_DIR.parent
RULE = PLUGINS_DIR / "state-rule.json"
sys.path.insert(0, str(PLUGINS_DIR / "fixtures" / "state-sdk-probe-py"))
import state_sdk_probe  # noqa: E402


def rule_bytes(value):
    """A string's UTF-8, or {"base64": ...}."""
    return value.encode() if isinstance(value, str) else base64.b64decode(value["base64"])


def rule_fill(item):
    """The entries a {"fill": P, "from": A, "to": B} item stands for, or None."""
    if not isinstance(item, dict) or "fill" not in item:
        return None
    prefix = item["fill"]
    return [(f"{prefix}{i:04}".encode(), str(i).encode()) for i in range(item["from"], item["to"])]


def rule_state(items):
    """A state: [key, value] pairs and fill items."""
    entries = {}
    for item in items:
        filled = rule_fill(item)
        if filled is None:
            key, value = item
            filled = [(rule_bytes(key), rule_bytes(value))]
        entries.update(filled)
    return entries


def rule_answer(data):
    """Bytes in an answer: a string when they are UTF-8, else {"base64": ...}."""
    try:
        return data.decode()
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(data).decode()}


def rule_keys(items):
    """A list of keys and fill items, as the probe answers it."""
    keys = []
    for item in items:
        filled = rule_fill(item)
        keys.extend([key for key, _ in filled] if filled is not None else [rule_bytes(item)])
    return [rule_answer(key) for key in keys]


def canonical(value):
    """JSON text that tells `true` from `1` and `5` from `5.0`."""
    return json.dumps(value, sort_keys=True)


class StateRuleTest(unittest.TestCase):
    def setUp(self):
        testing.reset()

    def run_event(self, request):
        """How the probe ended the event, and its answers."""
        try:
            [output] = testing.process(state_sdk_probe, Event(request))
        except Invalid as error:
            return "invalid", json.loads(error.message)
        except Retryable as error:
            return "retryable", json.loads(error.message)
        except RuntimeError as error:  # the probe's trap
            message = str(error)
            self.assertTrue(message.startswith("trap after "), message)
            return "trap", json.loads(message[len("trap after "):])
        return "ok", json.loads(output.value)

    def test_every_case_of_the_rule(self):
        cases = json.loads(RULE.read_text(encoding="utf-8"))["cases"]
        self.assertTrue(cases)
        for case in cases:
            testing.set_state(rule_state(case["state"]))
            for number, event in enumerate(case["events"], 1):
                at = f"{case['name']}, event {number}"
                commands = [command for command, _ in event["run"]]
                end, answers = self.run_event(json.dumps({"run": commands, "end": event["end"]}))
                self.assertEqual(end, event["end"], at)
                self.assertEqual(len(answers), len(commands), at)
                for (command, want), got in zip(event["run"], answers):
                    if command[0] in ("keys", "next"):
                        want = rule_keys(want)
                    if isinstance(want, dict) and "invalid" in want:
                        # A failed JSON read: the rest is the parser's words.
                        self.assertTrue(
                            isinstance(got, dict) and got.get("invalid", "").startswith(want["invalid"]),
                            f"{at}: {command} -> {got}",
                        )
                    else:
                        self.assertEqual(canonical(got), canonical(want), f"{at}: {command}")
                self.assertEqual(testing.state(), rule_state(event["state"]), f"{at}: the state after it")


class Recording(MemoryStore):
    """A store that records the calls it gets."""

    def __init__(self, entries=()):
        super().__init__()
        self.map.update((k.encode(), v.encode()) for k, v in entries)
        self.calls = []

    def get(self, key):
        self.calls.append(f"get {key.decode()}")
        return super().get(key)

    def set(self, key, value):
        self.calls.append(f"set {key.decode()}={value.decode()}")
        super().set(key, value)

    def delete(self, key):
        self.calls.append(f"delete {key.decode()}")
        super().delete(key)

    def exists(self, key):
        self.calls.append(f"exists {key.decode()}")
        return super().exists(key)

    def list_keys(self, prefix, cursor, limit):
        after = None if cursor is None else cursor.decode()
        self.calls.append(f"list {prefix.decode()} after {after} limit {limit}")
        return super().list_keys(prefix, cursor, limit)

    def delete_prefix(self, prefix):
        self.calls.append(f"delete_prefix {prefix.decode()}")
        return super().delete_prefix(prefix)

    def entries(self):
        return sorted((k.decode(), v.decode()) for k, v in self.map.items())


def all_keys(overlay, store, prefix, page):
    return [k.decode() for k in overlay.keys(store, prefix.encode(), page)]


class OverlayTest(unittest.TestCase):
    """The host calls behind the rule: what reaches the store, and when."""

    def test_only_reads_of_keys_the_event_did_not_write_reach_the_host(self):
        store = Recording([("a", "1"), ("b", "2")])
        overlay = Overlay()
        overlay.set(b"a", b"10")
        overlay.delete(b"b")
        overlay.set(b"c", b"3")
        for key in (b"a", b"b", b"c", b"z"):
            overlay.get(store, key)
            overlay.exists(store, key)
        self.assertEqual(store.calls, ["get z", "exists z"])
        self.assertEqual(len(store.map), 2, "nothing written yet")
        store.calls.clear()
        overlay.commit(store)
        self.assertEqual(store.calls, ["set a=10", "delete b", "set c=3"], "in key order")

    def test_keys_merge_the_host_pages_with_the_writes_at_any_page_size(self):
        store = Recording([(k, "") for k in ("k/1", "k/2", "k/3", "k/5", "k/6", "other")])
        overlay = Overlay()
        overlay.delete(b"k/2")
        overlay.set(b"k/4", b"")
        overlay.set(b"k/5", b"")
        overlay.set(b"k/7", b"")
        overlay.delete(b"k/8")
        overlay.set(b"l", b"")
        for page in (1, 2, 3, 100):
            self.assertEqual(
                all_keys(overlay, store, "k/", page),
                ["k/1", "k/3", "k/4", "k/5", "k/6", "k/7"],
                f"page {page}",
            )
        store.calls.clear()
        all_keys(overlay, store, "k/", 2)
        self.assertEqual(
            store.calls,
            ["list k/ after None limit 2", "list k/ after k/2 limit 2", "list k/ after k/5 limit 2"],
            "pages follow the cursor; a short page ends the listing",
        )

    def test_a_prefix_deletion_is_sent_before_the_later_writes(self):
        store = Recording([("p/1", "a"), ("p/2", "b"), ("q", "c")])
        overlay = Overlay()
        overlay.set(b"p/3", b"new")
        overlay.delete_prefix(store, b"p/")
        overlay.set(b"p/2", b"again")
        store.calls.clear()
        overlay.commit(store)
        self.assertEqual(store.calls, ["delete_prefix p/", "set p/2=again"])

    def test_a_wider_prefix_deletion_replaces_a_narrower_one(self):
        store = Recording([("ab/1", ""), ("ac", "")])
        overlay = Overlay()
        overlay.delete_prefix(store, b"ab")
        overlay.delete_prefix(store, b"a")
        store.calls.clear()
        overlay.commit(store)
        self.assertEqual(store.calls, ["delete_prefix a"])

    def test_an_empty_overlay_commits_nothing(self):
        overlay = Overlay()
        self.assertFalse(overlay)
        store = Recording()
        overlay.commit(store)
        self.assertEqual(store.calls, [])


def probe_event(commands, end="ok"):
    return Event(json.dumps({"run": commands, "end": end}))


class StateApiTest(unittest.TestCase):
    def setUp(self):
        testing.reset()

    def test_json_helpers_in_python(self):
        def body():
            self.assertEqual(state.get_json("none", {"cents": 0}), {"cents": 0})
            with self.assertRaisesRegex(Invalid, "^cannot serialize state value as JSON: "):
                state.set_json("set", {1, 2})
            with self.assertRaisesRegex(Invalid, "^cannot serialize state value as JSON: "):
                state.set_json("nan", float("nan"))
            self.assertFalse(state.exists("set"))
            self.assertFalse(state.exists("nan"))

        testing.with_event(body)
        self.assertEqual(testing.state(), {})

    def test_outside_an_event_raises(self):
        with self.assertRaisesRegex(
            StateError,
            r"^sluice_sdk.state.set: state is only available while an event is processed "
            r"\(in `process`, not in `init`\); in tests, run the event with `sluice_sdk.testing.process`$",
        ):
            state.set("k", "v")

    def test_keys_do_not_outlive_their_event(self):
        testing.set_state({"k": ""})
        keys = testing.with_event(lambda: state.keys(""))
        with self.assertRaisesRegex(StateError, "advanced after the event it was created in"):
            testing.with_event(lambda: next(keys))

    def test_bad_key_types(self):
        with self.assertRaisesRegex(TypeError, "a state key must be bytes or str, got int"):
            testing.with_event(lambda: state.get(1))

    def test_the_event_loop_applies_or_discards_per_event(self):
        runner = support.runner(state_sdk_probe)
        self.assertIsNone(runner.init([]))
        outcomes = runner.process([
            probe_event([["set", "a", "1"]]),
            probe_event([["set", "b", "2"]], "retryable"),
            probe_event([["set", "a", "3"]]),
            probe_event([["delete_prefix", ""]]),
        ])
        self.assertEqual(
            [(kind, payload if kind == "err" else [o.value.decode() for o in payload]) for kind, payload in outcomes],
            [
                ("ok", ["[null]"]),
                ("err", retryable("[null]")),
                ("ok", ["[null]"]),
                ("ok", ["[1]"]),  # saw the first and third events' writes, not the second's
            ],
        )
        self.assertEqual(testing.state(), {})

    def test_state_in_init_refuses_the_plugin(self):
        module = types.ModuleType("probe")
        module.process = state_sdk_probe.process
        module.init = lambda config: state.get("k")
        runner = support.runner(module)
        with redirect_stderr(io.StringIO()):  # the traceback init's refusal prints
            message = runner.init([])
        self.assertRegex(message, r"^StateError: sluice_sdk.state.get: state is only available")


class UsesStateTest(unittest.TestCase):
    def test_the_import_forms(self):
        for source in (
            "from sluice_sdk import state",
            "from sluice_sdk import Output, state as st",
            "import sluice_sdk.state",
            "import sluice_sdk.state as st",
            "from sluice_sdk.state import get, set",
            "def f():\n    from sluice_sdk import state\n",
        ):
            self.assertTrue(uses_state(source), source)
        for source in (
            "from sluice_sdk import Output",
            "import sluice_sdk",
            "state = 1",
            "from .sluice_sdk import state",
            "from mylib import state",
            "this is not python",
        ):
            self.assertFalse(uses_state(source), source)


if __name__ == "__main__":
    unittest.main()
