"""``Environment``: the ``SandboxProcess`` a launcher hands out, and how one comes to an end.

An environment ends in one of three ways, each reported once by the supervisor: its first
process exited (the template reaped it), the template died (the process dies with it through
PDEATHSIG, but its exit is nobody's to report), or it never existed (the fork failed). In every
case ``wait`` resolves only when no process of the environment is left: with a cgroup slot that
means an empty ``cgroup.procs``, and only then does the slot go back to the pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Callable

from lamina.engine.sandbox.api import ExitStatus
from lamina.engine.sandbox.cgroups import CgroupPool, Slot, memory_mb
from lamina.engine.sandbox.supervisor import TemplateSupervisor

DRAIN_TIMEOUT = 5.0  # how long leftovers may take to disappear after SIGKILL
_POLL = 0.005


class Environment:
    """One execution environment (implements ``SandboxProcess`` and the supervisor's ``Owner``)."""

    def __init__(self, supervisor: TemplateSupervisor, pool: CgroupPool | None,
                 slot: Slot | None) -> None:
        self.pid = -1
        self._spawn_id = -1
        self._supervisor = supervisor
        self._pool = pool
        self._slot = slot
        self._done: asyncio.Future[ExitStatus] = asyncio.get_running_loop().create_future()
        self._ending = False
        self._peak = 0
        self._drain_task: asyncio.Task[None] | None = None

    # -- SandboxProcess ----------------------------------------------------------------------

    async def wait(self) -> ExitStatus:
        return await asyncio.shield(self._done)

    def kill(self) -> None:
        """SIGKILL the environment's pid 1 (which ends its pid namespace) and its cgroup."""
        if self._done.done():
            return
        if self._spawn_id > 0:
            self._supervisor.kill(self._spawn_id)
        if self._slot is not None:
            # Also what the pid namespace would take down anyway, and whatever joined the
            # cgroup while the template was unreachable.
            self._slot.kill_all()

    def max_memory_used_mb(self) -> int:
        if self._slot is None:
            return 0
        if self._ending:
            return memory_mb(self._peak)
        return memory_mb(self._slot.peak_bytes())

    def attach(self, spawn_id: int, pid: int) -> None:
        """The spawn succeeded: this is the child's id with the template and its host pid."""
        self._spawn_id, self.pid = spawn_id, pid

    @property
    def done(self) -> bool:
        return self._done.done()

    def add_done_callback(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once the environment ended (``wait`` resolved)."""
        self._done.add_done_callback(lambda _future: callback())

    # -- Owner -----------------------------------------------------------------------------

    def exited(self, status: int) -> None:
        if os.WIFSIGNALED(status):
            self._end(ExitStatus(signal=os.WTERMSIG(status)))
        else:
            self._end(ExitStatus(code=os.waitstatus_to_exitcode(status)))

    def lost(self) -> None:
        # Its template died; PDEATHSIG has SIGKILLed it. Make sure of it, then wait for the
        # cgroup (or the process group) to empty.
        if self._slot is None and self.pid > 0:
            _killpg(self.pid)
        self._end(ExitStatus(signal=signal.SIGKILL), drain_first=True)

    def no_child(self) -> None:
        self._end(ExitStatus(code=None))

    # -- ending ----------------------------------------------------------------------------

    def _end(self, status: ExitStatus, drain_first: bool = False) -> None:
        if self._ending:
            return
        self._ending = True
        slot = self._slot
        if slot is not None:
            self._peak = slot.peak_bytes()
            if slot.take_oom_kills() > 0:
                status = ExitStatus(code=status.code, signal=status.signal, oom_killed=True)
            if not drain_first and self._pool is not None and self._pool.release(slot):
                self._resolve(status)  # the common case: nothing left, no task needed
                return
        elif not drain_first:
            self._resolve(status)  # unsandboxed: the template killed its process group
            return
        self._drain_task = asyncio.get_running_loop().create_task(self._drain(status))

    async def _drain(self, status: ExitStatus) -> None:
        """Kill and wait out leftovers, then free the slot (or retire it if they won't go)."""
        deadline = time.monotonic() + DRAIN_TIMEOUT
        slot = self._slot
        await asyncio.sleep(_POLL)  # a child killed mid-setup may still be joining its cgroup
        while True:
            if slot is not None:
                slot.kill_all()
                if slot.is_empty():
                    assert self._pool is not None
                    if self._pool.release(slot):
                        break
            elif self.pid <= 0 or _gone(self.pid):
                break
            if time.monotonic() > deadline:
                if slot is not None and self._pool is not None:
                    self._pool.retire(slot)
                break
            await asyncio.sleep(_POLL)
        self._resolve(status)

    def _resolve(self, status: ExitStatus) -> None:
        if not self._done.done():
            self._done.set_result(status)


def _killpg(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _gone(pid: int) -> bool:
    """Dead or a zombie (an orphan waits for the host's init to reap it)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state in ("Z", "X")
