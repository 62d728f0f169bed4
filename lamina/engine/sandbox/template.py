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

It must stay single-threaded: a fork copies only the calling thread, and a lock held by another
thread at that moment stays locked forever in the child.

For a sandboxed spawn it calls ``unshare(CLONE_NEWPID)`` before forking, so the child is pid 1 of
a new pid namespace without a second fork, then ``setns`` back to its own pid namespace (a second
``unshare(CLONE_NEWPID)`` would otherwise fail with EINVAL).
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import os
import select
import signal
import socket
import sys
import tempfile
from typing import Any

from lamina.engine.sandbox import child, linux, protocol, rootfs

PRELOAD = (
    "json", "socket", "traceback", "logging", "http.client", "urllib.parse", "urllib.request",
    "base64", "datetime", "decimal", "uuid", "hashlib", "hmac", "re", "typing", "dataclasses",
    "collections", "functools", "io", "time", "threading", "select", "errno", "signal", "struct",
    "random", "tempfile", "contextlib", "email.utils", "zoneinfo", "queue",
)


class Template:
    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.sandboxed: bool = config["sandboxed"]
        self.ctl = socket.socket(fileno=config["ctl_fd"])
        self.ctl.setblocking(True)
        self.live: set[int] = set()
        self.pidns_fd = -1
        self.wake_r = -1
        self.ctx: child.TemplateContext | None = None

    # -- start -----------------------------------------------------------------------------

    def prepare(self) -> None:
        config = self.config
        linux.set_pdeathsig(signal.SIGKILL)
        if os.getppid() != config["parent_pid"]:
            os._exit(0)  # the server died before we could ask to die with it
        linux.set_name("lamina-template")
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, 0)
        os.dup2(null, 1)
        os.close(null)
        for name in config.get("preload", PRELOAD):
            with contextlib.suppress(ImportError):
                importlib.import_module(name)
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
                                   runtimes_dir=runtimes, base_prefix=sys.base_prefix)
            runtime_dir = f"{rootfs.RUNTIME_MOUNT}/{os.path.basename(runtime_dir.rstrip('/'))}"
        self._preimport_entry(runtime_dir, config["entry_module"])
        self.wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.signal(signal.SIGCHLD, _ignore)
        signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        self.ctx = child.TemplateContext(
            sandboxed=self.sandboxed, ctl_fd=self.ctl.fileno(), template_pidfd=pidfd,
            cgroup_joins=cgroup_joins, entry_module=config["entry_module"],
            runtime_path=runtime_dir, stdlib_paths=stdlib,
            platform_modules=[n for n in sys.modules if n == "lamina" or n.startswith("lamina.")])
        gc.collect()
        gc.freeze()

    @staticmethod
    def _preimport_entry(runtime_dir: str, module: str) -> None:
        """Import the bootstrap now so children share it; a broken one fails in the child."""
        sys.path.insert(0, runtime_dir)
        try:
            importlib.import_module(module)
        except Exception as exc:  # noqa: BLE001 - reported, and the child will raise it again
            print(f"lamina-template: cannot pre-import {module}: {exc!r}", file=sys.stderr,
                  flush=True)

    # -- serve -----------------------------------------------------------------------------

    def serve(self) -> None:
        protocol.send(self.ctl, {"op": "ready", "pid": os.getpid()})
        poller = select.poll()
        poller.register(self.ctl, select.POLLIN)
        poller.register(self.wake_r, select.POLLIN)
        while True:
            for fd, _events in poller.poll():
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
            message, fds = protocol.receive(self.ctl)
        except (ConnectionResetError, BrokenPipeError):
            return False
        if message is None:
            return False
        op = message.get("op")
        if op == "spawn":
            self._spawn(message, fds)
        else:
            for fd in fds:
                os.close(fd)
            if op == "kill":
                self._kill(int(message["pid"]))
        return True

    def _spawn(self, message: dict[str, Any], fds: list[int]) -> None:
        spawn_id = message["id"]
        payload_fd, output_fd = fds[0], (fds[1] if len(fds) > 1 else -1)
        assert self.ctx is not None
        pid = -1
        try:
            if self.sandboxed:
                linux.unshare(linux.CLONE_NEWPID)
            pid = os.fork()
            if pid == 0:
                try:
                    child.become_environment(self.ctx, spawn_id, message.get("slot"),
                                             payload_fd, output_fd)
                finally:
                    os._exit(child.SETUP_FAILED)
        except OSError as exc:
            protocol.send(self.ctl, {"op": "failed", "id": spawn_id, "error": f"fork: {exc}"})
        finally:
            if self.sandboxed and pid != 0:
                # Back to our own pid namespace for the next unshare (see module docstring).
                linux.setns(self.pidns_fd, linux.CLONE_NEWPID)
            for fd in fds:
                os.close(fd)
        if pid > 0:
            self.live.add(pid)
            protocol.send(self.ctl, {"op": "spawned", "id": spawn_id, "pid": pid})

    def _kill(self, pid: int) -> None:
        # Only a child not yet reaped: its pid cannot have been reused by another process.
        if pid not in self.live:
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
            self.live.discard(pid)
            if not self.sandboxed:
                # Without a pid namespace, the environment's leftovers share its process group
                # (it called setsid); they end with it, as in a sandbox whose pid 1 exited.
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)
            protocol.send(self.ctl, {"op": "exit", "pid": pid, "status": status})

    def _shutdown(self) -> None:
        """The launcher hung up: take every environment down with us."""
        for pid in list(self.live):
            self._kill(pid)


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
    except BaseException as exc:  # noqa: BLE001 - tell the launcher, then die
        with contextlib.suppress(OSError):
            protocol.send(template.ctl, {"op": "fatal", "error": f"{type(exc).__name__}: {exc}"})
        return 1
    template.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
