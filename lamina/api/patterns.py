"""Java regular expressions, as the Lambda service model writes them, compiled for Python ``re``.

AWS validates ``pattern`` traits with ``java.util.regex`` and ``Matcher.matches()``: the whole
value must match, ``\\d``/``\\s``/``\\w`` are ASCII-only, ``.`` stops at any line terminator, and
``\\p{L}``-style Unicode classes are allowed. Python's ``re`` differs on each point, so a pattern
is translated once (here) rather than being fed to ``re`` as is and silently meaning something
else. Only the constructs the model uses, plus a few neighbours, are translated; anything else
raises ``UnsupportedPattern`` so a new model that needs more fails a test, not a request.
"""

from __future__ import annotations

import functools
import re
import sys
import unicodedata

__all__ = ["UnsupportedPattern", "compile_java", "translate"]

# Java's default "." excludes every line terminator, not only "\n".
_JAVA_DOT = "[^\\n\\r\\u0085\\u2028\\u2029]"

# POSIX-style classes Java accepts in \p{...} (ASCII-only by default, as in Java).
_POSIX = {
    "Lower": "a-z",
    "Upper": "A-Z",
    "ASCII": "\\x00-\\x7f",
    "Alpha": "a-zA-Z",
    "Digit": "0-9",
    "Alnum": "a-zA-Z0-9",
    "Punct": "!-/:-@\\[-`{-~",
    "Graph": "!-~",
    "Print": " -~",
    "Blank": " \\t",
    "Cntrl": "\\x00-\\x1f\\x7f",
    "XDigit": "0-9a-fA-F",
    "Space": " \\t\\n\\x0b\\f\\r",
}


class UnsupportedPattern(ValueError):
    """The model uses a Java regex construct this translator does not know."""


@functools.cache
def _category_table() -> dict[str, str]:
    """Class bodies (no brackets) of every two-letter general category, from one Unicode scan.

    Scanning all of Unicode takes ~0.2 s, so it runs once, and only when a pattern needs it
    (TagKey and TagValue in the Lambda model).
    """
    table: dict[str, list[str]] = {}
    current, start = "", 0
    for cp in range(sys.maxunicode + 2):
        category = unicodedata.category(chr(cp)) if cp <= sys.maxunicode else ""
        if category != current:
            if current:
                table.setdefault(current, []).append(_range(start, cp - 1))
            current, start = category, cp
    return {category: "".join(parts) for category, parts in table.items()}


def _category_ranges(prefix: str) -> str:
    return "".join(body for category, body in _category_table().items()
                   if category.startswith(prefix))


def _range(lo: int, hi: int) -> str:
    return _escape_cp(lo) if lo == hi else f"{_escape_cp(lo)}-{_escape_cp(hi)}"


def _escape_cp(cp: int) -> str:
    return f"\\U{cp:08x}"


def _property_class(name: str) -> str:
    """Class body for ``\\p{name}``."""
    if name.startswith("Is"):
        name = name[2:]
    if name in _POSIX:
        return _POSIX[name]
    if name.startswith("general_category="):
        name = name.split("=", 1)[1]
    if len(name) in (1, 2) and name[0] in "LMNPSZC" and name.isalpha():
        body = _category_ranges(name)
        if body:
            return body
    raise UnsupportedPattern(f"unsupported Unicode property \\p{{{name}}}")


def translate(pattern: str) -> str:
    """Rewrite a Java regex into an equivalent Python one (to be used with ``re.ASCII``)."""
    out: list[str] = []
    i, n = 0, len(pattern)
    in_class = False
    while i < n:
        ch = pattern[i]
        if ch == "\\":
            if i + 1 >= n:
                raise UnsupportedPattern("trailing backslash")
            nxt = pattern[i + 1]
            if nxt in "pP":
                name, i = _read_braced(pattern, i + 2)
                body = _property_class(name)
                if nxt == "P":
                    if in_class:
                        raise UnsupportedPattern("negated property inside a class")
                    out.append(f"[^{body}]")
                else:
                    out.append(body if in_class else f"[{body}]")
                continue
            if nxt == "Q":
                end = pattern.find("\\E", i + 2)
                literal = pattern[i + 2:] if end < 0 else pattern[i + 2:end]
                out.append(re.escape(literal))
                i = n if end < 0 else end + 2
                continue
            if nxt == "x" and i + 2 < n and pattern[i + 2] == "{":
                digits, i = _read_braced(pattern, i + 2)
                out.append(_escape_cp(int(digits, 16)))
                continue
            if nxt == "z":
                out.append("\\Z")
                i += 2
                continue
            if nxt == "Z":
                out.append("(?=[\\n\\r\\u0085\\u2028\\u2029]?\\Z)")
                i += 2
                continue
            if nxt in "hHvVRXk":
                raise UnsupportedPattern(f"unsupported escape \\{nxt}")
            out.append(pattern[i:i + 2])
            i += 2
            continue
        if in_class:
            if ch == "[" or pattern.startswith("&&", i):
                raise UnsupportedPattern("nested class or class intersection")
            if ch == "]":
                in_class = False
            out.append(ch)
            i += 1
            continue
        if ch == "[":
            in_class = True
            out.append(ch)
            i += 1
            # A leading "^" and a leading "]" belong to the class, as in Java.
            if i < n and pattern[i] == "^":
                out.append("^")
                i += 1
            if i < n and pattern[i] == "]":
                out.append("\\]")
                i += 1
            continue
        out.append(_JAVA_DOT if ch == "." else ch)
        i += 1
    if in_class:
        raise UnsupportedPattern("unterminated character class")
    return "".join(out)


def _read_braced(pattern: str, i: int) -> tuple[str, int]:
    """Read ``{...}`` starting at ``pattern[i]``; return its content and the index after it."""
    if i >= len(pattern) or pattern[i] != "{":
        raise UnsupportedPattern("expected '{' after \\p, \\P or \\x")
    end = pattern.find("}", i)
    if end < 0:
        raise UnsupportedPattern("unterminated '{'")
    return pattern[i + 1:end], end + 1


@functools.cache
def compile_java(pattern: str) -> re.Pattern[str]:
    """Compile a model pattern once; match values with ``.fullmatch`` as Java's ``matches()``."""
    return re.compile(translate(pattern), re.ASCII)
