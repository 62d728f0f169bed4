"""Lambda's rules for tags: at most 50 on a function, none under the reserved ``aws:`` prefix."""

from __future__ import annotations

from collections.abc import Iterable

from lamina.errors import InvalidParameterValue

MAX_TAGS = 50


def check_tags(keys: Iterable[str]) -> None:
    keys = list(keys)
    if len(keys) > MAX_TAGS:
        raise InvalidParameterValue("Number of tags exceeds resource tag limit.")
    reserved = [key for key in keys if key.lower().startswith("aws:")]
    if reserved:
        raise InvalidParameterValue(
            f"Tag keys starting with 'aws:' are reserved for internal use: {reserved[0]}")
