import unittest

import support  # noqa: F401

from sluice_sdk import Event, Invalid


class EventTest(unittest.TestCase):
    def test_accessors(self):
        event = Event(
            "v", key="k", headers=[("a", "1"), ("b", b"2"), ("a", "3")],
            topic="orders", partition=3, offset=42, timestamp_ms=1_732_400_000_000,
        )
        self.assertEqual(event.topic, "orders")
        self.assertEqual(event.partition, 3)
        self.assertEqual(event.offset, 42)
        self.assertEqual(event.timestamp_ms, 1_732_400_000_000)
        self.assertEqual(event.key, b"k")
        self.assertEqual(event.value, b"v")
        self.assertFalse(event.is_tombstone())
        self.assertEqual(event.header("a"), b"1", "first of repeated names")
        self.assertEqual(event.header("b"), b"2")
        self.assertIsNone(event.header("c"))
        self.assertEqual(len(event.headers), 3)
        self.assertEqual(event, Event(b"v", key=b"k", headers=[("a", "1"), ("b", "2"), ("a", "3")],
                                      topic="orders", partition=3, offset=42,
                                      timestamp_ms=1_732_400_000_000))
        self.assertIn("orders", repr(event))

    def test_tombstone(self):
        event = Event()
        self.assertTrue(event.is_tombstone())
        for method in (event.value_str, event.json):
            with self.assertRaises(Invalid) as caught:
                method()
            self.assertEqual(caught.exception.message, "event has no value (tombstone)")

    def test_value_str(self):
        self.assertEqual(Event("héllo").value_str(), "héllo")
        with self.assertRaises(Invalid) as caught:
            Event(b"\xff\xfe").value_str()
        self.assertTrue(caught.exception.message.startswith("event value is not valid UTF-8: "))
        self.assertFalse(caught.exception.is_retryable)

    def test_json(self):
        self.assertEqual(Event('{"id":"A-1","amount":2.5}').json(), {"id": "A-1", "amount": 2.5})
        self.assertEqual(Event(" [1, 2]\n").json(), [1, 2], "surrounding whitespace")
        self.assertEqual(Event('"x"').json(), "x")
        self.assertEqual(Event('{"s":"\\ud83d\\ude00"}').json(), {"s": "😀"}, "surrogate pair")
        self.assertEqual(Event('{"s":"\\\\ud800"}').json(), {"s": "\\ud800"}, "escaped backslash")

    def assertNotJson(self, value, detail=None):
        with self.assertRaises(Invalid) as caught:
            Event(value).json()
        message = caught.exception.message
        self.assertTrue(message.startswith("event value is not valid JSON: "), message)
        if detail is not None:
            self.assertEqual(message, "event value is not valid JSON: " + detail)

    def test_json_errors(self):
        self.assertNotJson("{not json", "Expecting property name enclosed in double quotes: line 1 column 2 (char 1)")
        self.assertNotJson("", "Expecting value: line 1 column 1 (char 0)")
        self.assertNotJson("[1] x", "Extra data: line 1 column 5 (char 4)")
        self.assertNotJson("[1,]")
        self.assertNotJson(b'{"a":"\xff"}')
        self.assertNotJson(b'"\xed\xa0\x80"', None)  # an encoded surrogate is not UTF-8
        self.assertNotJson("\ufeff{}")  # byte-order mark

    def test_json_is_as_strict_as_serde(self):
        self.assertNotJson('{"a":NaN}', "NaN is not valid JSON")
        self.assertNotJson("[Infinity]", "Infinity is not valid JSON")
        self.assertNotJson("[-Infinity]", "-Infinity is not valid JSON")
        self.assertNotJson('{"a":"\\ud800"}', "lone surrogate in a \\u escape")
        self.assertNotJson('{"\\udc00":1}', "lone surrogate in a \\u escape")

    def test_json_nesting_limit_is_serdes(self):
        def nested(depth):
            return '{"s":"[[[[","x":' + "[" * (depth - 1) + "]" * (depth - 1) + "}"

        self.assertIsInstance(Event(nested(127)).json(), dict)
        self.assertNotJson(nested(128), "recursion limit exceeded")
        self.assertNotJson("[" * 100_000 + "]" * 100_000, "recursion limit exceeded")
        # Many brackets, but shallow: parsed.
        self.assertEqual(len(Event("[" + ",".join(["[]"] * 500) + "]").json()), 500)

    def test_constructor_types(self):
        self.assertEqual(Event(bytearray(b"x")).value, b"x")
        self.assertEqual(Event(memoryview(b"x")).value, b"x")
        with self.assertRaises(TypeError):
            Event(1)


if __name__ == "__main__":
    unittest.main()
