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
FILL_PACE = 0.002
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

    def parked(self) -> bool | None:
        """Whether the spare finished its work ahead (its "parked" message, read now);
        ``None`` when its socket broke or closed (its end is reported by the template)."""
        if self.pid:
            return True
        if self.sock is None:
            return None
        try:
            message, fds, sender = protocol.receive(self.sock, credentials=True)
        except (BlockingIOError, InterruptedError):
            return False
        except (OSError, ValueError):
            return None
        for fd in fds:
            os.close(fd)
        if message is None:
            return None
        if message.get("op") != "parked":
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
    """Up to ``target`` spares for one launcher; ``take`` hands out the oldest parked one.
    A spare moves from asked (the template is making it) to waiting (its socket is
    here; the loop watches it for the "parked" message) to parked (ready to hand out)."""

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
        self._asked: dict[int, Spare] = {}
        self._waiting: dict[int, Spare] = {}
        self._parked: collections.deque[Spare] = collections.deque()
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False
        self._loop = asyncio.get_running_loop()

    def __len__(self) -> int:
        return len(self._asked) + len(self._waiting) + len(self._parked)

    def parked(self) -> int:
        """How many spares can be handed out now."""
        return len(self._parked)

    def take(self) -> Spare | None:
        """The oldest parked spare, no longer in the pool (the caller spawns on it or kills
        it), already woken (``Spare.wake``); ``None`` if none is parked."""
        queue = self._parked
        while queue:
            spare = queue.popleft()
            if spare.env.done:
                spare.close()
                continue
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
        delay = max(self._delay, BURST_PAUSE) if missed else self._delay
        self._arm(delay)

    def fill(self) -> None:
        """Ask the template for one more spare if the pool is short, and come back in
        ``FILL_PACE`` for the next: at most ``_IN_FLIGHT`` are being made at a time, and the
        loop, the template and the cores get room between them (a pool of 240 filled at
        once delayed cold starts in the first half second by up to 90 ms, measured)."""
        self._timer = None
        if self._closed or len(self) >= self.target:
            return
        if len(self._asked) < _IN_FLIGHT and not self._ask():
            return
        self._arm(FILL_PACE)

    def close(self) -> None:
        """No more spares; the launcher kills the processes (they are among its own)."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for spare in self._waiting.values():
            if spare.sock is not None:
                self._loop.remove_reader(spare.sock.fileno())
        for spare in [*self._asked.values(), *self._waiting.values(), *self._parked]:
            spare.close()
        self._asked.clear()
        self._waiting.clear()
        self._parked.clear()

    def _arm(self, delay: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop.call_later(delay, self.fill)

    def _ask(self) -> bool:
        """Request one spare of the template; False when there is no template right now."""
        slot = self._acquire_slot()
        env = Environment(self._supervisor, self._cgroups, slot)
        spare = Spare(-1, env, slot)
        spawn_id = self._supervisor.request_spare(slot.name if slot else None, env,
                                                  self._made)
        if spawn_id is None:  # try again later, and later still if it keeps failing
            env.no_child()
            self._delay = min(_MAX_DELAY, self._delay * 2)
            self._arm(self._delay)
            return False
        spare.spawn_id = spawn_id
        env.attach(spawn_id, -1)
        self._asked[spawn_id] = spare
        self._adopt(env)
        env.add_done_callback(lambda spare=spare: self._gone(spare))
        return True

    def _made(self, spawn_id: int, sock: socket.socket) -> None:
        spare = self._asked.pop(spawn_id, None)
        if spare is None or self._closed:
            sock.close()
            return
        spare.sock = sock
        self._waiting[spawn_id] = spare
        self._loop.add_reader(sock.fileno(), self._on_parked, spare)

    def _on_parked(self, spare: Spare) -> None:
        state = spare.parked()
        if state is False and not spare.env.done:
            return  # not yet (or a spurious wake-up): keep watching
        self._waiting.pop(spare.spawn_id, None)
        if spare.sock is not None:
            self._loop.remove_reader(spare.sock.fileno())
        if state:
            self._parked.append(spare)

    def _gone(self, spare: Spare) -> None:
        """A spare's process ended (before any spawn took it over, unless ``taken``)."""
        if spare.taken:
            return
        self._asked.pop(spare.spawn_id, None)
        if self._waiting.pop(spare.spawn_id, None) is not None and spare.sock is not None:
            self._loop.remove_reader(spare.sock.fileno())
        with contextlib.suppress(ValueError):
            self._parked.remove(spare)
        spare.close()
        if not self._closed:
            self._delay = min(_MAX_DELAY, self._delay * 2)
            self.schedule()
