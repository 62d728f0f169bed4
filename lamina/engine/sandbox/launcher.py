"""The two ``Launcher`` implementations: sandboxed (``NamespaceLauncher``) and not.

Both fork environments from one pre-initialised template process (``template.py``) through a
``TemplateSupervisor``; they differ only in isolation:

* ``NamespaceLauncher``: the template lives in its own mount namespace with the base root
  (``rootfs.py``); each child gets pid/mount/ipc/uts (and, for ``network="none"``, net)
  namespaces, its code read-only at ``/var/task``, a private tmpfs ``/tmp``, a pooled cgroup
  (``cgroups.py``), the uid of that cgroup slot and the seccomp filter (``seccomp.py``). A
  ``network="none"`` environment reaches its Runtime API and lamina's API, and nothing else,
  through a relay (``netrelay.py``) whose outer half runs in this process.
* ``UnsandboxedLauncher`` (``--insecure-no-sandbox``, hosts without namespaces): same fork path,
  no namespaces, mounts, cgroups or uid change. ``/var/task`` cannot exist: the environment runs
  in ``code_dir`` with ``LAMBDA_TASK_ROOT`` as given in its environment.

The spawn payload (environment variables included) goes to the child in a memfd that the
template only passes along (see ``protocol.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import lamina
from lamina.engine.sandbox import cgroups, child, netrelay, protocol, rootfs, seccomp, userns
from lamina.engine.sandbox import snapshot as snapshots
from lamina.engine.sandbox.api import ExecEntry, SandboxSpec, SpawnFailed
from lamina.engine.sandbox.environment import Environment
from lamina.engine.sandbox.spares import SparePool
from lamina.engine.sandbox.supervisor import TemplateSupervisor

_TEMPLATE_MODULE = "lamina.engine.sandbox.template"
_TOP_UP_PAUSE = 0.1  # cgroup slots are made once spawns have paused this long
SPARE_BYTES = 2.5 * 2**20  # a parked, warmed spare's PSS (measured)
SPARES_PER_CORE = 40
SNAPSHOT_SPARES = 2
_CLOSE_TIMEOUT = 10.0


def default_spares() -> int:
    """How many spares (``spares.py``) a launcher keeps by default: ``SPARES_PER_CORE`` for each
    core this process may use, no more than ~2.5% of the host's memory holds at ~2.5 MB each,
    between 2 and 256 (80 on the 2-core reference machine).

    They are what makes a burst of cold starts fast: a spare has been forked, has its cgroup
    slot, namespaces and mounts, and has rehearsed the bootstrap before the burst comes, so the
    burst pays only for each function's own set-up. 200 parallel cold starts took ~1.5 s with
    32 spares, ~1.42 s with 80 and ~1.28 s with 240 here (SPECIFICATION row 6).

    Why not as many as memory allows: each is a process forked from the template, and a host
    that watches its memory by physical address (the reference VM runs DAMON's ``paddr``
    monitor) walks, twice a second and without yielding its CPU, every mapping of each page it
    samples: its pass grew from ~1 ms to ~4 ms with 240 spares, and a warm invoke that waits for
    that CPU waits that long (sequential p99 ~2.1 ms with 240, 0.9-1.3 ms with 80). Per core,
    because the cores both fork what spares do not cover and absorb those stalls.
    """
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    by_cores = SPARES_PER_CORE * len(os.sched_getaffinity(0))
    return max(2, min(256, by_cores, int(memory * 0.025 / SPARE_BYTES)))


def default_interpreter() -> Path:
    """The real interpreter behind this one (a venv's or pyenv's ``python`` is a link or shim).

    ``sys.base_prefix/bin/pythonX.Y`` is the binary itself; exec'ing a pyenv shim costs
    ~137 ms per start (HOST.md).
    """
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    candidate = Path(sys.base_prefix) / "bin" / version
    if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
        return candidate
    return Path(os.path.realpath(sys.executable))


class _ForkLauncher:
    """What both launchers share: the template, spawning, ending, closing."""

    _sandboxed: ClassVar[bool]

    def __init__(self, code_root: Path, runtime_dir: Path,
                 python_entry_module: str = "lamina_bootstrap",
                 interpreter: Path | str | None = None, *, layers_root: Path | None = None,
                 preload: Sequence[str] | None = None, spares: int | None = None,
                 start_timeout: float = 20.0, spawn_timeout: float = 10.0) -> None:
        self.code_root = Path(os.path.abspath(code_root))
        self.runtime_dir = Path(os.path.abspath(runtime_dir))
        self.layers_root = Path(os.path.abspath(layers_root)) if layers_root else None
        self.python_entry_module = python_entry_module
        self.interpreter = Path(interpreter) if interpreter else default_interpreter()
        self._preload = list(preload) if preload is not None else None
        self.spares = default_spares() if spares is None else spares
        # A SnapStart snapshot keeps spares of its own; its image is a whole Init's, so few.
        self.snapshot_spares = min(SNAPSHOT_SPARES, self.spares)
        self._start_timeout = start_timeout
        self._spawn_timeout = spawn_timeout
        self._supervisor: TemplateSupervisor | None = None
        self._spares: SparePool | None = None
        self._envs: set[Environment] = set()
        self._reason: str | None = None
        self._checked = False
        self._closed = False
        # Host id blocks of SnapStart snapshots' user namespaces (userns.py), well clear of
        # the slots' uids (uid_base + slot index).
        self._snapshot_ids = userns.IdBlocks()

    # -- Launcher ----------------------------------------------------------------------------

    def stats(self) -> dict[str, int]:
        pool = self._spares
        return {"spares_parked": pool.parked() if pool is not None else 0,
                "spares_target": self.spares}

    def unavailable_reason(self) -> str | None:
        if not self._checked:
            self._reason = self._check_host()
            self._checked = True
        return self._reason

    async def start(self) -> None:
        if self._supervisor is not None:
            return
        self.code_root.mkdir(parents=True, exist_ok=True)
        self._prepare()
        config: dict[str, Any] = {
            "sandboxed": self._sandboxed,
            "code_root": str(self.code_root),
            "layers_root": str(self.layers_root) if self.layers_root else None,
            "runtime_dir": str(self.runtime_dir),
            "entry_module": self.python_entry_module,
            "cgroup_dirs": self._cgroup_dirs(),
            "spares": 0,  # the template's own spares are for SnapStart snapshots (self._spares)
            "raw_fork": True,
            "early_join": True,
            "ready_image": True,
            "run_policy": child.RUN_POLICY,
        }
        if self._preload is not None:
            config["preload"] = self._preload
        config.update(self._template_extra())
        supervisor = TemplateSupervisor(self._command(), config, _template_env(),
                                        start_timeout=self._start_timeout,
                                        spawn_timeout=self._spawn_timeout)
        try:
            await supervisor.start()
        except BaseException:
            await supervisor.close()
            self._teardown()
            raise
        self._supervisor = supervisor
        self._spares = SparePool(supervisor, self._pool(), self._spare_slot, self._adopt,
                                 self.spares)
        self._spares.fill()
        self._started()

    async def spawn(self, spec: SandboxSpec) -> Environment:
        supervisor = self._supervisor
        if supervisor is None or self._closed:
            raise SpawnFailed("the launcher is not started" if not self._closed
                              else "the launcher is closed")
        payload = self._child_config(spec)  # may raise SpawnFailed: nothing allocated yet
        spares = self._spares
        if spares is not None:
            env = await self._spawn_on_spare(supervisor, spares, spec, payload)
            spares.schedule(missed=env is None)  # no refill while spawns keep coming
            if env is not None:
                return env
        slot = self._acquire_slot(spec)
        if slot is not None:
            payload["uid"] = slot.uid
        return await self._fork_through(supervisor, Environment(supervisor, self._pool(), slot),
                                        slot, payload, spec.output_fd)

    async def _fork_through(self, supervisor: TemplateSupervisor, env: Environment,
                            slot: cgroups.Slot | None, payload: dict[str, Any],
                            output_fd: int) -> Environment:
        """Have ``supervisor`` (the template, or a SnapStart snapshot) fork ``env``'s process
        with ``payload``; the launcher tracks it from then on."""
        try:
            payload_fd = protocol.write_payload(payload)
        except OSError as exc:
            env.no_child()
            raise SpawnFailed(f"cannot write the spawn payload: {exc}") from exc
        self._adopt(env)
        env.attach(*await supervisor.spawn(slot.name if slot else None, payload_fd,
                                           output_fd, env))
        return env

    async def _spawn_on_spare(self, supervisor: TemplateSupervisor, spares: SparePool,
                              spec: SandboxSpec, payload: dict[str, Any]) -> Environment | None:
        """Hand the spawn to a ready spare (``spares.py``); ``None`` when there is none (or
        the ones there were died meanwhile): the caller forks through the template."""
        while (spare := spares.take()) is not None:
            env, slot, sock = spare.env, spare.slot, spare.sock
            assert sock is not None
            try:
                if slot is not None:
                    self._configure_slot(slot, spec)
                    payload["uid"] = slot.uid
                payload_fd = protocol.write_payload(payload)
            except (OSError, SpawnFailed):
                env.kill()
                spare.close()
                continue
            try:
                pid = await supervisor.spawn_on_spare(spare.spawn_id, sock,
                                                      slot.name if slot else None,
                                                      payload_fd, spec.output_fd, env)
            finally:
                spare.close()
            if pid is not None:
                env.attach(spare.spawn_id, pid)
                spares.used()
                return env
        return None

    def _adopt(self, env: Environment) -> None:
        """Track a process this launcher started (``close`` kills it)."""
        self._envs.add(env)
        env.add_done_callback(lambda: self._envs.discard(env))

    async def snapshot(self, spec: SandboxSpec, timeout: float = 10.0) -> snapshots.ForkSnapshot:
        """Run the Init of ``spec`` once in a SnapStart snapshot process and return it, ready
        to fork environments (``snapshot.py``); ``SnapshotFailed`` if the Init fails."""
        return await snapshots.make(self, spec, timeout)

    async def close(self) -> None:
        """Kill the template and every environment; return when none of them is left."""
        if self._closed:
            return
        self._closed = True
        if self._spares is not None:
            self._spares.close()
        envs = list(self._envs)
        if self._supervisor is not None:
            await self._supervisor.close()  # environments are told they are lost
        for env in envs:
            env.kill()
        if envs:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*(e.wait() for e in envs)),
                                       _CLOSE_TIMEOUT)
        self._teardown()

    @property
    def template_pid(self) -> int | None:
        """The template's host pid (for tests and diagnostics)."""
        return self._supervisor.pid if self._supervisor is not None else None

    # -- shared helpers ----------------------------------------------------------------------

    def _command(self) -> list[str]:
        # -S: no site, so no site-packages and no .pth side effects in the template.
        return [str(self.interpreter), "-S", "-m", _TEMPLATE_MODULE]

    def _check_host(self) -> str | None:
        if sys.platform != "linux":
            return f"execution environments need Linux (this is {sys.platform})"
        if not (os.path.isfile(self.interpreter) and os.access(self.interpreter, os.X_OK)):
            return f"the interpreter {self.interpreter} is not an executable file"
        if not os.path.isdir(self.runtime_dir):
            return f"the runtime directory {self.runtime_dir} does not exist"
        return None

    def _run_probe(self, mode: str) -> str | None:
        """Run the template module's probe in a throwaway process with the real interpreter."""
        try:
            result = subprocess.run(
                [*self._command(), "--probe", mode], env=_template_env(), cwd="/",
                capture_output=True, text=True, timeout=30, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"cannot run {self.interpreter}: {exc}"
        if result.returncode != 0:
            lines = (result.stdout.strip() or result.stderr.strip()).splitlines()
            return lines[-1] if lines else f"the probe exited with status {result.returncode}"
        return None

    def _base_config(self, spec: SandboxSpec) -> dict[str, Any]:
        entry = spec.entry
        config: dict[str, Any] = {
            "environ": dict(spec.environ),
            "ephemeral_mb": spec.ephemeral_mb,
            "network": spec.network,
            "uid": None,
            "extensions": list(spec.extensions),
            "extension_environ": dict(spec.extension_environ or {}),
        }
        if isinstance(entry, ExecEntry):
            if not entry.argv:
                raise SpawnFailed("ExecEntry needs a program")
            config.update(mode="exec", argv=list(entry.argv), cwd=entry.cwd)
        else:
            config.update(mode="python", argv=[], cwd="/var/task")
        return config

    # -- isolation hooks ---------------------------------------------------------------------

    def _prepare(self) -> None:
        """Set up host-side isolation before the template starts."""

    def _teardown(self) -> None:
        """Undo ``_prepare`` once no environment is left."""

    def _started(self) -> None:
        """The template serves: background work may begin."""

    def _cgroup_dirs(self) -> list[tuple[str, int]]:
        return []

    def _template_extra(self) -> dict[str, Any]:
        return {}

    def _pool(self) -> cgroups.CgroupPool | None:
        return None

    def _acquire_slot(self, spec: SandboxSpec) -> cgroups.Slot | None:
        return None

    def _spare_slot(self) -> cgroups.Slot | None:
        """A slot for a spare, configured only when a spawn takes the spare."""
        return None

    def _configure_slot(self, slot: cgroups.Slot, spec: SandboxSpec) -> None:
        """Set ``spec``'s limits on ``slot``; ``SpawnFailed`` if the kernel refuses."""

    def _child_config(self, spec: SandboxSpec) -> dict[str, Any]:
        raise NotImplementedError


class NamespaceLauncher(_ForkLauncher):
    """Sandboxed environments: namespaces, a read-only code mount, pooled cgroups, own uid.

    ``code_dir`` (and ``opt_dir``) of a spec must lie under ``code_root`` (or ``layers_root``):
    the template binds those roots into its base root once; a child then binds its own
    subdirectory and detaches the rest.
    """

    _sandboxed = True

    def __init__(self, code_root: Path, runtime_dir: Path,
                 python_entry_module: str = "lamina_bootstrap",
                 interpreter: Path | str | None = None, *, layers_root: Path | None = None,
                 preload: Sequence[str] | None = None, spares: int | None = None,
                 start_timeout: float = 20.0, spawn_timeout: float = 10.0,
                 cgroup_parent: str = "lamina",
                 uid_base: int = 20000, prefill_slots: int = 16, reserve_slots: int = 256,
                 hostname: str = "localhost") -> None:
        """``prefill_slots`` cgroup slots are made before the template starts, then up to
        ``reserve_slots`` in the background: a burst of cold starts finds its slots made
        (~0.1 ms each alone, ~0.6 ms amid a burst's forks, which contend for the same kernel
        locks) and set to the limits last used; ~78 KB of kernel memory each here."""
        super().__init__(code_root, runtime_dir, python_entry_module, interpreter,
                         layers_root=layers_root, preload=preload, spares=spares,
                         start_timeout=start_timeout, spawn_timeout=spawn_timeout)
        self.cgroup_parent = cgroup_parent
        self._inside_paths: dict[Path, str] = {}
        self.uid_base = uid_base
        self.prefill_slots = prefill_slots
        self.reserve_slots = max(reserve_slots, prefill_slots)
        self.hostname = hostname
        self._limits = (128, 1024)  # (memory MB, pids) of the last spawn: new slots get them
        self._last_take = 0.0
        self._cgroups: cgroups.CgroupPool | None = None
        self._topping_up = False
        self._net_root: str | None = None  # per-environment Unix sockets of VPC relays

    def _check_host(self) -> str | None:
        if os.geteuid() != 0:
            return (f"sandboxing needs root (running as uid {os.geteuid()}); "
                    "--insecure-no-sandbox runs functions without isolation")
        reason = super()._check_host()
        if reason:
            return reason
        hierarchies = cgroups.detect_hierarchies()
        missing = cgroups.missing_controllers(hierarchies)
        if missing:
            return (f"no {' or '.join(missing)} cgroup controller (neither a cgroup v1 "
                    "hierarchy nor the cgroup v2 one offers it)")
        for hierarchy in hierarchies:
            if not os.access(hierarchy.path, os.W_OK):
                return f"cannot write to the cgroup hierarchy {hierarchy.path}"
        probe = self._run_probe("sandbox")
        return f"this host cannot sandbox: {probe}" if probe else None

    async def spawn(self, spec: SandboxSpec) -> Environment:
        """As the base class; a ``network="none"`` environment also gets the outer half of
        its relay to lamina's APIs (``netrelay``), closed when the environment ends."""
        if spec.network != "none" or self._net_root is None or self._closed:
            return await super().spawn(spec)
        relay = netrelay.HostRelay(self._net_path(spec), _relay_ports(spec))
        try:
            env = await super().spawn(spec)
        except BaseException:
            relay.close()
            raise
        env.add_done_callback(relay.close)
        return env

    def _net_path(self, spec: SandboxSpec, inside: bool = False) -> str:
        name = "".join(c for c in spec.env_id if c.isalnum() or c in "-_")[:64] + ".sock"
        return f"{rootfs.NET_MOUNT}/{name}" if inside else f"{self._net_root}/{name}"

    def _template_extra(self) -> dict[str, Any]:
        return {"net_root": self._net_root, "hostname": self.hostname}

    def _prepare(self) -> None:
        self._net_root = tempfile.mkdtemp(prefix="lamina-net-")
        os.chmod(self._net_root, 0o711)
        pool = cgroups.CgroupPool(cgroups.detect_hierarchies(), parent=self.cgroup_parent,
                                  uid_base=self.uid_base)
        pool.remove_stale()
        try:
            pool.create()
            pool.prefill(self.prefill_slots, self._limits)
        except OSError as exc:
            pool.destroy()
            raise SpawnFailed(f"cannot create cgroups: {exc}") from exc
        self._cgroups = pool

    def _teardown(self) -> None:
        if self._cgroups is not None:
            self._cgroups.destroy()
            self._cgroups = None
        if self._net_root is not None:
            shutil.rmtree(self._net_root, ignore_errors=True)
            self._net_root = None

    def _started(self) -> None:
        self._start_top_up()

    def _cgroup_dirs(self) -> list[tuple[str, int]]:
        assert self._cgroups is not None
        return [(str(d), h.version) for h, d in self._cgroups.instance_dirs().items()]

    def _pool(self) -> cgroups.CgroupPool | None:
        return self._cgroups

    def _acquire_slot(self, spec: SandboxSpec) -> cgroups.Slot:
        pool = self._cgroups
        assert pool is not None
        self._limits = (spec.memory_mb, spec.pids_max)
        for attempt in (1, 2):
            slot = self._spare_slot()
            try:
                slot.configure(spec.memory_mb, spec.pids_max, reset_peak=False)  # see release
                break
            except OSError as exc:
                # E.g. EBUSY: a lower memory limit than what is still charged to this slot.
                # Retire it (a fresh slot has no charges) and try once more.
                pool.retire(slot)
                if attempt == 2:
                    raise SpawnFailed(f"cannot set cgroup limits: {exc}") from exc
        return slot

    def _spare_slot(self) -> cgroups.Slot:
        """A free slot (made if none is left), set to the limits last used if it has none
        yet: a spare's slot is then usually ready as is when a spawn takes the spare."""
        pool = self._cgroups
        assert pool is not None
        try:
            slot = pool.acquire()
        except OSError as exc:
            raise SpawnFailed(f"cannot make a cgroup: {exc}") from exc
        if not slot.configured:
            with contextlib.suppress(OSError):
                slot.configure(*self._limits, reset_peak=False)
        self._start_top_up()
        return slot

    def _configure_slot(self, slot: cgroups.Slot, spec: SandboxSpec) -> None:
        self._limits = (spec.memory_mb, spec.pids_max)
        try:
            # The pool reset the peak when the slot was last released (cgroups.release): a
            # spare's own set-up since then counts, as an environment's start would.
            slot.configure(spec.memory_mb, spec.pids_max, reset_peak=False)
        except OSError as exc:
            raise SpawnFailed(f"cannot set cgroup limits: {exc}") from exc

    def _start_top_up(self) -> None:
        self._last_take = time.monotonic()
        pool = self._cgroups
        if pool is not None and pool.free_count() < self.reserve_slots // 4 \
                and not self._topping_up and not self._closed:
            self._topping_up = True
            asyncio.get_running_loop().call_later(_TOP_UP_PAUSE, self._top_up)

    def _top_up(self) -> None:
        """Make one slot per loop iteration until the reserve is back, set to the limits the
        last spawn had (so the next ones with the same limits only reset the peak). Not while
        spawns keep coming: a burst would wait for the kernel's cgroup locks behind it."""
        pool = self._cgroups
        if pool is None or self._closed or pool.free_count() >= self.reserve_slots:
            self._topping_up = False
            return
        loop = asyncio.get_running_loop()
        if time.monotonic() - self._last_take < _TOP_UP_PAUSE:
            loop.call_later(_TOP_UP_PAUSE, self._top_up)
            return
        try:
            pool.prefill(pool.free_count() + 1, self._limits)
        except OSError:
            self._topping_up = False
            return
        loop.call_soon(self._top_up)

    def _child_config(self, spec: SandboxSpec) -> dict[str, Any]:
        config = self._base_config(spec)
        config.update(
            bind_code=self._inside(spec.code_dir),
            bind_opt=self._inside(spec.opt_dir) if spec.opt_dir else None,
            task_dir="/var/task", opt_dir="/opt", hostname=self.hostname,
            seccomp=seccomp.supported())
        if spec.network == "none" and self._net_root is not None:
            config.update(net_socket=self._net_path(spec, inside=True),
                          relay_ports=[[tag.decode(), port]
                                       for tag, port in _relay_ports(spec).items()])
        return config

    def _inside(self, path: Path) -> str:
        """Where a host path under the code (or layers) root is in the template's root
        (remembered: ``relpath`` was ~5% of the server's time in a burst of cold starts)."""
        inside = self._inside_paths.get(path)
        if inside is None:
            if len(self._inside_paths) >= 4096:
                self._inside_paths.clear()
            inside = self._inside_paths[path] = self._find_inside(path)
        return inside

    def _find_inside(self, path: Path) -> str:
        absolute = os.path.normpath(os.path.abspath(path))
        for root, mount in ((self.code_root, rootfs.CODE_MOUNT),
                            (self.layers_root, rootfs.LAYERS_MOUNT)):
            if root is None:
                continue
            relative = os.path.relpath(absolute, root)
            if relative == "." or not relative.startswith(".."):
                return mount if relative == "." else f"{mount}/{relative}"
        raise SpawnFailed(f"{path} is outside the code root {self.code_root}")


class UnsandboxedLauncher(_ForkLauncher):
    """No isolation at all: for ``--insecure-no-sandbox`` and hosts without namespaces.

    ``ExecEntry.cwd`` paths under ``/var/task`` (and ``/opt``) are mapped to ``code_dir`` (and
    ``opt_dir``). ``network``, ``memory_mb``, ``pids_max`` and ``ephemeral_mb`` are not enforced.
    """

    _sandboxed = False

    def _child_config(self, spec: SandboxSpec) -> dict[str, Any]:
        config = self._base_config(spec)
        code = str(spec.code_dir)
        opt = str(spec.opt_dir) if spec.opt_dir else None
        cwd = config["cwd"]
        if cwd == "/var/task" or cwd.startswith("/var/task/"):
            cwd = code + cwd[len("/var/task"):]
        elif opt and (cwd == "/opt" or cwd.startswith("/opt/")):
            cwd = opt + cwd[len("/opt"):]
        config.update(cwd=cwd, task_dir=code, opt_dir=opt)
        return config


_LOOPBACK = ("127.0.0.1", "localhost", "0.0.0.0")


def _relay_ports(spec: SandboxSpec) -> dict[bytes, int]:
    """The loopback ports a VPC environment may reach: its Runtime API and lamina's API."""
    ports: dict[bytes, int] = {}
    runtime = spec.environ.get("AWS_LAMBDA_RUNTIME_API", "")
    host, _, port = runtime.rpartition(":")
    if host in _LOOPBACK and port.isdigit():
        ports[netrelay.RUNTIME] = int(port)
    endpoint = urllib.parse.urlsplit(spec.environ.get("AWS_ENDPOINT_URL", ""))
    if endpoint.hostname in _LOOPBACK and endpoint.port:
        ports[netrelay.API] = endpoint.port
    return ports


def _template_env() -> dict[str, str]:
    """A clean environment: the server's own (keys, settings) must not reach the template."""
    package_parent = str(Path(lamina.__file__).resolve().parent.parent)
    return {"PYTHONPATH": package_parent, "PATH": "/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8"}
