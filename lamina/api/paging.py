"""``Marker`` / ``MaxItems`` paging of the list operations that list from memory.

A marker is the key of the last item of the previous page (the ``NextMarker`` handed out), so
pages stay stable in whatever order the list is; a marker that names no item is refused.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from lamina.errors import InvalidParameterValue

T = TypeVar("T")
DEFAULT_MAX_ITEMS = 50


def page(items: Sequence[T], key: Callable[[T], Any],
         params: dict[str, Any]) -> tuple[list[T], str | None]:
    """(this page's items, the ``NextMarker`` or ``None``) for a request's ``Marker`` and
    ``MaxItems``."""
    marker = params.get("Marker")
    if marker is not None:
        keys = [str(key(item)) for item in items]
        if marker not in keys:
            raise InvalidParameterValue(f"Invalid marker: {marker}")
        items = items[keys.index(marker) + 1:]
    limit = params.get("MaxItems") or DEFAULT_MAX_ITEMS
    return list(items[:limit]), (str(key(items[limit - 1])) if len(items) > limit else None)


def listing(member: str, items: list[Any], marker: str | None) -> dict[str, Any]:
    """A List operation's output: ``items`` under ``member``, and ``NextMarker`` when
    ``page`` left more."""
    output: dict[str, Any] = {member: items}
    if marker is not None:
        output["NextMarker"] = marker
    return output
