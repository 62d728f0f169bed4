"""The launcher's spares: children forked ahead of demand, which a cold start takes over.

A spare is asked of the template (``TemplateSupervisor.request_spare``) with a cgroup slot of
its own. While it waits it does every step of an environment's set-up that does not depend on
the function (``child.prepare_spare``: its slot, namespaces, ``/tmp``, ``/dev/shm``, ``/proc``,
hostname) and rehearses the bootstrap's invoke loop, so that a cold start is left with the
function's own steps only. Its socket comes back to this process, so the spawn request goes
to it directly, without waking the template.

Spares are made again when no spawn has come for ``delay`` seconds, a few at a time, and do
their work ahead at ``SCHED_IDLE`` (only on a CPU nothing else wants): a refill must not take
the cores from environments that are starting or running (2 cores here). A spare says when it
is done ("parked", with its pid attached by the kernel); only parked spares are handed out,
given the environments' scheduling policy first (``child.RUN_POLICY``). A spare that dies
unused (the template restarted, its set-up failed) makes the next refill wait longer, up to
``_MAX_DELAY``, so a broken host does not fork in a loop.

Each spare is represented from its request on by the ``sandbox.environment.Environment`` a
spawn will hand out, which owns its slot and hears of its end like any environment's.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import socket
from collections.abc import Callable

from lamina.engine.sandbox import protocol
from lamina.engine.sandbox.cgroups import CgroupPool, Slot
from lamina.engine.sandbox.child import RUN_POLICY
from lamina.engine.sandbox.environment import Environment
from lamina.engine.sandbox.supervisor import TemplateSupervisor

DELAY = 0.01
BURST_PAUSE = 0.1
_MAX_DELAY = 2.0
_IN_FLIGHT = 4


class Spare:
    """One spare: its spawn id, its process (as the environment it will become), its slot and,
    once the template made it, the socket its request goes to; once it said it is parked
    (done with everything it does ahead), its host pid."""

    __slots__ = ("env", "pid", "slot", "sock", "spawn_id", "taken")

    def __init__(self, spawn_id: int, env: Environment, slot: Slot | None) -> None:
        self.spawn_id = spawn_id
        self.env = env
        self.slot = slot
        self.sock: socket.socket | None = None
        self.pid = 0
        self.taken = False

    def parked(self) -> bool:
        """Whether the spare finished its work ahead (its "parked" message, read now)."""
        if self.pid:
            return True
        if self.sock is None:
            return False
        try:
            message, fds, sender = protocol.receive(self.sock, credentials=True)
        except (BlockingIOError, InterruptedError):
            return False
        except (OSError, ValueError):
            return False  # broken: its end is reported by the template
        for fd in fds:
            os.close(fd)
        if message is None or message.get("op") != "parked":
            return False
        self.pid = sender or -1
        return True

    def wake(self) -> None:
        """Give the spare the environments' scheduling policy (it parked at SCHED_IDLE)."""
        if self.pid > 0:
            with contextlib.suppress(OSError):
                os.sched_setscheduler(self.pid, RUN_POLICY, os.sched_param(0))

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


class SparePool:
    """Up to ``target`` spares for one launcher; ``take`` hands out the oldest ready one."""

    def __init__(self, supervisor: TemplateSupervisor, cgroups: CgroupPool | None,
                 acquire_slot: Callable[[], Slot | None], adopt: Callable[[Environment], None],
                 target: int, delay: float = DELAY) -> None:
        """``acquire_slot``: an unconfigured cgroup slot (or ``None`` unsandboxed); ``adopt``:
        the launcher tracks the spare's process from its request on (``close`` kills it)."""
        self._supervisor = supervisor
        self._cgroups = cgroups
        self._acquire_slot = acquire_slot
        self._adopt = adopt
        self.target = target
        self._base_delay = delay
        self._delay = delay
        self._ready: collections.deque[Spare] = collections.deque()
        self._asked: dict[int, Spare] = {}  # requested, socket not here yet
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False

    def take(self) -> Spare | None:
        """The oldest parked spare, no longer in the pool (the caller spawns on it or kills
        it), already woken (``Spare.wake``); ``None`` if no spare has finished its work ahead.
        """
        for spare in list(self._ready):
            if spare.env.done:
                self._ready.remove(spare)
                spare.close()
            elif spare.parked():
                self._ready.remove(spare)
                spare.taken = True
                spare.wake()
                return spare
        return None

    def used(self) -> None:
        """A spawn went well: spares are worth making at the normal pace again."""
        self._delay = self._base_delay

    def schedule(self, missed: bool = False) -> None:
        """(Re)arm the refill: it runs once no spawn has come for the delay, or for
        ``BURST_PAUSE`` after a spawn that found no spare (``missed``): in a burst, a spare
        made now would cost the same fork as the spawns it competes with, and more besides."""
        if self._closed or self.target <= 0:
            return
        if self._timer is not None:
            self._timer.cancel()
        delay = max(self._delay, BURST_PAUSE) if missed else self._delay
        self._timer = asyncio.get_running_loop().call_later(delay, self.fill)

    def fill(self) -> None:
        """Ask the template for spares until ``target`` are ready or on their way, at most
        ``_IN_FLIGHT`` at a time (each one made asks for the next): a spawn request never
        waits behind more than a few spare forks in the template's queue."""
        self._timer = None
        while not self._closed and len(self._ready) + len(self._asked) < self.target \
                and len(self._asked) < _IN_FLIGHT:
            slot = self._acquire_slot()
            env = Environment(self._supervisor, self._cgroups, slot)
            spare = Spare(-1, env, slot)
            spawn_id = self._supervisor.request_spare(slot.name if slot else None, env,
                                                      self._made)
            if spawn_id is None:  # no template right now: try again later
                env.no_child()
                self._delay = min(_MAX_DELAY, self._delay * 2)
                self.schedule()
                return
            spare.spawn_id = spawn_id
            env.attach(spawn_id, -1)
            self._asked[spawn_id] = spare
            self._adopt(env)
            env.add_done_callback(lambda spare=spare: self._gone(spare))

    def close(self) -> None:
        """No more spares; the launcher kills the processes (they are among its own)."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for spare in [*self._ready, *self._asked.values()]:
            spare.close()
        self._ready.clear()
        self._asked.clear()

    def _made(self, spawn_id: int, sock: socket.socket) -> None:
        spare = self._asked.pop(spawn_id, None)
        if spare is None or self._closed:
            sock.close()
            return
        spare.sock = sock
        self._ready.append(spare)
        if self._timer is None:
            self.fill()

    def _gone(self, spare: Spare) -> None:
        """A spare's process ended (before any spawn took it over, unless ``taken``)."""
        if spare.taken:
            return
        self._asked.pop(spare.spawn_id, None)
        with contextlib.suppress(ValueError):
            self._ready.remove(spare)
        spare.close()
        if not self._closed:
            self._delay = min(_MAX_DELAY, self._delay * 2)
            self.schedule()
