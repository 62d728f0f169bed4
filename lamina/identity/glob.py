"""IAM's wildcards: ``*`` (any run of characters) and ``?`` (one character), nothing else.

Patterns are compiled to regular expressions once and cached: the same few patterns of a
policy are matched on every call of every principal holding it. Actions compare ignoring case
(``lambda:invokefunction`` is ``lambda:InvokeFunction``), resources and ARNs with case.
ARN patterns match segment by segment (``arn:partition:service:region:account:resource``), so a
``*`` in the region never swallows the account, as AWS documents for ``ArnLike``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable

Matcher = Callable[[str], bool]


@functools.lru_cache(maxsize=4096)
def compile_glob(pattern: str, ignore_case: bool = False) -> Matcher:
    """A predicate telling whether a whole string matches ``pattern``."""
    if pattern == "*":
        return _always
    if "*" not in pattern and "?" not in pattern:
        if ignore_case:
            lowered = pattern.lower()
            return lambda text: text.lower() == lowered
        return pattern.__eq__
    parts = []
    for char in pattern:
        parts.append(".*" if char == "*" else "." if char == "?" else re.escape(char))
    regex = re.compile("".join(parts), re.DOTALL | (re.IGNORECASE if ignore_case else 0))
    return lambda text: regex.fullmatch(text) is not None


def _always(_text: str) -> bool:
    return True


@functools.lru_cache(maxsize=4096)
def compile_arn(pattern: str) -> Matcher:
    """A predicate for ARN ``pattern``: per segment when both sides are ARNs, else a glob."""
    if pattern == "*":
        return _always
    whole = compile_glob(pattern)
    if not pattern.startswith("arn:") or pattern.count(":") < 5:
        return whole
    segments = [compile_glob(part) for part in pattern.split(":", 5)]

    def match(text: str) -> bool:
        parts = text.split(":", 5)
        if len(parts) != 6:
            return whole(text)
        return all(m(p) for m, p in zip(segments, parts, strict=True))
    return match
