"""A pool of pre-made cgroups ("slots") that execution environments join, on cgroup v1 or v2.

Making a cgroup costs ~0.45 ms and drives spawn p99 up (HOST.md), so slots are made ahead and
reused: ``<hierarchy>/<parent>/<instance-id>/s<N>``. Each spawn only rewrites the limits that
changed and resets the peak counter. A slot goes back to the pool only once its ``cgroup.procs``
is empty, so an environment's leftovers can never share a cgroup (and its uid) with the next one.

The version is detected per controller: a controller on a v1 hierarchy is used there; otherwise
the v2 (unified) hierarchy is used if it offers it. ``memory`` and ``pids`` are required, ``cpu``
is used when present. Co-mounted v1 controllers (``cpu,cpuacct``) share one directory.

The pool itself runs in the server; children join their slot from inside the template's pivoted
root through directory descriptors of the instance directories (see ``template.py``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import math
import os
import secrets
import signal
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

REQUIRED = ("memory", "pids")
# The instance's cgroup where spares (``spares.py``) do their work ahead, with the lowest CPU
# weight: every slot has an environment's weight, so a hundred spares preparing at once in
# their own slots took a hundred shares from an environment starting beside them (cold
# starts during a refill took 13-100 ms instead of 4, measured). No limits otherwise: no user
# code runs there, and what they write stays charged there (as to the template before).
SPARES = "spares"
OPTIONAL = ("cpu",)
VCPU_MB = 1769  # Lambda gives one full vCPU at 1,769 MB; CPU weight scales with memory.
_UNLIMITED_V1 = "-1"


@dataclasses.dataclass(frozen=True)
class Hierarchy:
    """One mounted cgroup hierarchy and the controllers lamina uses on it."""

    path: Path
    version: int
    controllers: frozenset[str]


def detect_hierarchies(mountinfo: str = "/proc/self/mountinfo") -> list[Hierarchy]:
    """Find where ``memory``, ``pids`` and ``cpu`` live, preferring a v1 hierarchy per controller.

    A controller appears on at most one v1 hierarchy; the v2 hierarchy only offers the ones not
    bound to v1 (its ``cgroup.controllers``). Missing controllers are simply absent.
    """
    wanted = set(REQUIRED + OPTIONAL)
    v1: dict[Path, set[str]] = {}
    v2_path: Path | None = None
    with open(mountinfo) as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            mount_point, fstype, options = Path(fields[4]), fields[sep + 1], fields[sep + 3]
            if fstype == "cgroup":
                found = wanted & set(options.split(","))
                if found and mount_point not in v1 and not any(found & c for c in v1.values()):
                    v1[mount_point] = found
            elif fstype == "cgroup2" and v2_path is None:
                v2_path = mount_point
    result = [Hierarchy(path, 1, frozenset(ctrls)) for path, ctrls in v1.items()]
    taken = set().union(*v1.values()) if v1 else set()
    if v2_path is not None:
        try:
            offered = set((v2_path / "cgroup.controllers").read_text().split())
        except OSError:
            offered = set()
        left = (wanted - taken) & offered
        if left:
            result.append(Hierarchy(v2_path, 2, frozenset(left)))
    return result


def missing_controllers(hierarchies: Iterable[Hierarchy]) -> list[str]:
    have = set().union(*(h.controllers for h in hierarchies))
    return [c for c in REQUIRED if c not in have]


def _write(path: Path | str, value: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def _read(path: str) -> str:
    """A small cgroup file; raw ``os`` calls, as these reads sit on every environment's exit."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.read(fd, 4096).decode()
    finally:
        os.close(fd)


def _read_keyed(path: str, key: str) -> int:
    """Read ``key N`` from a flat-keyed cgroup file (``memory.oom_control``, ``memory.events``)."""
    try:
        for line in _read(path).splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except (OSError, ValueError):
        pass
    return 0


def read_procs(directory: Path) -> list[int]:
    try:
        return [int(p) for p in (directory / "cgroup.procs").read_text().split()]
    except FileNotFoundError:
        return []


def process_start_time(pid: int) -> str | None:
    """Field 22 of ``/proc/<pid>/stat``: with the pid, a unique name for a process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def new_instance_id() -> str:
    """``<pid>-<start time>-<random>``: lets a later server tell whether its owner still runs."""
    return f"{os.getpid()}-{process_start_time(os.getpid())}-{secrets.token_hex(3)}"


def _instance_alive(name: str) -> bool:
    pid, _, rest = name.partition("-")
    start = rest.partition("-")[0]
    if not pid.isdigit():
        return False
    return process_start_time(int(pid)) == start


class Slot:
    """One pre-made cgroup (one directory per hierarchy) with its own unprivileged uid."""

    def __init__(self, index: int, dirs: dict[Hierarchy, Path], uid: int) -> None:
        self.index = index
        self.name = f"s{index}"
        self.uid = uid
        self._dirs = dirs
        self._limits: dict[str, str] = {}  # file name -> last value written, to skip rewrites
        self._oom_kills = 0
        self._peak_fd: int | None = None
        self._memory = next(h for h in dirs if "memory" in h.controllers)
        self._pids = next(h for h in dirs if "pids" in h.controllers)
        self._cpu = next((h for h in dirs if "cpu" in h.controllers), None)
        mem_dir = dirs[self._memory]
        self._has_memsw = self._memory.version == 1 and (
            mem_dir / "memory.memsw.limit_in_bytes").exists()
        self._has_swap_max = self._memory.version == 2 and (mem_dir / "memory.swap.max").exists()
        v1 = self._memory.version == 1
        self._peak_path = str(mem_dir / ("memory.max_usage_in_bytes" if v1 else "memory.peak"))
        self._oom_path = str(mem_dir / ("memory.oom_control" if v1 else "memory.events"))
        self._pids_current = str(dirs[self._pids] / "pids.current")
        self._oom_kills = self.oom_kills()

    @property
    def configured(self) -> bool:
        """Whether limits were ever set on this slot (by ``configure``)."""
        return "memory" in self._limits or "memory.max" in self._limits

    # -- per spawn -------------------------------------------------------------------------

    def configure(self, memory_mb: int, pids_max: int, reset_peak: bool = True) -> None:
        """Set the limits for the next environment and reset the peak counter (unless not
        ``reset_peak``: the launcher's pool resets it when a slot is released, and presets
        the limits of new slots ahead, off the spawn path).

        v1 refuses ``memory.limit_in_bytes`` above ``memory.memsw.limit_in_bytes`` (and memsw
        below memory), so the pair is written in the order that keeps memsw >= memory.
        """
        limit = str(memory_mb * 1024 * 1024)
        mem_dir = self._dirs[self._memory]
        if self._memory.version == 1:
            if self._limits.get("memory") != limit:
                old = int(self._limits.get("memory", str(2**63)))
                if self._has_memsw and int(limit) > old:
                    self._set(mem_dir, "memory.memsw.limit_in_bytes", limit)
                    self._set(mem_dir, "memory.limit_in_bytes", limit)
                else:
                    self._set(mem_dir, "memory.limit_in_bytes", limit)
                    if self._has_memsw:
                        self._set(mem_dir, "memory.memsw.limit_in_bytes", limit)
                self._limits["memory"] = limit
        else:
            self._set(mem_dir, "memory.max", limit)
            if self._has_swap_max:
                self._set(mem_dir, "memory.swap.max", "0")
        if reset_peak:
            self.reset_peak()
        self._set(self._dirs[self._pids], "pids.max", str(pids_max))
        if self._cpu is not None:
            if self._cpu.version == 1:
                shares = max(2, round(1024 * memory_mb / VCPU_MB))
                self._set(self._dirs[self._cpu], "cpu.shares", str(shares))
            else:
                weight = min(10000, max(1, round(100 * memory_mb / VCPU_MB)))
                self._set(self._dirs[self._cpu], "cpu.weight", str(weight))

    def _set(self, directory: Path, name: str, value: str) -> None:
        if self._limits.get(name) != value:
            _write(directory / name, value)
            self._limits[name] = value

    def reset_peak(self) -> None:
        """Start the peak counter (Max Memory Used) again from the current usage."""
        if self._memory.version == 1:
            _write(self._peak_path, "0")
            return
        # memory.peak resets per open file: keep the descriptor we reset through and read it.
        try:
            if self._peak_fd is None:
                self._peak_fd = os.open(self._dirs[self._memory] / "memory.peak",
                                        os.O_RDWR | os.O_CLOEXEC)
            os.write(self._peak_fd, b"reset\n")
        except OSError:
            pass  # kernels before 6.12: the peak counts from the slot's creation

    # -- readings --------------------------------------------------------------------------

    def peak_bytes(self) -> int:
        try:
            if self._peak_fd is not None:
                return int(os.pread(self._peak_fd, 64, 0))
            return int(_read(self._peak_path))
        except (OSError, ValueError):
            return 0

    def oom_kills(self) -> int:
        return _read_keyed(self._oom_path, "oom_kill")

    def take_oom_kills(self) -> int:
        """OOM kills since the last call (the counter is cumulative over the slot's life)."""
        now = self.oom_kills()
        new, self._oom_kills = now - self._oom_kills, now
        return new

    def procs(self) -> set[int]:
        pids: set[int] = set()
        for directory in self._dirs.values():
            pids.update(read_procs(directory))
        return pids

    def is_empty(self) -> bool:
        """No live process left in the slot.

        Every process of an environment is in the pids cgroup (joined before any user code
        ran), so ``pids.current`` of 0 says it in one small read. It also counts zombies, which
        ``cgroup.procs`` leaves out: orphans of a dead template wait for the host's init to
        reap them, and they are dead enough.
        """
        try:
            if _read(self._pids_current).strip() == "0":
                return True
        except FileNotFoundError:
            return True
        return not self.procs()

    def kill_all(self) -> None:
        """SIGKILL every member; members are live, so their pids cannot have been reused."""
        for pid in self.procs():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def delegate(self, uid: int) -> None:
        """Let host ``uid`` move a process into this slot: give it the file a process joins
        through (v1 ``tasks``, v2 ``cgroup.procs``). For a SnapStart snapshot's environments,
        which join as the snapshot's namespace root, not as host root. Such a slot must never
        serve anyone else (``CgroupPool.discard``): the file could have been opened meanwhile.
        """
        for hierarchy, directory in self._dirs.items():
            name = "tasks" if hierarchy.version == 1 else "cgroup.procs"
            os.chown(directory / name, uid, uid)

    def remove(self) -> None:
        if self._peak_fd is not None:
            os.close(self._peak_fd)
            self._peak_fd = None
        for directory in self._dirs.values():
            with contextlib.suppress(FileNotFoundError):
                os.rmdir(directory)


class CgroupPool:
    """The slots of one launcher instance: ``<hierarchy>/<parent>/<instance>/s<N>``.

    ``acquire`` hands out a free slot (making one only when none is left); ``release`` takes it
    back if empty. ``prefill`` makes slots ahead of demand, off the spawn path.
    """

    def __init__(self, hierarchies: list[Hierarchy], *, parent: str = "lamina",
                 instance_id: str | None = None, uid_base: int = 20000) -> None:
        self.hierarchies = hierarchies
        self.parent = parent
        self.instance_id = instance_id or new_instance_id()
        self.uid_base = uid_base
        self._free: list[Slot] = []
        self._all: dict[int, Slot] = {}
        self._next_index = 0

    def instance_dirs(self) -> dict[Hierarchy, Path]:
        return {h: h.path / self.parent / self.instance_id for h in self.hierarchies}

    def create(self) -> None:
        """Make the instance directories (enabling v2 controllers on the way down)."""
        for hierarchy, directory in self.instance_dirs().items():
            if hierarchy.version == 2:
                enable = " ".join("+" + c for c in sorted(hierarchy.controllers))
                _write(hierarchy.path / "cgroup.subtree_control", enable)
                (hierarchy.path / self.parent).mkdir(exist_ok=True)
                _write(hierarchy.path / self.parent / "cgroup.subtree_control", enable)
                directory.mkdir()
                _write(directory / "cgroup.subtree_control", enable)
            else:
                directory.mkdir(parents=True)
            spares = directory / SPARES
            spares.mkdir()
            if "cpu" in hierarchy.controllers:
                if hierarchy.version == 1:
                    _write(spares / "cpu.shares", "2")
                else:
                    _write(spares / "cpu.weight", "1")

    def remove_stale(self) -> list[str]:
        """Remove ``<parent>/<instance>`` trees whose server is gone; kill what is left in them.

        Returns the names of the removed instances.
        """
        removed = []
        names: set[str] = set()
        for hierarchy in self.hierarchies:
            with contextlib.suppress(FileNotFoundError):
                names.update(p.name for p in (hierarchy.path / self.parent).iterdir()
                             if p.is_dir())
        for name in sorted(names):
            if name == self.instance_id or _instance_alive(name):
                continue
            dirs = [h.path / self.parent / name for h in self.hierarchies]
            remove_tree(dirs)
            removed.append(name)
        return removed

    def prefill(self, count: int, limits: tuple[int, int] | None = None) -> None:
        """Make free slots until there are ``count``; ``limits`` (memory MB, pids) are set on
        the new ones ahead, so that a spawn with those limits has nothing left to write."""
        while len(self._free) < count:
            slot = self._make_slot()
            if limits is not None:
                with contextlib.suppress(OSError):
                    slot.configure(*limits, reset_peak=False)
            self._free.append(slot)

    def free_count(self) -> int:
        return len(self._free)

    def acquire(self) -> Slot:
        return self._free.pop() if self._free else self._make_slot()

    def release(self, slot: Slot) -> bool:
        """Return ``slot`` to the pool if nothing runs in it; False means: try again later.

        Its peak counter is reset here, as it leaves an environment, rather than when the
        next one takes it: a cgroup write less on the spawn path (a new slot starts at 0).
        """
        if not slot.is_empty():
            return False
        with contextlib.suppress(OSError):
            slot.reset_peak()
        self._free.append(slot)
        return True

    def retire(self, slot: Slot) -> None:
        """Never hand ``slot`` out again (something in it would not die); removed at destroy."""
        if slot in self._free:
            self._free.remove(slot)

    def discard(self, slot: Slot) -> bool:
        """Remove ``slot`` for good once nothing runs in it (False: try again later). A slot
        delegated to an unprivileged id (``Slot.delegate``) ends this way instead of going
        back to the pool; ``prefill`` makes new ones."""
        if not slot.is_empty():
            return False
        if slot in self._free:
            self._free.remove(slot)
        try:
            slot.remove()
        except OSError:  # something joined meanwhile (EBUSY): the caller drains and retries
            return False
        self._all.pop(slot.index, None)
        return True

    def _make_slot(self) -> Slot:
        index = self._next_index
        self._next_index += 1
        dirs = {}
        for hierarchy, directory in self.instance_dirs().items():
            slot_dir = directory / f"s{index}"
            slot_dir.mkdir()
            dirs[hierarchy] = slot_dir
        slot = Slot(index, dirs, self.uid_base + index)
        self._all[index] = slot
        return slot

    def slots(self) -> Iterator[Slot]:
        return iter(list(self._all.values()))

    def destroy(self, timeout: float = 5.0) -> None:
        """Kill everything in the instance's slots and remove its directories."""
        remove_tree(list(self.instance_dirs().values()), timeout=timeout)
        for slot in self._all.values():
            slot.remove()
        self._all.clear()
        self._free.clear()


def remove_tree(instance_dirs: list[Path], timeout: float = 5.0) -> None:
    """SIGKILL all members of ``<instance>/s*`` cgroups, wait until empty, remove the dirs.

    Killed processes leave a cgroup once reaped; a few ms usually, longer if their parent is
    slow to reap, hence the bounded retry.
    """
    deadline = time.monotonic() + timeout
    slot_dirs = [d for top in instance_dirs if top.is_dir() for d in top.iterdir() if d.is_dir()]
    while True:
        members = [pid for d in slot_dirs + instance_dirs for pid in read_procs(d)]
        for pid in members:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        busy = False
        for directory in slot_dirs + instance_dirs:
            try:
                os.rmdir(directory)
            except FileNotFoundError:
                pass
            except OSError as exc:
                if exc.errno != errno.EBUSY:
                    raise
                busy = True
        if not busy or time.monotonic() > deadline:
            return
        time.sleep(0.005)


def memory_mb(nbytes: int) -> int:
    return math.ceil(nbytes / (1024 * 1024)) if nbytes > 0 else 0
