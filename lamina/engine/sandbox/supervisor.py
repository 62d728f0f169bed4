"""The launcher's side of the template: start it, talk to it, notice its death, restart it.

Everything runs on the event loop thread through ``loop.add_reader`` on the control socket (no
threads, uvloop compatible). A spawn completes when the *child* reports that its setup is done
(``child-ready``); the kernel attaches the child's pid, translated into our pid namespace, to
that message (``SO_PASSCRED``), so the template need not send a message of its own per spawn:
one wake-up of the server instead of two on the hot path.

Children are named by spawn id on the wire (``kill``, ``exit``): the template maps ids to pids
only while it has not reaped them, so a kill can never reach a recycled pid.

No spawn can hang: it fails at once when the template dies, when the child dies during setup,
or after ``spawn_timeout``.
"""

from __future__ import annotations

import array
import asyncio
import collections
import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
from collections.abc import Callable, Mapping, Sequence
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
        """No process was made (the fork failed, or the request never reached a template)."""


# Told that a spare exists: its spawn id and the socket its request goes to (now the callee's).
SpareReady = Callable[[int, socket.socket], None]

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
        self._outbox: collections.deque[tuple[bytes, list[int]]] = collections.deque()
        self._pending: dict[int, asyncio.Future[int]] = {}  # spawn id -> host pid when ready
        self._owners: dict[int, Owner] = {}  # spawn id -> owner, until exit/lost/no_child
        self._next_id = 0
        self._state = "stopped"  # stopped, starting, ready, failed, closed
        self._error = ""
        self._restart_task: asyncio.Task[None] | None = None
        self._backoff = 0.05
        self._auto_restart = False
        self._tasks: set[asyncio.Task[None]] = set()
        # Spares asked for (``request_spare``): spawn id -> (owner, whom to give its socket).
        self._spare_waiters: dict[int, tuple[Owner, SpareReady]] = {}

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
        self._state = "ready"
        self._backoff = 0.05

    def _launch(self) -> None:
        assert self._loop is not None
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
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
        self._connect(ours)

    def _connect(self, sock: socket.socket) -> None:
        """Serve the control socket of a process that is starting (it says ``ready``)."""
        assert self._loop is not None
        sock.setblocking(False)
        self._sock = sock
        self._state = "starting"
        self._error = ""
        self._ready = self._loop.create_future()
        self._loop.add_reader(sock.fileno(), self._on_readable)

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
                    owner: Owner, extra_fds: Sequence[int] = ()) -> tuple[int, int]:
        """Fork a child; returns ``(spawn id, host pid)`` once it is set up.

        Takes ownership of ``payload_fd``. From the call on, ``owner`` hears how the child
        ended, whether or not the spawn succeeds. ``extra_fds`` (the caller keeps them) go to
        the child after the output pipe, which must then be given.
        """
        if extra_fds and output_fd < 0:
            os.close(payload_fd)
            owner.no_child()
            raise SpawnFailed("extra descriptors need an output pipe")
        if self._state != "ready":
            try:
                await self._wait_ready()
            except BaseException:
                os.close(payload_fd)
                owner.no_child()
                raise
        assert self._loop is not None
        spawn_id = self._next_id = self._next_id + 1
        future: asyncio.Future[int] = self._loop.create_future()
        self._pending[spawn_id] = future
        self._owners[spawn_id] = owner
        fds = [payload_fd] if output_fd < 0 else [payload_fd, output_fd, *extra_fds]
        try:
            self._send({"op": "spawn", "id": spawn_id, "slot": slot}, fds)
        finally:
            os.close(payload_fd)  # sent (the kernel holds a reference) or never to be
        timer = self._loop.call_later(self._spawn_timeout, self._time_out, spawn_id)
        try:
            return spawn_id, await future
        except asyncio.CancelledError:
            self._abandon(spawn_id)
            raise
        finally:
            timer.cancel()

    def request_spare(self, slot: str | None, owner: Owner, ready: SpareReady) -> int | None:
        """Ask the template for a spare: a child forked ahead of demand that sets up what
        does not depend on the function (in cgroup ``slot``), warms the entry's code paths,
        then waits for its request on a socket of its own, which the template hands to us
        (``ready(id, socket)``). ``owner`` hears how the child ends, as for ``spawn``.
        ``None``: no template to ask now.
        """
        if self._state != "ready":
            return None
        spawn_id = self._next_id = self._next_id + 1
        self._owners[spawn_id] = owner
        self._spare_waiters[spawn_id] = (owner, ready)
        self._send({"op": "spare", "id": spawn_id, "slot": slot})
        return spawn_id

    async def spawn_on_spare(self, spawn_id: int, sock: socket.socket, slot: str | None,
                             payload_fd: int, output_fd: int, owner: Owner) -> int | None:
        """Hand a spawn request straight to spare ``spawn_id`` (its socket: ``sock``); returns
        its host pid once it is set up, ``None`` if the spare could not take it (it died: its
        previous owner still hears of its end). Takes ownership of ``payload_fd``; from the
        call on, ``owner`` hears how the child ends. Fails as ``spawn`` does otherwise.
        """
        assert self._loop is not None
        previous = self._owners.get(spawn_id)
        if previous is None:
            os.close(payload_fd)
            return None  # already reported gone
        fds = [payload_fd] if output_fd < 0 else [payload_fd, output_fd]
        data = json.dumps({"op": "spawn", "id": spawn_id, "slot": slot},
                          separators=(",", ":")).encode()
        try:
            sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
        except OSError:
            return None
        finally:
            os.close(payload_fd)
        future: asyncio.Future[int] = self._loop.create_future()
        self._pending[spawn_id] = future
        self._owners[spawn_id] = owner
        timer = self._loop.call_later(self._spawn_timeout, self._time_out, spawn_id)
        try:
            return await future
        except asyncio.CancelledError:
            self._abandon(spawn_id)
            raise
        finally:
            timer.cancel()

    def kill(self, spawn_id: int) -> None:
        """SIGKILL a child the template has not reaped yet (so its pid is still its own)."""
        if self._sock is not None and spawn_id in self._owners:
            self._send({"op": "kill", "id": spawn_id})

    async def _wait_ready(self) -> None:
        if self._state == "ready":
            return
        if self._state == "closed":
            raise SpawnFailed("the launcher is closed")
        if self._state != "starting" or self._ready is None:
            raise SpawnFailed(f"the template is not running: {self._error or 'not started'}")
        try:
            await asyncio.wait_for(asyncio.shield(self._ready), self._start_timeout)
        except TimeoutError:
            raise SpawnFailed("the template did not become ready") from None

    def _time_out(self, spawn_id: int) -> None:
        future = self._pending.get(spawn_id)
        if future is not None and not future.done():
            future.set_exception(SpawnFailed(f"no answer within {self._spawn_timeout:.0f} s"))
        self._abandon(spawn_id)

    def _abandon(self, spawn_id: int) -> None:
        """The caller gave up: the child, if any, must not live on untracked."""
        future = self._pending.pop(spawn_id, None)
        if future is not None:
            future.cancel()
        self.kill(spawn_id)  # the template handles it after the spawn: no race

    # -- socket ----------------------------------------------------------------------------

    def _send(self, message: dict[str, Any], fds: list[int] | None = None) -> None:
        """Send now or queue (descriptors are dup'ed while queued; the caller keeps its own)."""
        data = json.dumps(message, separators=(",", ":")).encode()
        if not self._outbox and self._try_send(data, fds or []):
            return
        self._outbox.append((data, [os.dup(fd) for fd in fds or []]))
        self._flush()

    def _try_send(self, data: bytes, fds: list[int]) -> bool:
        sock = self._sock
        if sock is None:
            return True  # nobody to send to: the caller learns it through _disconnect
        try:
            if fds:
                sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                       array.array("i", fds))])
            else:
                sock.send(data)
        except BlockingIOError:
            return False
        except OSError:
            self._on_lost()
        return True

    def _flush(self) -> None:
        while self._outbox and self._sock is not None:
            entry = self._outbox[0]
            if not self._try_send(*entry):
                assert self._loop is not None
                self._loop.add_writer(self._sock.fileno(), self._on_writable)
                return
            if self._outbox and self._outbox[0] is entry:  # else _disconnect closed them
                self._outbox.popleft()
                for fd in entry[1]:
                    os.close(fd)

    def _on_writable(self) -> None:
        assert self._loop is not None and self._sock is not None
        self._loop.remove_writer(self._sock.fileno())
        self._flush()

    def _on_readable(self) -> None:
        while self._sock is not None:
            try:
                message, fds, sender = protocol.receive(self._sock, credentials=True)
            except BlockingIOError:
                return
            except (OSError, ValueError):
                self._on_lost()
                return
            if message is not None and message.get("op") == "spare" and fds:
                self._spare_made(message["id"], fds.pop(0))
            for fd in fds:
                os.close(fd)
            if message is None:
                self._on_lost()
                return
            if message.get("op") != "spare":
                self._dispatch(message, sender)

    def _spare_made(self, spawn_id: int, fd: int) -> None:
        waiter = self._spare_waiters.pop(spawn_id, None)
        sock = socket.socket(fileno=fd)
        if waiter is None or self._owners.get(spawn_id) is not waiter[0]:
            sock.close()  # it died before its socket came
            return
        sock.setblocking(False)
        waiter[1](spawn_id, sock)

    def _dispatch(self, message: dict[str, Any], sender: int) -> None:
        op = message.get("op")
        if op == "child-ready":
            future = self._pending.pop(message["id"], None)
            if future is not None and not future.done():
                future.set_result(sender)
            elif message["id"] in self._owners:
                self.kill(message["id"])  # abandoned while it was starting
        elif op == "exit":
            self._on_exit(message["id"], message["status"])
        elif op == "child-failed":
            self._fail(message["id"], f"environment setup failed: {message.get('error')}")
        elif op == "failed":
            self._spare_waiters.pop(message["id"], None)
            self._fail(message["id"], f"the template could not fork: {message.get('error')}")
            owner = self._owners.pop(message["id"], None)
            if owner is not None:
                owner.no_child()
        elif op == "ready":
            if self._ready is not None and not self._ready.done():
                self._ready.set_result(None)
        elif op == "warning":
            log.warning("sandbox template: %s", message.get("message"))
        elif op == "fatal":
            self._error = f"the template failed to start: {message.get('error')}"

    def _fail(self, spawn_id: int, error: str) -> None:
        future = self._pending.pop(spawn_id, None)
        if future is not None and not future.done():
            future.set_exception(SpawnFailed(error))

    def _on_exit(self, spawn_id: int, status: int) -> None:
        self._spare_waiters.pop(spawn_id, None)
        self._fail(spawn_id, f"the environment died during setup ({_describe(status)})")
        owner = self._owners.pop(spawn_id, None)
        if owner is not None:
            owner.exited(status)

    # -- death and restart -----------------------------------------------------------------

    def _on_lost(self) -> None:
        if self._sock is None:
            return
        proc = self._proc
        self._disconnect(self._error or "the template died")
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
        for _data, fds in self._outbox:
            for fd in fds:
                os.close(fd)
        self._outbox.clear()
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(SpawnFailed(error))
            self._ready.exception()  # retrieved: nobody may be waiting
        pending, self._pending = self._pending, {}
        owners, self._owners = self._owners, {}
        self._spare_waiters.clear()
        for future in pending.values():
            if not future.done():
                future.set_exception(SpawnFailed(error))
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
