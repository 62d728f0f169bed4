"""Java regex semantics, as AWS applies the model's patterns, under Python's ``re``."""

from __future__ import annotations

import pytest

from lamina.api.patterns import UnsupportedPattern, compile_java, translate


@pytest.mark.parametrize(("pattern", "value", "matches"), [
    ("[a-z]+", "abc", True),
    ("[a-z]+", "abc1", False),  # matches() is a whole-value match
    ("\\d{3}", "123", True),
    ("\\d{3}", "١٢٣", False),  # Java's \d is ASCII-only
    ("\\s", "\u00a0", False),  # so is \s
    (".*", "a\rb", False),  # "." stops at every line terminator, not only \n
    (".*", "a\u2028b", False),
    ("[\\s\\S]*", "a\rb\nc", True),
    ("([\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*)", "héllo wörld ٣ 日本 _.:/=+-@", True),
    ("([\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*)", "tab\tno", False),
    ("\\p{Lu}+", "ABÇ", True),
    ("\\P{L}+", "123", True),
    ("\\p{Alpha}+", "abc", True),
    ("\\p{Alpha}+", "é", False),  # POSIX classes are ASCII in Java
    ("[^ /\\.$\\x22]*", 'db"name', False),
    ("[0-9A-Za-z\\.\\-_]*(?<!\\.)", "bucket.", False),
    ("(?!^[0-9]+$)([a-zA-Z0-9-_]+)", "2024", False),
    ("(?!^[0-9]+$)([a-zA-Z0-9-_]+)", "v2024", True),
    ("$|kafka://x", "", True),
    ("\\Qa.b\\E", "a.b", True),
    ("\\Qa.b\\E", "axb", False),
    ("\\x{41}", "A", True),
    ("a\\z", "a", True),
    ("[]a]+", "]a", True),
])
def test_java_semantics(pattern: str, value: str, matches: bool) -> None:
    assert (compile_java(pattern).fullmatch(value) is not None) is matches


@pytest.mark.parametrize("pattern", ["[a-z&&[^e]]", "\\p{Greek}", "\\h", "[a"])
def test_unknown_constructs_fail_loudly(pattern: str) -> None:
    with pytest.raises(UnsupportedPattern):
        translate(pattern)
