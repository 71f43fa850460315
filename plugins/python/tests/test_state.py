"""sluice_sdk.state: the per-event overlay and its public API, on the
in-memory store (the Rust SDK's state tests, ported)."""

import io
import types
import unittest
from contextlib import redirect_stderr

import support
from support import err, ok, retryable

from sluice_sdk import Event, Invalid, Output, Retryable, state, testing
from sluice_sdk.build import uses_state
from sluice_sdk.state import MemoryStore, Overlay, StateError


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
    def test_reads_see_the_events_writes_and_only_commit_reaches_the_host(self):
        store = Recording([("a", "1"), ("b", "2")])
        overlay = Overlay()
        overlay.set(b"a", b"10")
        overlay.delete(b"b")
        overlay.set(b"c", b"3")
        self.assertEqual(overlay.get(store, b"a"), b"10")
        self.assertIsNone(overlay.get(store, b"b"))
        self.assertFalse(overlay.exists(store, b"b"))
        self.assertTrue(overlay.exists(store, b"c"))
        self.assertIsNone(overlay.get(store, b"z"))
        self.assertEqual(store.calls, ["get z"], "only the key the event did not write")
        self.assertEqual(len(store.map), 2, "nothing written yet")
        store.calls.clear()
        overlay.commit(store)
        self.assertEqual(store.calls, ["set a=10", "delete b", "set c=3"])
        self.assertEqual(store.entries(), [("a", "10"), ("c", "3")])

    def test_keys_merge_the_host_pages_with_the_writes(self):
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
        self.assertEqual(len(all_keys(overlay, store, "", 2)), 8)
        self.assertEqual(all_keys(overlay, store, "none", 2), [])

    def test_delete_prefix_counts_hides_and_is_applied_before_later_writes(self):
        store = Recording([("p/1", "a"), ("p/2", "b"), ("q", "c")])
        overlay = Overlay()
        overlay.set(b"p/3", b"new")
        overlay.delete(b"p/1")
        self.assertEqual(overlay.delete_prefix(store, b"p/"), 2)  # p/2 and p/3
        self.assertIsNone(overlay.get(store, b"p/2"))
        self.assertFalse(overlay.exists(store, b"p/3"))
        self.assertEqual(all_keys(overlay, store, "p", 2), [])
        self.assertEqual(overlay.delete_prefix(store, b"p/"), 0)
        overlay.set(b"p/2", b"again")  # written after the deletion: kept
        self.assertEqual(overlay.get(store, b"p/2"), b"again")
        self.assertEqual(all_keys(overlay, store, "", 2), ["p/2", "q"])
        store.calls.clear()
        overlay.commit(store)
        self.assertEqual(store.calls, ["delete_prefix p/", "set p/2=again"])
        self.assertEqual(store.entries(), [("p/2", "again"), ("q", "c")])

    def test_a_wider_prefix_deletion_replaces_a_narrower_one(self):
        store = Recording([("ab/1", ""), ("ac", "")])
        overlay = Overlay()
        self.assertEqual(overlay.delete_prefix(store, b"ab"), 1)
        self.assertEqual(overlay.delete_prefix(store, b"a"), 1)
        store.calls.clear()
        overlay.commit(store)
        self.assertEqual(store.calls, ["delete_prefix a"])

    def test_an_empty_overlay_commits_nothing(self):
        overlay = Overlay()
        self.assertFalse(overlay)
        store = Recording()
        overlay.commit(store)
        self.assertEqual(store.calls, [])


WRITER = '''
from sluice_sdk import Output, Retryable, state

def process(event):
    """Sets from `key=value`, deletes from `-key`, clears from `*prefix`;
    fails (after writing) when the value ends in `!`."""
    command = event.value_str()
    fail = command.endswith("!")
    command = command.rstrip("!")
    if command.startswith("-"):
        state.delete(command[1:])
        out = f"deleted {command[1:]}"
    elif command.startswith("*"):
        out = f"cleared {state.delete_prefix(command[1:])}"
    else:
        key, value = command.split("=", 1)
        state.set(key, value)
        out = f"{key}={state.get(key).decode()}"
    if fail:
        raise Retryable("asked to fail")
    return [Output(out)]
'''


def writer():
    module = types.ModuleType("writer")
    exec(WRITER, module.__dict__)
    return module


def text_state():
    return [(k.decode(), v.decode()) for k, v in testing.state().items()]


class StateApiTest(unittest.TestCase):
    def setUp(self):
        testing.reset()

    def run_one(self, plugin, command):
        try:
            [output] = testing.process(plugin, Event(command))
        except Retryable as error:
            return f"retryable: {error.message}"
        return output.value.decode()

    def test_failed_events_leave_no_trace(self):
        plugin = writer()
        testing.set_state({"a": "1", "b/1": "2", "b/2": "3"})
        for command in ("a=9!", "-a!", "*b/!"):
            self.assertEqual(self.run_one(plugin, command), "retryable: asked to fail")
        self.assertEqual(text_state(), [("a", "1"), ("b/1", "2"), ("b/2", "3")])
        self.assertEqual(self.run_one(plugin, "a=9"), "a=9")
        self.assertEqual(self.run_one(plugin, "*b/"), "cleared 2")
        self.assertEqual(self.run_one(plugin, "-a"), "deleted a")
        self.assertEqual(self.run_one(plugin, "c=1"), "c=1")
        self.assertEqual(text_state(), [("c", "1")])

    def test_keys_and_exists(self):
        testing.set_state([("account/ACC-2", "20"), ("config/x", "1")])

        def body():
            state.set("account/ACC-1", "10")
            self.assertTrue(state.exists(b"account/ACC-1"))
            self.assertFalse(state.exists("nope"))
            return list(state.keys("account/"))

        self.assertEqual(testing.with_event(body), [b"account/ACC-1", b"account/ACC-2"])
        self.assertEqual(len(testing.state()), 3)

    def test_json_helpers(self):
        testing.set_state([(b"bad", b"{")])

        def body():
            self.assertIsNone(state.get_json("none"))
            self.assertEqual(state.get_json("none", {"cents": 0}), {"cents": 0})
            state.set_json("acc", {"cents": 5, "name": "é"})
            self.assertEqual(state.get_json("acc"), {"cents": 5, "name": "é"})
            with self.assertRaises(Invalid) as caught:
                state.get_json(b"bad")
            self.assertEqual(
                caught.exception.message,
                "state value of key `bad` is not the expected JSON: "
                "Expecting property name enclosed in double quotes: line 1 column 2 (char 1)",
            )
            with self.assertRaisesRegex(Invalid, "key `\\\\xff` is not the expected JSON"):
                state.set(b"\xff", b"nan")
                state.get_json(b"\xff")
            with self.assertRaisesRegex(Invalid, "^cannot serialize state value as JSON: "):
                state.set_json("set", {1, 2})
            with self.assertRaisesRegex(Invalid, "^cannot serialize state value as JSON: "):
                state.set_json("nan", float("nan"))
            self.assertFalse(state.exists("set"))

        testing.with_event(body)
        self.assertEqual(testing.state()[b"acc"], '{"cents":5,"name":"é"}'.encode())

    def test_outside_an_event_raises(self):
        with self.assertRaisesRegex(
            StateError,
            r"^sluice_sdk.state.set: state is only available while an event is processed "
            r"\(in `process`, not in `init`\); in tests, run the event with `sluice_sdk.testing.process`$",
        ):
            state.set("k", "v")

    def test_keys_snapshot_the_events_writes_when_called(self):
        def body():
            state.set("k/1", "")
            keys = state.keys("k/")
            state.set("k/2", "")  # after the call: not in this listing
            return list(keys)

        self.assertEqual(testing.with_event(body), [b"k/1"])

    def test_keys_do_not_outlive_their_event(self):
        testing.set_state({"k": ""})
        keys = testing.with_event(lambda: state.keys(""))
        with self.assertRaisesRegex(StateError, "advanced after the event it was created in"):
            testing.with_event(lambda: next(keys))

    def test_bad_key_types(self):
        with self.assertRaisesRegex(TypeError, "a state key must be bytes or str, got int"):
            testing.with_event(lambda: state.get(1))

    def test_the_event_loop_applies_or_discards_per_event(self):
        runner = support.runner(writer())
        self.assertIsNone(runner.init([]))
        outcomes = runner.process([Event(v) for v in ("a=1", "b=2!", "a=3", "*")])
        self.assertEqual(
            [(kind, payload if kind == "err" else [o.value.decode() for o in payload]) for kind, payload in outcomes],
            [
                ("ok", ["a=1"]),
                ("err", retryable("asked to fail")),
                ("ok", ["a=3"]),
                ("ok", ["cleared 1"]),  # saw the first and third events' writes, not the second's
            ],
        )
        self.assertEqual(testing.state(), {})
        _ = (ok, err, Output)

    def test_state_in_init_refuses_the_plugin(self):
        module = writer()
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
