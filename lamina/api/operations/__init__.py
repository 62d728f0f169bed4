"""The route table's far end: one small async function per Lambda API operation.

Each operation receives a ``Call`` (its validated params, the context and the HTTP request) and
returns the output members of the operation's output shape; ``lamina.api.serialize`` turns them
into the HTTP answer. Operations raise ``ServiceError``s, never build error responses.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

from lamina.api.context import ApiContext
from lamina.http.types import Request


@dataclasses.dataclass
class Call:
    context: ApiContext
    params: dict[str, Any]
    request: Request
    request_id: str


Operation = Callable[[Call], Awaitable[dict[str, Any]]]
OPERATIONS: dict[str, Operation] = {}


def operation(name: str) -> Callable[[Operation], Operation]:
    def register(handler: Operation) -> Operation:
        OPERATIONS[name] = handler
        return handler
    return register


def load_all() -> dict[str, Operation]:
    """Import every operation module so that each registers itself."""
    from lamina.api.operations import (  # noqa: F401
        account,
        aliases,
        concurrency,
        event_invoke_config,
        functions,
        invoke,
        layers,
        permissions,
        provisioned,
        tags,
        versions,
    )

    return OPERATIONS
