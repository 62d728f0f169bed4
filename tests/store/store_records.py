"""Records for the store tests."""

from __future__ import annotations

from lamina.store.api import LATEST, FunctionRecord


def make_record(
    name: str = "f",
    *,
    version: str = LATEST,
    revision: str = "rev-1",
    created: float = 1_700_000_000.5,
    **config: object,
) -> FunctionRecord:
    """A plausible ``$LATEST`` record; ``config`` keys override Lambda fields."""
    return FunctionRecord(
        name=name,
        version=version,
        config={"Runtime": "python3.12", "Handler": "app.handler", "MemorySize": 128, **config},
        code_sha256="0" * 64,
        code_size=321,
        revision_id=revision,
        last_modified="2026-11-25T10:00:00.000+0000",
        created=created,
    )
