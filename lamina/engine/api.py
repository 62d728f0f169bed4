"""What the API layer hands the engine, and what it gets back.

The API resolves a function name and qualifier to a ``FunctionTarget`` (from its cache of the
store) and calls ``Engine.invoke``; the engine knows nothing of HTTP, the API nothing of
processes. Guarantees of ``Engine``:

* ``invoke`` always completes: with an ``InvokeResult`` (a function error is a result, not an
  exception) or by raising ``TooManyRequests`` (throttled) / ``ServiceError`` (platform failure).
* ``retire`` makes every later ``invoke`` of that function start from the new target; busy
  environments of the old one finish their invocation and are then shut down.
* ``close`` ends every environment; calls after it are harmless no-ops.
* ``prepare_snapshot`` (SnapStart targets) returns once the version's snapshot has run its Init,
  or raises ``SnapshotInitFailed``; a snapshot that dies later is made again at the next cold
  start. Its environments that fail their restore fail their invocation with
  ``SnapStartError``/``SnapStartTimeout`` (an API error, not a function error).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

LATEST = "$LATEST"


class SnapshotInitFailed(Exception):
    """``prepare_snapshot``: the version's Init failed (or overran) in its snapshot process.
    ``reason`` is ``<errorType>: <errorMessage>`` as the runtime reported it."""

    def __init__(self, error_type: str, reason: str, timed_out: bool = False) -> None:
        super().__init__(reason)
        self.error_type = error_type
        self.reason = reason
        self.timed_out = timed_out


@dataclasses.dataclass(frozen=True)
class FunctionTarget:
    """One version of one function, as the engine runs it."""

    name: str
    version: str
    function_arn: str  # unqualified
    generation: str  # changes whenever anything that shapes the environment changes
    runtime: str
    handler: str
    memory_mb: int
    timeout_s: float
    code_dir: Path
    environment: Mapping[str, str] = dataclasses.field(default_factory=dict)
    ephemeral_mb: int = 512
    log_format: str = "Text"  # LoggingConfig.LogFormat
    application_log_level: str | None = None
    system_log_level: str | None = None
    log_group: str = ""
    command: tuple[str, ...] | None = None  # a runtime command replacing the runtime's own
    opt_dir: Path | None = None  # the function's layers, merged; read-only at /opt
    role: str = ""  # the execution role's ARN: each environment gets credentials for it
    vpc: bool = False  # VpcConfig with subnets: its own network namespace (lamina's API only)
    # SnapStart applies (a published python3.11 version with ApplyOn: PublishedVersions): its
    # Init runs once in a snapshot process and its environments are forks of it.
    snap_start: bool = False

    # Cached: read on every invoke. (A frozen dataclass still has a ``__dict__`` for them, and
    # they take no part in its equality or hash.)
    @functools.cached_property
    def key(self) -> tuple[str, str]:
        return (self.name, self.version)

    @functools.cached_property
    def qualified_arn(self) -> str:
        return f"{self.function_arn}:{self.version}"


@dataclasses.dataclass
class InvokeRequest:
    payload: bytes
    request_id: str
    invoked_arn: str  # the ARN as the caller named it (qualified when a qualifier was given)
    trace_id: str
    client_context: str | None = None  # JSON text, already base64-decoded
    cognito_identity: str | None = None
    tail_log: bool = False


@dataclasses.dataclass
class InvokeResult:
    payload: bytes
    executed_version: str
    function_error: str | None = None  # "Unhandled" when the function failed
    log_tail: str | None = None  # base64 of the last 4 KB of the invocation's log
    error_type: str | None = None  # the failure's errorType, for logs and metrics


class Engine(Protocol):
    async def invoke(self, target: FunctionTarget, request: InvokeRequest) -> InvokeResult: ...

    def retire(self, name: str, version: str | None = None) -> None: ...

    async def prepare_snapshot(self, target: FunctionTarget) -> None: ...

    def set_reserved_concurrency(self, name: str, value: int | None) -> None: ...

    async def close(self) -> None: ...
