"""Unit tests on plain CPython: `python3 -m unittest`."""

import json
import unittest

from sluice_sdk import Config, Event, Invalid

import {{module}} as app


class AppTest(unittest.TestCase):
    def setUp(self):
        app.init(Config({"label": "checked"}))

    def test_labels_json_objects(self):
        [output] = app.process(Event('{"id": 1}', key="k"))
        self.assertEqual(json.loads(output.value), {"id": 1, "processed_by": "checked"})
        # The key and headers are inherited from the input.
        self.assertIsNone(output.key)

    def test_rejects_what_is_not_a_json_object(self):
        for bad in ["not json", "[1]", None]:
            with self.assertRaises(Invalid, msg=repr(bad)):
                app.process(Event(bad))


if __name__ == "__main__":
    unittest.main()
