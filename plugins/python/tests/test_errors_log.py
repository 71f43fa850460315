import io
import unittest
from contextlib import redirect_stderr

import support  # noqa: F401

from sluice_sdk import Invalid, ProcessError, Retryable, json_type, log


class ErrorsTest(unittest.TestCase):
    def test_constructors_and_accessors(self):
        invalid = Invalid("bad")
        self.assertEqual(invalid.message, "bad")
        self.assertEqual(str(invalid), "bad")
        self.assertFalse(invalid.is_retryable)
        self.assertIsInstance(invalid, ProcessError)
        self.assertEqual(invalid, Invalid("bad"))
        self.assertNotEqual(invalid, Retryable("bad"))
        self.assertEqual(repr(invalid), "Invalid('bad')")
        retry = Retryable("later")
        self.assertTrue(retry.is_retryable)
        self.assertEqual(retry.message, "later")

    def test_json_types_and_wrong_type(self):
        self.assertEqual(
            [json_type(v) for v in (None, True, False, 1, 1.5, "x", [1], {"a": 1})],
            ["null", "boolean", "boolean", "number", "number", "string", "array", "object"],
        )
        self.assertEqual(Invalid.wrong_type("order_id", "a string", 7),
                         Invalid("field `order_id` must be a string, got number"))


class LogTest(unittest.TestCase):
    def test_levels_go_to_stderr_off_wasm(self):
        buffer = io.StringIO()
        with redirect_stderr(buffer):
            log.trace("t")
            log.debug("d")
            log.info("i")
            log.warn("w")
            log.warning("w2")
            log.error(ValueError("e"))
            log.log("info", "l")
        self.assertEqual(buffer.getvalue().splitlines(), [
            "[plugin trace] t", "[plugin debug] d", "[plugin info] i", "[plugin warn] w",
            "[plugin warn] w2", "[plugin error] e", "[plugin info] l",
        ])
        with self.assertRaises(ValueError):
            log.log("fatal", "x")

    def test_sink_is_replaceable(self):
        seen = []
        original = log._write
        log._write = lambda level, message: seen.append((level, message))
        try:
            log.info("hello")
        finally:
            log._write = original
        self.assertEqual(seen, [("info", "hello")])


if __name__ == "__main__":
    unittest.main()
