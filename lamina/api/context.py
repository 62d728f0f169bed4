"""What every API operation works with, and the in-memory view of functions the Invoke path reads.

The store is the truth; ``FunctionCache`` keeps the ``FunctionTarget`` of each function version
that was invoked, so a warm invoke touches no database. Every write path of this server calls
``invalidate`` for the function it changed before answering, so a cached entry is never older
than the last acknowledged update.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar, cast

from lamina.api import snapstart
from lamina.api.catalog import Catalog
from lamina.api.layers import opt_dir
from lamina.api.naming import Naming
from lamina.engine.api import FunctionTarget
from lamina.engine.scheduler import Scheduler
from lamina.errors import KMSAccessDenied, KMSNotFound
from lamina.invoke.api import AsyncInvocations
from lamina.observe.logstore import LogStore
from lamina.settings import Settings
from lamina.store.aliases import AliasRecord
from lamina.store.api import BlobStore, FunctionRecord, MetadataStore

T = TypeVar("T")


def target_from_record(record: FunctionRecord, naming: Naming, code_root: Path,
                       layers_root: Path | None = None) -> FunctionTarget:
    config = record.config
    logging = config.get("LoggingConfig") or {}
    environment = config.get("Environment") or {}
    if "Error" in environment:  # sealed variables that could not be opened: never run without
        error = environment["Error"]
        kind = KMSNotFound if error.get("ErrorCode") == "KMSNotFoundException" else KMSAccessDenied
        raise kind(error.get("Message", "The environment variables cannot be decrypted."))
    return FunctionTarget(
        name=record.name,
        version=record.version,
        function_arn=naming.function_arn(record.name),
        generation=record.revision_id,
        runtime=config["Runtime"],
        handler=config.get("Handler", ""),
        memory_mb=int(config.get("MemorySize", 128)),
        timeout_s=float(config.get("Timeout", 3)),
        code_dir=code_root / record.code_sha256,
        environment=dict(environment.get("Variables") or {}),
        ephemeral_mb=int((config.get("EphemeralStorage") or {}).get("Size", 512)),
        log_format=logging.get("LogFormat", "Text"),
        application_log_level=logging.get("ApplicationLogLevel"),
        system_log_level=logging.get("SystemLogLevel"),
        log_group=logging.get("LogGroup") or f"/aws/lambda/{record.name}",
        opt_dir=opt_dir(layers_root, config) if layers_root is not None else None,
        role=config.get("Role", ""),
        vpc=bool((config.get("VpcConfig") or {}).get("SubnetIds")),
        snap_start=snapstart.applies(record.version, config),
    )


class FunctionCache:
    """Runnable targets and aliases by name, dropped when the function changes.

    A miss is loaded once however many invokes ask at the same time (``loads``): a burst of
    200 invokes of a function not yet cached made 200 identical store queries, a tenth of the
    server's time in the burst (measured). A load that a change overtook is not kept."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], tuple[FunctionRecord, FunctionTarget]] = {}
        self._aliases: dict[tuple[str, str], AliasRecord] = {}
        self.loads: dict[tuple[str, ...], asyncio.Future[Any]] = {}
        self._generations: dict[str, int] = {}

    def get(self, name: str, version: str) -> tuple[FunctionRecord, FunctionTarget] | None:
        return self._entries.get((name, version))

    async def load_once(self, key: tuple[str, ...],
                        load: Callable[[], Awaitable[tuple[FunctionRecord, FunctionTarget]]],
                        ) -> tuple[FunctionRecord, FunctionTarget]:
        """What ``load()`` gives, started only if no load of ``key`` (whose first item is the
        function's name) is under way; every caller waits for the same one. Shielded: a
        caller that goes away does not cancel the load the others wait for."""
        loads = self.loads
        future = loads.get(key)
        if future is None:
            future = loads[key] = asyncio.ensure_future(load())
            future.add_done_callback(
                lambda done: loads.pop(key) if loads.get(key) is done else None)
        return cast(tuple[FunctionRecord, FunctionTarget], await asyncio.shield(future))

    def generation(self, name: str) -> int:
        """Changes whenever ``name`` is invalidated: taken before a load, given to ``put``."""
        return self._generations.get(name, 0)

    def put(self, record: FunctionRecord, target: FunctionTarget,
            generation: int | None = None) -> None:
        if generation is not None and generation != self.generation(record.name):
            return  # the function changed while this was read: the next invoke reads again
        self._entries[(record.name, record.version)] = (record, target)

    def alias(self, name: str, alias: str) -> AliasRecord | None:
        """A cached alias: Invoke through an alias decides its version per call from this."""
        return self._aliases.get((name, alias))

    def put_alias(self, record: AliasRecord) -> None:
        self._aliases[(record.function, record.name)] = record

    def invalidate(self, name: str) -> None:
        self._generations[name] = self.generation(name) + 1
        for key in [k for k in self.loads if k[0] == name]:
            del self.loads[key]
        for key in [k for k in self._entries if k[0] == name]:
            del self._entries[key]
        for key in [k for k in self._aliases if k[0] == name]:
            del self._aliases[key]


@dataclasses.dataclass
class ApiContext:
    settings: Settings
    naming: Naming
    store: MetadataStore
    blobs: BlobStore
    engine: Scheduler
    logs: LogStore
    code_root: Path
    cache: FunctionCache = dataclasses.field(default_factory=FunctionCache)
    layers_root: Path | None = None  # merged layer trees, one per distinct list of layers
    background: set[asyncio.Task[Any]] = dataclasses.field(default_factory=set)
    code_url: Callable[[str, str, str], str] | None = None  # (host, name, sha) -> URL
    catalog: Catalog | None = None  # aliases, layers, tags, provisioned configs
    async_events: AsyncInvocations | None = None  # the durable async queue (lamina/invoke)
    identity: Any = None  # lamina.api.iam.IamServices: roles, policies, the authorizer

    async def db(self, method: Callable[..., T], *args: Any) -> T:
        """Run a blocking store call off the event loop."""
        return await asyncio.to_thread(method, *args)

    def spawn(self, coroutine: Any) -> None:
        """Run background work that must not be garbage-collected half-way."""
        task = asyncio.get_running_loop().create_task(coroutine)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    def forget(self, name: str, version: str | None = None) -> None:
        """A function changed: drop cached views and retire the environments of ``version``
        (of every version when ``None``). Published versions never change, so an update of
        ``$LATEST`` leaves their environments (provisioned ones included) alone."""
        self.cache.invalidate(name)
        self.engine.retire(name, version)
