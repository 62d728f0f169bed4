"""SnapStart runtime hooks, importable by functions as AWS's ``snapshot_restore_py`` is.

A function registers callables at import time::

    from snapshot_restore_py import register_after_restore, register_before_snapshot

    @register_before_snapshot
    def close_connections() -> None: ...

    register_after_restore(reseed, 42, verbose=True)

The registration half is API-compatible with AWS's module (same names, same
``get_before_snapshot()`` / ``get_after_restore()`` registries of ``(func, args,
kwargs)`` tuples). The running half is lamina's: the platform calls
:func:`run_before_snapshot` in the template process once the function's Init
has finished (just before it starts forking environments from it) and
:func:`run_after_restore` in each forked environment before its first invoke.
Ordering follows AWS: before-snapshot hooks run last-registered first and are
consumed (they run once); after-restore hooks run in registration order, once
per restored environment.

This file lives in ``/var/runtime/python``, which is on ``sys.path`` in every
Python environment; the bootstrap imports it before the user's code, so a
function that vendored AWS's own copy still registers into this one.
Standard library only: nothing of lamina is importable inside the sandbox.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: annotations are strings
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    Hook = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]

__all__ = [
    "get_after_restore",
    "get_before_snapshot",
    "register_after_restore",
    "register_before_snapshot",
    "run_after_restore",
    "run_before_snapshot",
]

_before_snapshot_registry: list[Hook] = []
_after_restore_registry: list[Hook] = []


def register_before_snapshot(
    func: Callable[..., Any], *args: Any, **kwargs: Any
) -> Callable[..., Any]:
    """Run ``func(*args, **kwargs)`` before the snapshot; returns ``func`` (decorator use)."""
    _before_snapshot_registry.append((func, args, kwargs))
    return func


def register_after_restore(
    func: Callable[..., Any], *args: Any, **kwargs: Any
) -> Callable[..., Any]:
    """Run ``func(*args, **kwargs)`` after each restore; returns ``func`` (decorator use)."""
    _after_restore_registry.append((func, args, kwargs))
    return func


def get_before_snapshot() -> list[Hook]:
    """The live before-snapshot registry (AWS's accessor, kept for compatibility)."""
    return _before_snapshot_registry


def get_after_restore() -> list[Hook]:
    """The live after-restore registry (AWS's accessor, kept for compatibility)."""
    return _after_restore_registry


def run_before_snapshot() -> None:
    """Run and consume the before-snapshot hooks, newest first.

    An exception propagates to the caller (the platform reports it as
    ``Runtime.BeforeSnapshotError``); hooks after the failing one do not run.
    """
    while _before_snapshot_registry:
        func, args, kwargs = _before_snapshot_registry.pop()
        func(*args, **kwargs)


def run_after_restore() -> None:
    """Run the after-restore hooks in registration order.

    They are not consumed: every environment forked from the same template
    runs the whole list. An exception propagates (``Runtime.AfterRestoreError``).
    """
    for func, args, kwargs in list(_after_restore_registry):
        func(*args, **kwargs)
