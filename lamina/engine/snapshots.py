"""The SnapStart snapshot of one function version, as the scheduler keeps it (one per pool:
function, version, generation).

A ``SnapshotKeeper`` makes the snapshot when asked (``ensure``: at publish through
``Scheduler.prepare_snapshot``, or at the first cold start that finds none), and every
concurrent caller waits for that one making: one Init, however many cold starts arrive while it
runs. A snapshot that died is made again by the next ``ensure`` (which then pays the Init);
``spawn`` retries once on a fresh snapshot when the one it used died under it, so no invoke
fails for a death it did not cause. ``close`` (the pool retired) ends the snapshot and every
environment forked from it.

The snapshot's Init writes to a log stream of its own, ``<date>/[<version>]snapshot-<id>``,
framed as an on-demand Init is (``INIT_START`` ... ``INIT_REPORT``); its credentials (which
objects made at Init may hold) stay valid until the snapshot ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time
import uuid
from collections.abc import Coroutine
from typing import Any

from lamina.engine.api import FunctionTarget, SnapshotInitFailed
from lamina.engine.context import EngineContext
from lamina.engine.output import OutputLines
from lamina.engine.platform_logs import PlatformLines
from lamina.engine.sandbox.api import (
    SandboxProcess,
    SandboxSpec,
    Snapshot,
    SnapshotFailed,
    SpawnFailed,
)
from lamina.engine.sandbox.snapshot import describe_failure

log = logging.getLogger(__name__)

INIT_TIMEOUT_S = 10.0


class SnapshotKeeper:
    def __init__(self, target: FunctionTarget, context: EngineContext) -> None:
        self.target = target
        self.context = context
        self._snapshot: Snapshot | None = None
        self._run: _SnapshotRun | None = None
        self._making: asyncio.Task[Snapshot] | None = None
        self._closed = False
        self._tasks: set[asyncio.Task[None]] = set()

    async def ensure(self) -> Snapshot:
        """The live snapshot, made now if there is none; ``SnapshotFailed`` if its Init fails."""
        snapshot = self._snapshot
        if snapshot is not None and snapshot.alive:
            return snapshot
        if self._closed:
            raise SnapshotFailed("Runtime.Unknown", "the version was retired")
        if self._making is None:
            self._making = asyncio.get_running_loop().create_task(self._make())
        return await asyncio.shield(self._making)

    async def spawn(self, spec: SandboxSpec) -> SandboxProcess:
        """An environment forked from the snapshot (made first if needed)."""
        snapshot = await self.ensure()
        try:
            return await snapshot.spawn(spec)
        except SpawnFailed:
            if snapshot.alive or self._closed:
                raise
        return await (await self.ensure()).spawn(spec)  # it died under us: once more

    def close(self) -> None:
        """End the snapshot (and its environments) in the background; harmless twice."""
        self._closed = True
        self._background(self._end_current())

    async def _make(self) -> Snapshot:
        try:
            await self._end_current()
            run = _SnapshotRun(self.target, self.context)
            self._run = run
            snapshot = await run.start()
            if self._closed:
                await snapshot.close()
                run.close()
                raise SnapshotFailed("Runtime.Unknown", "the version was retired")
            self._snapshot = snapshot
            return snapshot
        finally:
            self._making = None

    async def _end_current(self) -> None:
        snapshot, self._snapshot = self._snapshot, None
        run, self._run = self._run, None
        if snapshot is not None:
            await snapshot.close()
        if run is not None:
            run.close()

    def _background(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


class _SnapshotRun:
    """One snapshot process's Init: its spec, log stream, output pipe and credentials."""

    def __init__(self, target: FunctionTarget, context: EngineContext) -> None:
        self.id = uuid.uuid4().hex
        self.target = target
        self.context = context
        self.initialization_type = "snap-start"
        self.session_key = ""
        day = time.strftime("%Y/%m/%d", time.gmtime())
        self.log_stream = f"{day}/[{target.version}]snapshot-{self.id}"
        self._lines = PlatformLines(target.runtime, target.function_arn,
                                    target.log_format == "JSON", target.system_log_level)
        self._out_fd = -1
        self._output = OutputLines(self._log)
        self._loop = asyncio.get_running_loop()

    async def start(self) -> Snapshot:
        read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
        os.set_blocking(read_fd, False)
        self._out_fd = read_fd
        self._loop.add_reader(read_fd, self._read)
        self._log(self._lines.init_start("snap-start"))
        started = time.perf_counter()
        try:
            # No Runtime API during a snapshot's Init: nothing answers there until restore.
            spec = self.context.sandbox_spec(self, "", write_fd)
            snapshot = await self.context.launcher.snapshot(spec, INIT_TIMEOUT_S)
        except SnapshotFailed as exc:
            self._read()
            status = "timeout" if exc.timed_out else "error"
            self._log(self._lines.init_report((time.perf_counter() - started) * 1000, "init",
                                              status, exc.error_type, "snap-start"))
            log.warning("snapshot of %s:%s failed: %s", self.target.name, self.target.version,
                        exc)
            self.close()
            raise
        finally:
            os.close(write_fd)
        self._read()
        self._log(self._lines.init_report((time.perf_counter() - started) * 1000, "init",
                                          "success", None, "snap-start"))
        return snapshot

    def close(self) -> None:
        if self._out_fd >= 0:
            self._read()
            self._output.flush()
            self._loop.remove_reader(self._out_fd)
            os.close(self._out_fd)
            self._out_fd = -1
        if self.session_key:
            self.context.sessions.revoke(self.session_key)
            self.session_key = ""

    def _log(self, line: str | None) -> None:
        if line is not None:  # None: below the function's SystemLogLevel
            self.context.logs.append(self.target.log_group, self.log_stream, line)

    def _read(self) -> None:
        # Read to the end each time, as before: only the snapshot's Init writes to this pipe.
        if self._out_fd >= 0 and self._output.read(self._out_fd, sys.maxsize):
            with contextlib.suppress(ValueError):
                self._loop.remove_reader(self._out_fd)


async def prepare(keeper: SnapshotKeeper) -> None:
    """``Scheduler.prepare_snapshot``: the snapshot made, or ``SnapshotInitFailed``."""
    try:
        await keeper.ensure()
    except SnapshotFailed as exc:
        raise SnapshotInitFailed(exc.error_type, describe_failure(exc), exc.timed_out) from None
