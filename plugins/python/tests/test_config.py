import unittest

import support  # noqa: F401

from sluice_sdk import Config, ConfigError
from sluice_sdk.config import parse_bool, parse_float, parse_int, quote


class ConfigTest(unittest.TestCase):
    def config(self):
        return Config([("b", "2"), ("a", "x"), ("f", "1.5"), ("b", "3"), ("t", "true")])

    def test_mapping_and_defaults(self):
        config = self.config()
        self.assertEqual(config["a"], "x")
        self.assertEqual(config.get("b"), "3", "last value wins")
        self.assertIsNone(config.get("zz"))
        self.assertEqual(config.get_or("a", "d"), "x")
        self.assertEqual(config.get_or("zz", "d"), "d")
        self.assertEqual(len(config), 4)
        self.assertEqual(list(config), ["a", "b", "f", "t"], "sorted")
        self.assertIn("a", config)
        self.assertEqual(Config({"k": "v"}), {"k": "v"})
        self.assertEqual(len(Config()), 0)

    def test_require(self):
        self.assertEqual(self.config().require("a"), "x")
        with self.assertRaises(ConfigError) as caught:
            self.config().require("field")
        self.assertEqual(str(caught.exception), "missing required config key `field`")

    def test_parse(self):
        config = self.config()
        self.assertEqual(config.parse("f"), 1.5)
        self.assertEqual(config.parse("b", int), 3)
        self.assertIs(config.parse("t", bool), True)
        self.assertIsNone(config.parse("zz", int))
        self.assertEqual(config.parse("a", str.upper), "X")
        with self.assertRaises(ConfigError) as caught:
            config.parse("a", float)
        self.assertEqual(str(caught.exception), 'config key `a`: invalid value "x": invalid float literal')
        self.assertEqual(config.parse_or("zz", 7), 7)
        self.assertEqual(config.parse_or("b", 7), 3)
        self.assertEqual(config.parse_or("f", 7.0), 1.5)
        with self.assertRaises(ConfigError) as caught:
            config.parse_or("a", 7)
        self.assertEqual(str(caught.exception), 'config key `a`: invalid value "x": invalid digit found in string')
        with self.assertRaises(ConfigError) as caught:
            Config([("limit", "lots")]).parse_or("limit", 10, lambda text: int(text, 16))
        self.assertIn("invalid literal for int() with base 16", str(caught.exception))

    def test_rust_grammar(self):
        for text, value in [("1", 1.0), ("+1.5", 1.5), ("-.5", -0.5), ("1.", 1.0), ("1e3", 1000.0),
                            ("1.E-2", 0.01), ("inf", float("inf")), ("-Infinity", float("-inf"))]:
            self.assertEqual(parse_float(text), value, text)
        self.assertNotEqual(parse_float("NaN"), parse_float("nan"))  # both NaN
        for text in [" 1", "1 ", "1_000", ".", "e3", "1e", "0x10", "infinit", "--1"]:
            with self.assertRaises(ValueError, msg=text) as caught:
                parse_float(text)
            self.assertEqual(str(caught.exception), "invalid float literal")
        with self.assertRaises(ValueError) as caught:
            parse_float("")
        self.assertEqual(str(caught.exception), "cannot parse float from empty string")
        self.assertEqual(parse_int("-12"), -12)
        self.assertEqual(parse_int("+7"), 7)
        for text in ["1.0", " 1", "1_0", "x"]:
            with self.assertRaises(ValueError, msg=text):
                parse_int(text)
        with self.assertRaises(ValueError) as caught:
            parse_int("")
        self.assertEqual(str(caught.exception), "cannot parse integer from empty string")
        self.assertIs(parse_bool("false"), False)
        with self.assertRaises(ValueError) as caught:
            parse_bool("True")
        self.assertEqual(str(caught.exception), "provided string was not `true` or `false`")

    def test_quote_is_rust_debug(self):
        self.assertEqual(quote('a"b\\c\n\t\x01é'), '"a\\"b\\\\c\\n\\t\\u{1}é"')


if __name__ == "__main__":
    unittest.main()
