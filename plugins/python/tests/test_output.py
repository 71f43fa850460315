import unittest

import support  # noqa: F401

from sluice_sdk import Event, Invalid, Output


class OutputTest(unittest.TestCase):
    def test_new_inherits_everything_but_the_value(self):
        output = Output(b"v")
        self.assertEqual((output.topic, output.key, output.value, output.headers), (None, None, b"v", None))
        self.assertEqual(Output("é").value, "é".encode())
        self.assertEqual(Output(bytearray(b"x")).value, b"x")
        self.assertIsNone(Output(None).value)
        with self.assertRaises(TypeError):
            Output({"a": 1})

    def test_builders(self):
        output = Output(b"\x01\x02").to_topic("t").with_key("k").with_header("a", "1")
        self.assertEqual(output.topic, "t")
        self.assertEqual(output.key, b"k")
        self.assertEqual(output.value, b"\x01\x02")
        self.assertEqual(output.headers, [("a", b"1")])
        with self.assertRaises(TypeError):
            Output(b"").to_topic(b"t")
        with self.assertRaises(TypeError):
            Output(b"").with_header(1, "x")
        with self.assertRaises(TypeError):
            Output(b"").with_key(7)

    def test_tombstone_and_forward(self):
        self.assertIsNone(Output.tombstone().value)
        event = Event("v", key="k", headers=[("h", "1")])
        self.assertEqual(Output.forward(event), Output(b"v"))
        self.assertIs(Output.forward(event).value, event.value, "not copied")
        self.assertEqual(Output.forward(Event()), Output.tombstone())

    def test_headers_switch_to_an_explicit_list(self):
        event = Event("v", headers=[("a", "1"), ("b", "2")])
        self.assertEqual(len(Output("v").with_header("x", "9").headers), 1)
        extended = Output("v").with_input_headers(event).with_header("x", "9")
        self.assertEqual([name for name, _ in extended.headers], ["a", "b", "x"])
        self.assertEqual(len(event.headers), 2, "the event's list is not changed")
        self.assertEqual(Output("v").without_headers().headers, [])

    def test_json(self):
        self.assertEqual(Output.json({"b": 1, "a": [1.5, None, True, "é"]}).value,
                         '{"b":1,"a":[1.5,null,true,"é"]}'.encode())
        self.assertEqual(Output.json({"b": 1, "a": {"d": 1, "c": 2}}, sort_keys=True).value,
                         b'{"a":{"c":2,"d":1},"b":1}')
        self.assertEqual(Output.json("x").value, b'"x"')
        self.assertEqual(Output.json(1732400000.0).value, b"1732400000.0")

    def test_json_errors(self):
        cases = {
            "set": {1},
            "nan": {"x": float("nan")},
            "inf": [float("inf")],
            "surrogate": "\ud800",
            "bytes": b"x",
            "non-string key": {(1, 2): 1},
        }
        for name, value in cases.items():
            with self.subTest(name), self.assertRaises(Invalid) as caught:
                Output.json(value)
            self.assertTrue(caught.exception.message.startswith("cannot serialize output as JSON: "))
        cycle = []
        cycle.append(cycle)
        with self.assertRaises(Invalid):
            Output.json(cycle)

    def test_eq_and_repr(self):
        output = Output("v").to_topic("t").with_key("k").with_header("h", "1")
        self.assertEqual(output, Output(b"v").to_topic("t").with_key(b"k").with_header("h", b"1"))
        self.assertNotEqual(output, Output(b"v"))
        self.assertEqual(repr(output), "Output(b'v').to_topic('t').with_key(b'k').with_header('h', b'1')")
        self.assertEqual(repr(Output(b"v").without_headers()), "Output(b'v').without_headers()")


if __name__ == "__main__":
    unittest.main()
