"""The template: a pre-initialised, single-threaded process that forks execution environments.

Started once per launcher as ``python -S -m lamina.engine.sandbox.template CONFIG`` with the real
interpreter (never a pyenv shim: ~137 ms per start). At start it

1. asks for SIGKILL when the server dies and exits if the server is already gone;
2. imports the common stdlib modules and (after the pivot, from ``/var/runtime``) the Python
   bootstrap, so a forked child starts with them loaded and shared copy-on-write;
3. opens directory fds of its cgroup instance directories and its own pid namespace, which stay
   usable after the pivot hides ``/sys`` and ``/proc``;
4. (sandboxed) builds the base root in its own mount namespace and pivots into it (``rootfs``);
5. ``gc.collect(); gc.freeze()``: the heap is then never touched by a child's collections, which
   keeps pages shared (idle PSS ~1.6 MB instead of ~6 MB, HOST.md) and the first collection cheap;
6. serves the control socket (``protocol``) and a SIGCHLD wakeup pipe in one ``poll`` loop.

Spares: when idle for ``SPARE_DELAY_MS``, it forks up to ``spares`` children ahead of demand;
they run ``child.after_fork`` and park on a socket of their own. A spawn request is handed to a
spare (one ``sendmsg``) instead of forking on the request's path: the fork, the child's
spawn-independent setup and most of its copy-on-write faults are then already done (median
spawn latency ~4 -> ~3 ms here). Without a spare (a burst), it forks for the request at once.

It must stay single-threaded: a fork copies only the calling thread, and a lock held by another
thread at that moment stays locked forever in the child.

For a sandboxed spawn it calls ``unshare(CLONE_NEWPID)`` before forking, so the child is pid 1 of
a new pid namespace without a second fork, then ``setns`` back to its own pid namespace (a second
``unshare(CLONE_NEWPID)`` would otherwise fail with EINVAL).
"""

from __future__ import annotations

import contextlib
import functools
import gc
import importlib
import json
import os
import select
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import Callable
from typing import Any, NoReturn

from lamina.engine.sandbox import cgroups, child, linux, protocol, rootfs

SPARE_DELAY_MS = 3
PRELOAD = (
    "json", "socket", "traceback", "logging", "http.client", "urllib.parse", "urllib.request",
    "base64", "datetime", "decimal", "uuid", "hashlib", "hmac", "re", "typing", "dataclasses",
    "collections", "functools", "io", "time", "threading", "select", "errno", "signal", "struct",
    "random", "tempfile", "contextlib", "email.utils", "zoneinfo", "queue",
    "encodings.idna",  # any getaddrinfo() of a host name imports it: keep it off cold starts
)


def rehearse_imports(rounds: int = 16) -> None:
    """Import throwaway modules from a fresh directory ``rounds`` times, then forget them.

    Every environment imports its handler from source through importlib's path machinery.
    CPython 3.11 specialises bytecode in place once a code path has run a few times; when that
    happens in each environment, the pages of importlib's code objects are written, so copied,
    in every one of them (a spare's rehearsal, ``lamina_bootstrap.rehearse``, did exactly that
    at a cost of ~0.15 MB each). Run here, before the heap is frozen, the specialised code is
    shared. Done before the template's root becomes read-only: it needs a writable directory.
    """
    directory = tempfile.mkdtemp(prefix="lamina-import-rehearsal-")
    try:
        sys.path.insert(0, directory)
        for index in range(rounds):
            name = f"_lamina_import_rehearsal_{index}"
            with open(os.path.join(directory, name + ".py"), "w") as f:
                f.write("def handler(event, context):\n    return event\n")
            importlib.import_module(name)
            sys.modules.pop(name, None)
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(directory)
        sys.path_importer_cache.pop(directory, None)
        shutil.rmtree(directory, ignore_errors=True)


class Template:
    def __init__(self, config: dict[str, Any], become: child.Become | None = None) -> None:
        """``become``: what a child turns into once it has its request (an environment
        through ``child.become_environment`` by default; a SnapStart snapshot passes its own)."""
        self.config = config
        self.become: child.Become = become or child.become_from_request
        self.sandboxed: bool = config["sandboxed"]
        self.ctl = socket.socket(fileno=config["ctl_fd"])
        self.ctl.setblocking(True)
        self.live: dict[int, int] = {}  # spawn id -> pid, until reaped
        self.ids: dict[int, int] = {}  # pid -> spawn id
        self.pidns_fd = -1
        self.wake_r = -1
        self.ctx: child.TemplateContext | None = None
        self.spares: list[tuple[int, socket.socket]] = []
        self.spare_target: int = config.get("spares", 2)
        self.spare_delay_ms: int = config.get("spare_delay_ms", SPARE_DELAY_MS)
        # The template's own image holds no user code, so no at-fork hook but the standard
        # library's: it may fork without them (``linux.raw_fork``). A SnapStart snapshot ran a
        # function's Init, whose libraries may need theirs: ``os.fork``.
        self.fork: Callable[[], int] = linux.raw_fork if config.get("raw_fork") else os.fork
        self.early_join: bool = bool(config.get("early_join"))  # see ``_fork``

    # -- start -----------------------------------------------------------------------------

    def prepare(self) -> None:
        config = self.config
        linux.set_pdeathsig(signal.SIGKILL)
        if os.getppid() != config["parent_pid"]:
            os._exit(0)  # the server died before we could ask to die with it
        linux.set_name("lamina-template")
        if config.get("run_policy") is not None:  # children inherit it (child.RUN_POLICY)
            with contextlib.suppress(OSError):
                os.sched_setscheduler(0, config["run_policy"], os.sched_param(0))
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, 0)
        os.dup2(null, 1)
        os.close(null)
        for name in config.get("preload", PRELOAD):
            with contextlib.suppress(ImportError):
                importlib.import_module(name)
        with contextlib.suppress(OSError):
            rehearse_imports()
        stdlib = [p for p in sys.path if p.startswith(sys.base_prefix + "/")]
        cgroup_joins = [(os.open(d, os.O_RDONLY | os.O_DIRECTORY), "tasks" if v == 1
                         else "cgroup.procs") for d, v in config["cgroup_dirs"]]
        pidfd = os.pidfd_open(os.getpid())
        runtime_dir = config["runtime_dir"]
        if self.sandboxed:
            self.pidns_fd = os.open("/proc/self/ns/pid", os.O_RDONLY)
            runtimes = os.path.dirname(runtime_dir.rstrip("/"))
            rootfs.build_and_pivot(code_root=config["code_root"],
                                   layers_root=config.get("layers_root"),
                                   runtimes_dir=runtimes, base_prefix=sys.base_prefix,
                                   net_root=config.get("net_root"))
            runtime_dir = f"{rootfs.RUNTIME_MOUNT}/{os.path.basename(runtime_dir.rstrip('/'))}"
        rehearse = self._preimport_entry(runtime_dir, config["entry_module"])
        self._watch_children()
        self.ctx = child.TemplateContext(
            sandboxed=self.sandboxed, ctl_fd=self.ctl.fileno(), template_pidfd=pidfd,
            cgroup_joins=cgroup_joins, entry_module=config["entry_module"],
            runtime_path=runtime_dir, stdlib_paths=stdlib,
            platform_modules=[n for n in sys.modules if n == "lamina" or n.startswith("lamina.")],
            fork_server=type(self), warm_spare=rehearse,
            hostname=config.get("hostname") or "localhost")
        if config.get("ready_image"):
            child.ready_image(self.ctx)
        gc.collect()
        gc.freeze()

    def adopt(self, ctx: child.TemplateContext, pidns_fd: int) -> None:
        """Serve from a process image prepared elsewhere instead of ``prepare``: a SnapStart
        snapshot (``snapshot_process``) after its Init, in its own pid namespace."""
        self.ctx = ctx
        self.pidns_fd = pidns_fd
        self._watch_children()

    def _watch_children(self) -> None:
        self.wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.signal(signal.SIGCHLD, _ignore)
        signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)

    def _preimport_entry(self, runtime_dir: str, module: str) -> Callable[[], None] | None:
        """Import the bootstrap now so children share it; a broken one fails in the child.

        A bootstrap may offer ``prepare_template()`` (work every child would do first, done
        once here: see ``lamina_bootstrap``) and ``rehearse()`` (what a spare runs while it
        waits); returns the latter.
        """
        sys.path.insert(0, runtime_dir)
        try:
            entry = importlib.import_module(module)
            prepare = getattr(entry, "prepare_template", None)
            if prepare is not None:
                prepare()
        except Exception as exc:  # the server logs it; each child will raise it again
            protocol.send(self.ctl, {"op": "warning",
                                     "message": f"cannot pre-import {module}: {exc!r}"})
            return None
        rehearse = getattr(entry, "rehearse", None)
        if rehearse is None:
            return None
        # A spare rehearses the invoke loop, not a handler import: imports were rehearsed
        # here (``rehearse_imports``), and one more in each spare made its cold start ~1 ms
        # faster but its environment ~0.1 MB larger (scattered pages the real import does
        # not write), which the 3 MB an idle environment may take could not afford.
        return functools.partial(rehearse, imports=False)

    # -- serve -----------------------------------------------------------------------------

    def serve(self) -> None:
        protocol.send(self.ctl, {"op": "ready", "pid": os.getpid()})
        poller = select.poll()
        poller.register(self.ctl, select.POLLIN)
        poller.register(self.wake_r, select.POLLIN)
        while True:
            # Spares are made only after SPARE_DELAY_MS without requests, so that a fork does
            # not compete for the CPU with the environment that just started.
            short = len(self.spares) < self.spare_target
            events = poller.poll(self.spare_delay_ms if short else None)
            if not events:
                self._make_spare()
                self._warm()
            for fd, _events in events:
                if fd == self.wake_r:
                    with contextlib.suppress(BlockingIOError):
                        while os.read(self.wake_r, 512):
                            pass
                    self._reap()
                elif not self._handle_control():
                    self._shutdown()
                    return

    def _handle_control(self) -> bool:
        try:
            message, fds, _ = protocol.receive(self.ctl)
        except (ConnectionResetError, BrokenPipeError):
            return False
        if message is None:
            return False
        op = message.get("op")
        if op == "spawn":
            self._spawn(message, fds)
        elif op == "spare":
            for fd in fds:
                os.close(fd)
            self._spare_for_server(message)
        else:
            for fd in fds:
                os.close(fd)
            if op == "kill":
                self._kill(message["id"])
        return True

    def _spawn(self, message: dict[str, Any], fds: list[int]) -> None:
        """Hand the request to a spare if there is one, else fork a child for it now."""
        spawn_id = message["id"]
        try:
            pid = self._hand_to_spare(message, fds)
            if pid is None:
                pid = self._fork(lambda: self.become(self._context(), message, fds),
                                 message.get("slot"))
        except OSError as exc:
            protocol.send(self.ctl, {"op": "failed", "id": spawn_id, "error": f"fork: {exc}"})
            return
        finally:
            for fd in fds:
                os.close(fd)
        self.live[spawn_id] = pid  # no message: the child reports when it is set up
        self.ids[pid] = spawn_id

    def _hand_to_spare(self, message: dict[str, Any], fds: list[int]) -> int | None:
        while self.spares:
            pid, sock = self.spares.pop()
            try:
                protocol.send(sock, message, fds)
                return pid
            except OSError:
                continue  # it died meanwhile; its exit is reaped as a spare's
            finally:
                sock.close()
        return None

    def _fork(self, then: Callable[[], NoReturn], slot: str | None = None,
              idle: bool = False) -> int:
        """Fork a child that runs ``child.after_fork`` and then ``then``; return its pid.

        Sandboxed, the child is pid 1 of a new pid namespace: ``unshare(CLONE_NEWPID)`` makes
        our next child the first process of a new namespace; ``setns`` puts us back.

        With ``early_join`` (the base template), a child that knows its cgroup ``slot`` joins
        it before anything else (``child.enter_slot``): until then it competes for the CPU in
        the server's own cgroup, as an equal of the server, and a burst of cold starts is
        dozens of such children at once, each with ~1 ms of ``after_fork`` to do.

        ``idle``: a spare, which does all its work ahead at ``SCHED_IDLE`` (only on a CPU
        nothing else wants: see ``child.wait_as_spare``).
        """
        pid = -1
        try:
            if self.sandboxed:
                linux.unshare(linux.CLONE_NEWPID)
            pid = self.fork()
            if pid == 0:
                try:
                    if idle:
                        child.idle_priority()
                    if slot is not None and self.early_join:
                        child.enter_slot(self._context(), slot)
                    child.after_fork(self._context())
                    then()
                finally:
                    os._exit(child.SETUP_FAILED)
        finally:
            if self.sandboxed and pid != 0:
                linux.setns(self.pidns_fd, linux.CLONE_NEWPID)
        return pid

    def _make_spare(self) -> None:
        """Fork a child ahead of demand; it waits on its own socket for a spawn request.

        A spawn handed to a spare skips the fork (~0.5-1.4 ms here) and the child's first
        page faults (~1 ms): measured median spawn latency went from ~4 to ~2.5 ms.
        """
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        others = [s for _, s in self.spares]

        def park() -> NoReturn:
            # Hold no template end of any spare socket: EOF must reach a spare when the
            # template closes its end.
            for sock in [ours, *others]:
                os.close(sock.detach())
            child.wait_as_spare(self._context(), theirs.detach(), self.become)

        try:
            pid = self._fork(park)
        except OSError:
            ours.close()
            return
        finally:
            theirs.close()
        self.spares.append((pid, ours))

    def _spare_for_server(self, message: dict[str, Any]) -> None:
        """Fork a spare the launcher asked for and give the launcher its socket.

        The launcher then sends the spawn request straight to the spare: no hop through
        this process on a cold start. The spare runs ``child.prepare_spare`` (its cgroup slot,
        namespaces, private mounts) and warms the entry while it waits. It is tracked by the
        spawn id the launcher chose, so ``kill`` and ``exit`` work as for any child; the
        template keeps no end of its socket (the launcher's closing it ends the spare).
        """
        spawn_id, slot = message["id"], message.get("slot")
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)

        def park() -> NoReturn:
            os.close(ours.detach())
            child.wait_as_spare(self._context(), theirs.detach(), self.become,
                                prepare_slot=slot, prepare=True)

        # The launcher learns the spare's host pid from its "parked" message (``spares.py``).
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        try:
            pid = self._fork(park, cgroups.SPARES if slot is not None else None, idle=True)
        except OSError as exc:
            protocol.send(self.ctl, {"op": "failed", "id": spawn_id, "error": f"fork: {exc}"})
            return
        finally:
            theirs.close()
        try:
            self.live[spawn_id] = pid
            self.ids[pid] = spawn_id
            protocol.send(self.ctl, {"op": "spare", "id": spawn_id}, [ours.fileno()])
        finally:
            ours.close()

    def _warm(self) -> None:
        """Run the spawn path once on a dummy request, right after a fork.

        The fork made every page shared with the new spare; the first write to each page the
        next request touches would copy it then, on the spawn's path (~0.3 ms measured).
        """
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            read_fd, write_fd = os.pipe()
            protocol.send(theirs, {"op": "spawn", "id": -1, "slot": "s0"}, [read_fd, write_fd])
            os.close(read_fd)
            os.close(write_fd)
            message, fds, _ = protocol.receive(ours)
            assert message is not None
            protocol.send(theirs, message, fds)
            for fd in fds:
                os.close(fd)
            for fd in protocol.receive(ours)[1]:
                os.close(fd)
            self.live[-1] = 0
            self.ids[0] = -1
            del self.live[-1], self.ids[0]
        finally:
            ours.close()
            theirs.close()

    def _context(self) -> child.TemplateContext:
        assert self.ctx is not None
        return self.ctx

    def _kill(self, spawn_id: int) -> None:
        # Only a child not yet reaped: its pid cannot have been reused by another process.
        pid = self.live.get(spawn_id)
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        if not self.sandboxed:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            spawn_id = self.ids.pop(pid, None)
            if spawn_id is None:
                self._forget_spare(pid)
                continue
            del self.live[spawn_id]
            if not self.sandboxed:
                # Without a pid namespace, the environment's leftovers share its process group
                # (it called setsid); they end with it, as in a sandbox whose pid 1 exited.
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)
            protocol.send(self.ctl, {"op": "exit", "id": spawn_id, "status": status})

    def _forget_spare(self, pid: int) -> None:
        for spare in self.spares:
            if spare[0] == pid:
                self.spares.remove(spare)
                spare[1].close()
                return

    def _shutdown(self) -> None:
        """The launcher hung up: take every environment and spare down with us."""
        for spawn_id in list(self.live):
            self._kill(spawn_id)
        for pid, sock in self.spares:
            sock.close()
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _ignore(signum: int, frame: object) -> None:
    """SIGCHLD needs a handler (not SIG_IGN) for the wakeup fd to fire and for waitpid."""


def probe(sandboxed: bool) -> str | None:
    """Try what a sandboxed template needs, in this throwaway process; ``None`` when all works."""
    if not sandboxed:
        return None
    try:
        linux.unshare(linux.CLONE_NEWNS | linux.CLONE_NEWPID | linux.CLONE_NEWIPC
                      | linux.CLONE_NEWUTS | linux.CLONE_NEWNET)
    except OSError as exc:
        return f"cannot create namespaces ({exc})"
    try:
        linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)
        staging = tempfile.mkdtemp(prefix="lamina-probe-")
        try:
            linux.mount("tmpfs", staging, "tmpfs", 0, "size=16k")
            linux.umount2(staging, linux.MNT_DETACH)
        finally:
            os.rmdir(staging)
    except OSError as exc:
        return f"cannot mount ({exc})"
    pid = os.fork()
    if pid == 0:
        os._exit(0 if os.getpid() == 1 else 1)
    if os.waitpid(pid, 0)[1] != 0:
        return "a child is not pid 1 of a new pid namespace"
    return None


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] == "--probe":
        reason = probe(sandboxed=len(args) > 1 and args[1] == "sandbox")
        print(reason or "ok", flush=True)
        return 1 if reason else 0
    template = Template(json.loads(args[0]))
    try:
        template.prepare()
    except BaseException as exc:  # tell the launcher, then die
        with contextlib.suppress(OSError):
            protocol.send(template.ctl, {"op": "fatal", "error": f"{type(exc).__name__}: {exc}"})
        return 1
    template.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
