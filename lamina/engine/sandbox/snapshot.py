"""SnapStart on the server's side: making a snapshot process and spawning environments from it.

``make`` is what ``Launcher.snapshot`` does (both launchers): it spawns the snapshot through
the template like any environment (``mode: "snapshot"``, see ``snapshot_process``) with one
descriptor more, the snapshot's own control socket, and waits until the snapshot says it has
run the Init, or has failed, or ``timeout`` is over. ``ForkSnapshot`` is the resulting
``api.Snapshot``.

Two supervisors are involved: the template's (``TemplateSupervisor``) made the snapshot process
and reports its exit; the snapshot's (``SnapshotSupervisor``) speaks the template's protocol to
the snapshot, which forks environments as the template does, plus the snapshot's own messages:
``map-ids`` (write its user namespace's maps, ``userns.write_maps``) and ``init-failed``.

Each environment forked from a sandboxed snapshot joins its own cgroup slot as the snapshot's
namespace root (host uid U), so the launcher hands that slot's join file to U first
(``Slot.delegate``). Such a slot serves that snapshot's environments only (``_OwnSlots``) and
is removed with the snapshot instead of going back to the shared pool: the snapshot runs user
code, which could keep the file open and later move itself into the slot of another function's
environment. Reusing it for the same snapshot also keeps cgroup writes (limits, ownership) off
the next cold start.

This module works with the launcher's own parts (its template supervisor, cgroup pool, spawn
payloads); it is the launcher's collaborator, not an independent user of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
from typing import TYPE_CHECKING, Any

from lamina.engine.sandbox import cgroups, protocol, userns
from lamina.engine.sandbox.api import (
    ExitStatus,
    PythonEntry,
    SandboxSpec,
    SnapshotFailed,
    SpawnFailed,
)
from lamina.engine.sandbox.environment import Environment
from lamina.engine.sandbox.supervisor import TemplateSupervisor

if TYPE_CHECKING:
    from lamina.engine.sandbox.launcher import _ForkLauncher

log = logging.getLogger(__name__)

PLATFORM_ERROR = "Runtime.Unknown"
TIMED_OUT = "Sandbox.Timedout"
OUT_OF_MEMORY = "Runtime.OutOfMemory"
EXIT_ERROR = "Runtime.ExitError"
_EXIT_WAIT_S = 2.0  # after a failure: how long to wait for the exit status that explains it


class SnapshotSupervisor(TemplateSupervisor):
    """The server's end of one snapshot's control socket.

    It never restarts its process: a dead snapshot is made anew by whoever needs it (the
    engine, at the next cold start). Ending it ends the snapshot process (``outer``).
    """

    def __init__(self, sock: socket.socket, id_base: int | None, *,
                 spawn_timeout: float) -> None:
        super().__init__((), {}, {}, spawn_timeout=spawn_timeout)
        self.id_base = id_base
        self.outer: Environment | None = None  # the snapshot process, as the template's child
        self.init_error: dict[str, Any] | None = None
        self._loop = asyncio.get_running_loop()
        self._connect(sock)

    async def wait_ready(self, timeout: float) -> None:
        """Until the snapshot serves; ``TimeoutError``, or ``SpawnFailed`` once it is gone."""
        assert self._ready is not None
        await asyncio.wait_for(asyncio.shield(self._ready), timeout)
        self._state = "ready"

    @property
    def error(self) -> str:
        return self._error

    def _dispatch(self, message: dict[str, Any], sender: int) -> None:
        op = message.get("op")
        if op == "map-ids":
            self._map(sender)
        elif op == "init-failed":
            self.init_error = message
        elif op == "fatal":
            self._error = f"the snapshot failed to start: {message.get('error')}"
        else:
            super()._dispatch(message, sender)

    def _map(self, pid: int) -> None:
        if self.id_base is None or pid <= 0:
            self._send({"op": "map-failed", "error": "no id block for this snapshot"})
            return
        try:
            userns.write_maps(pid, self.id_base)
        except OSError as exc:
            log.warning("cannot map the user namespace of snapshot process %d: %s", pid, exc)
            self._send({"op": "map-failed", "error": str(exc)})
            return
        self._send({"op": "mapped"})

    def _kill_template(self) -> None:
        if self.outer is not None:
            self.outer.kill()


class _OwnSlots:
    """The cgroup slots of one snapshot's environments: taken from the shared pool, delegated
    to the snapshot's id once, reused by its environments only, removed once it is closed.

    It is the pool an ``Environment`` of the snapshot gives its slot back to (``release``).
    """

    def __init__(self, launcher: _ForkLauncher, pool: cgroups.CgroupPool, uid: int) -> None:
        self._launcher = launcher
        self._pool = pool
        self._uid = uid
        self._free: list[cgroups.Slot] = []
        self._closed = False

    def acquire(self, spec: SandboxSpec) -> cgroups.Slot:
        while self._free:
            slot = self._free.pop()
            try:
                slot.configure(spec.memory_mb, spec.pids_max)
                return slot
            except OSError:
                self._pool.discard(slot)  # e.g. a lower limit than what is still charged
        slot = self._launcher._acquire_slot(spec)
        assert slot is not None
        try:
            slot.delegate(self._uid)  # it joins as the snapshot's namespace root
        except OSError as exc:
            self._pool.retire(slot)
            raise SpawnFailed(f"cannot hand the cgroup to the snapshot: {exc}") from exc
        return slot

    def prepare(self, spec: SandboxSpec) -> None:
        """Have one slot ready for the first environment (off its cold start)."""
        with contextlib.suppress(SpawnFailed, OSError):
            self._free.append(self.acquire(spec))

    def release(self, slot: cgroups.Slot) -> bool:
        if not slot.is_empty():
            return False
        if self._closed:
            return self._pool.discard(slot)
        self._free.append(slot)
        return True

    def retire(self, slot: cgroups.Slot) -> None:
        self._pool.retire(slot)

    def close(self) -> None:
        """No more environments: remove the free slots now, the others as they empty."""
        self._closed = True
        free, self._free = self._free, []
        for slot in free:
            if not self._pool.discard(slot):
                self._pool.retire(slot)


class ForkSnapshot:
    """One snapshot process and the environments forked from it (``api.Snapshot``)."""

    def __init__(self, launcher: _ForkLauncher, supervisor: SnapshotSupervisor,
                 outer: Environment, slots: _OwnSlots | None) -> None:
        self._launcher = launcher
        self._supervisor = supervisor
        self._outer = outer
        self._slots = slots
        self._closed = False
        self._tasks: set[asyncio.Task[None]] = set()
        outer.add_done_callback(self._on_exit)

    @property
    def alive(self) -> bool:
        return not self._closed and not self._outer.done and self._supervisor.state == "ready"

    @property
    def pid(self) -> int:
        """The snapshot process's host pid (the one the template made), for diagnostics."""
        return self._outer.pid

    async def spawn(self, spec: SandboxSpec) -> Environment:
        if not self.alive:
            raise SpawnFailed("the snapshot is gone")
        return await _spawn_from(self._launcher, self._supervisor, self._slots, spec)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._supervisor.close()  # its environments are told they are lost
        self._outer.kill()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._outer.wait(), 10.0)

    def _on_exit(self) -> None:
        # The process is gone: whatever it had forked died with it (PDEATHSIG, pid namespace).
        task = asyncio.get_running_loop().create_task(self._supervisor.close())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if self._slots is not None:
            self._slots.close()
        _give_back_ids(self._launcher, self._supervisor.id_base)


async def make(launcher: _ForkLauncher, spec: SandboxSpec, timeout: float) -> ForkSnapshot:
    """Spawn a snapshot process for ``spec`` and wait for its Init (``Launcher.snapshot``)."""
    template = launcher._supervisor
    if template is None or launcher._closed:
        raise SnapshotFailed(PLATFORM_ERROR, "the launcher is not running")
    if not isinstance(spec.entry, PythonEntry):
        raise SnapshotFailed(PLATFORM_ERROR, "SnapStart runs the python runtime only")
    if spec.network != "host":
        raise SnapshotFailed(PLATFORM_ERROR, "SnapStart does not run functions with VpcConfig "
                                             "in lamina yet")
    reason = _unsupported(launcher)
    if reason is not None:
        raise SnapshotFailed(PLATFORM_ERROR, reason)
    try:
        payload = launcher._child_config(spec)
        slot = launcher._acquire_slot(spec)
    except SpawnFailed as exc:
        raise SnapshotFailed(PLATFORM_ERROR, str(exc)) from exc
    id_base = launcher._snapshot_ids.take() if launcher._sandboxed else None
    payload.update(mode="snapshot", snapshot_ids=id_base, spares=launcher.snapshot_spares,
                   uid=None)
    outer = Environment(template, launcher._pool(), slot)
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    supervisor = SnapshotSupervisor(ours, id_base, spawn_timeout=launcher._spawn_timeout)
    supervisor.outer = outer
    try:
        payload_fd = protocol.write_payload(payload)
    except OSError as exc:
        outer.no_child()
        theirs.close()
        await _discard(launcher, supervisor, outer)
        raise SnapshotFailed(PLATFORM_ERROR, f"cannot write the spawn payload: {exc}") from exc
    launcher._adopt(outer)
    # The control socket travels after the output pipe, so there must be one.
    output_fd = spec.output_fd if spec.output_fd >= 0 else os.open(os.devnull, os.O_WRONLY)
    try:
        outer.attach(*await template.spawn(slot.name if slot else None, payload_fd,
                                           output_fd, outer, [theirs.fileno()]))
    except SpawnFailed as exc:
        await _discard(launcher, supervisor, outer)
        raise SnapshotFailed(PLATFORM_ERROR, f"cannot start the snapshot: {exc}") from exc
    finally:
        theirs.close()  # the snapshot holds its own copy now
        if output_fd != spec.output_fd:
            os.close(output_fd)
    try:
        await supervisor.wait_ready(timeout)
    except TimeoutError:
        await _discard(launcher, supervisor, outer)
        raise SnapshotFailed(TIMED_OUT, f"Init phase timed out after {timeout:.2f} seconds",
                             timed_out=True) from None
    except asyncio.CancelledError:
        await _discard(launcher, supervisor, outer)
        raise
    except SpawnFailed:  # its socket closed: the snapshot is dying, its exit tells why
        status = await _exit_status(outer)
        await _discard(launcher, supervisor, outer)
        raise _failure(supervisor, status) from None
    pool = launcher._pool()
    slots = None
    if pool is not None and id_base is not None:
        slots = _OwnSlots(launcher, pool, id_base)
        slots.prepare(spec)
    return ForkSnapshot(launcher, supervisor, outer, slots)


def _unsupported(launcher: _ForkLauncher) -> str | None:
    pool = launcher._pool()
    if pool is not None and any(h.version != 1 for h in pool.hierarchies):
        # On v2 a process may move between cgroups only through their common parent's
        # cgroup.procs, which would let the snapshot's user code out of its own slot.
        return ("SnapStart needs the memory and pids cgroup controllers on cgroup v1; this "
                "host has them on cgroup v2")
    return None


def _failure(supervisor: SnapshotSupervisor, status: ExitStatus | None) -> SnapshotFailed:
    """Why the snapshot ended before it served: its Init's own error when it sent one."""
    error = supervisor.init_error
    if error is not None:
        payload = str(error.get("payload") or "").encode() or None
        return SnapshotFailed(str(error.get("errorType") or PLATFORM_ERROR),
                              str(error.get("errorMessage") or ""), payload)
    if status is not None and status.oom_killed:
        return SnapshotFailed(OUT_OF_MEMORY, f"Runtime exited with error: {status.describe()}")
    if status is not None and (status.code, status.signal) != (125, None):
        return SnapshotFailed(EXIT_ERROR, f"Runtime exited with error: {status.describe()}")
    return SnapshotFailed(PLATFORM_ERROR, f"the snapshot failed to start: {supervisor.error}")


async def _exit_status(outer: Environment) -> ExitStatus | None:
    try:
        return await asyncio.wait_for(outer.wait(), _EXIT_WAIT_S)
    except TimeoutError:
        return None


async def _discard(launcher: _ForkLauncher, supervisor: SnapshotSupervisor,
                   outer: Environment) -> None:
    """End a snapshot that never served, and wait until nothing of it is left."""
    await supervisor.close()
    outer.kill()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(outer.wait(), 10.0)
    _give_back_ids(launcher, supervisor.id_base)


def _give_back_ids(launcher: _ForkLauncher, id_base: int | None) -> None:
    if id_base is not None:
        launcher._snapshot_ids.give_back(id_base)


async def _spawn_from(launcher: _ForkLauncher, supervisor: SnapshotSupervisor,
                      slots: _OwnSlots | None, spec: SandboxSpec) -> Environment:
    """``Launcher.spawn`` for an environment forked from a snapshot."""
    if not isinstance(spec.entry, PythonEntry):
        raise SpawnFailed("a snapshot forks python environments only")
    payload = launcher._child_config(spec)
    slot = None
    if slots is not None:
        slot = slots.acquire(spec)
        payload["uid"] = userns.FUNCTION_UID
    env = Environment(supervisor, slots, slot)  # type: ignore[arg-type]  # a pool to it
    return await launcher._fork_through(supervisor, env, slot, payload, spec.output_fd)


def describe_failure(failure: SnapshotFailed) -> str:
    """One line for logs and state reasons: ``<errorType>: <message>``."""
    text = failure.message
    if failure.payload:
        with contextlib.suppress(ValueError, AttributeError):
            text = json.loads(failure.payload).get("errorMessage") or text
    return f"{failure.error_type}: {text}" if text else failure.error_type
