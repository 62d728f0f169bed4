"""The launcher's side of the template: start it, talk to it, notice its death, restart it.

Everything runs on the event loop thread through ``loop.add_reader`` on the control socket (no
threads, uvloop compatible). Each spawn is tracked until the template reported the host pid
*and* the child reported that its setup finished (``child-ready``), so ``spawn`` returns an
environment that is in its cgroup and namespaces, or raises ``SpawnFailed``.

No spawn can hang: it fails at once when the template dies, when the child dies during setup,
or after ``spawn_timeout``. Exits are routed to the *owner* object given at spawn time as soon
as the pid is known, so an exit that arrives before the awaiting coroutine resumes is not lost.
"""

from __future__ import annotations

import array
import asyncio
import collections
import contextlib
import dataclasses
import json
import os
import signal
import socket
import subprocess
import logging
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from lamina.engine.sandbox import protocol
from lamina.engine.sandbox.api import SpawnFailed

_MAX_BACKOFF = 5.0
log = logging.getLogger(__name__)


class Owner(Protocol):
    """Who is told what became of a spawned child: exactly one of the three calls, once."""

    def exited(self, status: int) -> None:
        """The template reaped the child; ``status`` is the raw wait status."""

    def lost(self) -> None:
        """The template died: the child dies too (PDEATHSIG) but nobody will report its exit."""

    def no_child(self) -> None:
        """The fork itself failed: no process was made."""


@dataclasses.dataclass
class _Pending:
    """A spawn from request until the template answered *and* the caller has its outcome."""

    owner: Owner
    future: asyncio.Future[int]
    pid: int | None = None
    answered: bool = False  # the template sent "spawned" or "failed"
    ready: bool = False  # the child sent "child-ready"


class TemplateSupervisor:
    def __init__(self, command: Sequence[str], config: Mapping[str, Any],
                 env: Mapping[str, str], *, start_timeout: float = 20.0,
                 spawn_timeout: float = 10.0) -> None:
        self._command = list(command)
        self._config = dict(config)
        self._env = dict(env)
        self._start_timeout = start_timeout
        self._spawn_timeout = spawn_timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        self._ready: asyncio.Future[None] | None = None
        self._outbox: collections.deque[tuple[bytes, list[int], bool]] = collections.deque()
        self._pending: dict[int, _Pending] = {}
        self._owners: dict[int, Owner] = {}
        self._next_id = 0
        self._state = "stopped"  # stopped, starting, ready, failed, closed
        self._error = ""
        self._restart_task: asyncio.Task[None] | None = None
        self._backoff = 0.05
        self._auto_restart = False
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def state(self) -> str:
        return self._state

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the template and wait until it serves; ``SpawnFailed`` if it cannot."""
        self._loop = asyncio.get_running_loop()
        await self._start_once()
        self._auto_restart = True  # from now on a dead template is replaced

    async def _start_once(self) -> None:
        self._launch()
        assert self._ready is not None
        try:
            await asyncio.wait_for(asyncio.shield(self._ready), self._start_timeout)
        except TimeoutError:
            self._error = f"the template did not start within {self._start_timeout:.0f} s"
            self._kill_template()
            raise SpawnFailed(self._error) from None
        except SpawnFailed:
            raise
        self._state = "ready"
        self._backoff = 0.05

    def _launch(self) -> None:
        assert self._loop is not None
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        config = {**self._config, "ctl_fd": theirs.fileno(), "parent_pid": os.getpid()}
        try:
            self._proc = subprocess.Popen(
                [*self._command, json.dumps(config)], env=self._env, cwd="/",
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=None,
                pass_fds=(theirs.fileno(),), start_new_session=True)
        except OSError as exc:
            ours.close()
            raise SpawnFailed(f"cannot start the template: {exc}") from exc
        finally:
            theirs.close()
        ours.setblocking(False)
        self._sock = ours
        self._state = "starting"
        self._ready = self._loop.create_future()
        self._loop.add_reader(ours.fileno(), self._on_readable)

    async def close(self) -> None:
        """Kill the template (its PDEATHSIG takes the environments) and fail what is pending."""
        self._state = "closed"
        if self._restart_task is not None:
            self._restart_task.cancel()
        proc = self._proc
        self._disconnect("the launcher was closed")
        if proc is not None:
            await _reap(proc)

    # -- requests --------------------------------------------------------------------------

    async def spawn(self, slot: str | None, payload_fd: int, output_fd: int,
                    owner: Owner) -> int:
        """Fork a child; returns its host pid once it is set up. Takes ownership of payload_fd."""
        try:
            await self._wait_ready()
        except BaseException:
            os.close(payload_fd)
            owner.no_child()
            raise
        assert self._loop is not None
        spawn_id = self._next_id = self._next_id + 1
        pending = _Pending(owner, self._loop.create_future())
        self._pending[spawn_id] = pending
        fds = [payload_fd] if output_fd < 0 else [payload_fd, output_fd]
        self._send({"op": "spawn", "id": spawn_id, "slot": slot}, fds, close_first=True)
        try:
            return await asyncio.wait_for(asyncio.shield(pending.future), self._spawn_timeout)
        except TimeoutError:
            self._abandon(spawn_id)
            raise SpawnFailed(f"no answer within {self._spawn_timeout:.0f} s") from None
        except asyncio.CancelledError:
            self._abandon(spawn_id)
            raise

    def kill(self, pid: int) -> None:
        """SIGKILL a child the template has not reaped yet (so the pid is still ours)."""
        if self._state in ("starting", "ready") and pid in self._owners:
            self._send({"op": "kill", "pid": pid})

    async def _wait_ready(self) -> None:
        if self._state == "ready":
            return
        if self._state == "closed":
            raise SpawnFailed("the launcher is closed")
        if self._state in ("failed", "stopped") or self._ready is None:
            raise SpawnFailed(f"the template is not running: {self._error or 'not started'}")
        try:
            await asyncio.wait_for(asyncio.shield(self._ready), self._start_timeout)
        except TimeoutError:
            raise SpawnFailed("the template did not become ready") from None

    def _abandon(self, spawn_id: int) -> None:
        """The caller gave up: the child, if any, must not live on untracked."""
        pending = self._pending.get(spawn_id)
        if pending is None:
            return
        pending.future.cancel()
        if pending.pid is not None:
            self.kill(pending.pid)  # else: killed when its "spawned" comes in
        self._forget_if_settled(spawn_id)

    def _forget_if_settled(self, spawn_id: int) -> None:
        pending = self._pending.get(spawn_id)
        if pending is not None and pending.answered and pending.future.done():
            del self._pending[spawn_id]

    # -- socket ----------------------------------------------------------------------------

    def _send(self, message: dict[str, Any], fds: list[int] | None = None,
              close_first: bool = False) -> None:
        """Queue a message; descriptors flagged ``close_first`` are closed once sent."""
        data = json.dumps(message, separators=(",", ":")).encode()
        self._outbox.append((data, fds or [], close_first))
        self._flush()

    def _flush(self) -> None:
        sock = self._sock
        while self._outbox and sock is not None:
            data, fds, close_first = self._outbox[0]
            try:
                if fds:
                    sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                           array.array("i", fds))])
                else:
                    sock.send(data)
            except BlockingIOError:
                assert self._loop is not None
                self._loop.add_writer(sock.fileno(), self._on_writable)
                return
            except OSError:
                self._on_lost()
                return
            self._outbox.popleft()
            if close_first and fds:
                os.close(fds[0])

    def _on_writable(self) -> None:
        assert self._loop is not None and self._sock is not None
        self._loop.remove_writer(self._sock.fileno())
        self._flush()

    def _on_readable(self) -> None:
        while self._sock is not None:
            try:
                message, fds = protocol.receive(self._sock)
            except BlockingIOError:
                return
            except (OSError, ValueError):
                self._on_lost()
                return
            for fd in fds:
                os.close(fd)
            if message is None:
                self._on_lost()
                return
            self._dispatch(message)

    def _dispatch(self, message: dict[str, Any]) -> None:
        op = message.get("op")
        if op == "ready":
            if self._ready is not None and not self._ready.done():
                self._ready.set_result(None)
        elif op == "fatal":
            self._error = f"the template failed to start: {message.get('error')}"
        elif op == "spawned":
            self._on_spawned(message["id"], message["pid"])
        elif op == "failed":
            self._fail(message["id"], f"the template could not fork: {message.get('error')}",
                       fork_failed=True)
        elif op == "child-ready":
            self._on_child_ready(message["id"])
        elif op == "child-failed":
            self._fail(message["id"], f"environment setup failed: {message.get('error')}")
        elif op == "exit":
            self._on_exit(message["pid"], message["status"])

    def _on_spawned(self, spawn_id: int, pid: int) -> None:
        pending = self._pending.get(spawn_id)
        if pending is None:
            return
        pending.pid = pid
        pending.answered = True
        self._owners[pid] = pending.owner  # from now on its exit reaches the owner
        if pending.future.done():
            self.kill(pid)  # abandoned, or its setup already failed
        else:
            self._maybe_done(pending)
        self._forget_if_settled(spawn_id)

    def _on_child_ready(self, spawn_id: int) -> None:
        pending = self._pending.get(spawn_id)
        if pending is not None:
            pending.ready = True
            self._maybe_done(pending)
            self._forget_if_settled(spawn_id)

    def _maybe_done(self, pending: _Pending) -> None:
        if pending.ready and pending.pid is not None and not pending.future.done():
            pending.future.set_result(pending.pid)

    def _fail(self, spawn_id: int, error: str, *, fork_failed: bool = False) -> None:
        pending = self._pending.get(spawn_id)
        if pending is None:
            return
        if not pending.future.done():
            pending.future.set_exception(SpawnFailed(error))
        if fork_failed:
            pending.answered = True
            pending.owner.no_child()
        self._forget_if_settled(spawn_id)

    def _on_exit(self, pid: int, status: int) -> None:
        for pending in self._pending.values():
            if pending.pid == pid and not pending.future.done():
                pending.future.set_exception(SpawnFailed(
                    f"the environment died during setup ({_describe(status)})"))
        for spawn_id in [i for i, p in self._pending.items() if p.pid == pid]:
            self._forget_if_settled(spawn_id)
        owner = self._owners.pop(pid, None)
        if owner is not None:
            owner.exited(status)

    # -- death and restart -----------------------------------------------------------------

    def _on_lost(self) -> None:
        if self._sock is None:
            return
        error = self._error or "the template died"
        proc = self._proc
        self._disconnect(error)
        if proc is not None:
            self._background(_reap(proc))
        if self._state == "closed":
            return
        self._state = "failed"
        if self._auto_restart and (self._restart_task is None or self._restart_task.done()):
            self._restart_task = self._background(self._restart())

    def _background(self, coro: Any) -> asyncio.Task[None]:
        assert self._loop is not None
        task = self._loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _disconnect(self, error: str) -> None:
        """Forget the current template: fail pending spawns, tell owners their child is lost."""
        if self._sock is not None and self._loop is not None:
            self._loop.remove_reader(self._sock.fileno())
            self._loop.remove_writer(self._sock.fileno())
            self._sock.close()
        self._sock = None
        self._kill_template()
        for data_fds in self._outbox:
            if data_fds[2] and data_fds[1]:
                os.close(data_fds[1][0])
        self._outbox.clear()
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(SpawnFailed(error))
            self._ready.exception()  # retrieved: nobody may be waiting
        pending, self._pending = list(self._pending.values()), {}
        owners, self._owners = self._owners, {}
        for item in pending:
            if not item.future.done():
                item.future.set_exception(SpawnFailed(error))
            if item.pid is None:
                item.owner.lost()
        for owner in owners.values():
            owner.lost()

    def _kill_template(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.send_signal(signal.SIGKILL)

    async def _restart(self) -> None:
        while self._state == "failed":
            try:
                await self._start_once()
                return
            except SpawnFailed as exc:
                self._state = "failed"
                self._error = str(exc)
                log.warning("%s; retrying in %.2f s", exc, self._backoff)
            await asyncio.sleep(self._backoff)
            self._backoff = min(_MAX_BACKOFF, self._backoff * 2)


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"signal {os.WTERMSIG(status)}"
    return f"exit status {os.waitstatus_to_exitcode(status)}"


async def _reap(proc: subprocess.Popen[bytes]) -> None:
    """Collect the template's exit status without blocking the loop."""
    for _ in range(1000):
        if proc.poll() is not None:
            return
        await asyncio.sleep(0.005)
