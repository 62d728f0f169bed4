"""The SnapStart snapshot process: one function version's Init, run once, then a fork server of
that version's environments.

The launcher spawns it through the template like any environment, with ``mode: "snapshot"`` in
the spawn payload, so it starts with what every environment gets from
``child.become_environment`` (steps 1-3): its own cgroup slot, mount/ipc/uts namespaces,
``/var/task`` and ``/opt`` read-only, a tmpfs ``/tmp``, pid 1 of its own pid namespace with its
``/proc``, stdio on its output pipe. Two things stay open that an environment closes: the
cgroup directory fds (its environments join their slots through them) and its own control
socket to the server (``snapshot.SnapshotSupervisor`` is the other end).

Then, in this order, each step needing the one before (``S`` is the process the template made,
``G`` the one it forks):

S. 1. tell the launcher it is set up (``child-ready`` on the template's socket: its host pid);
   2. drop to the host uid U of its id block (``userns``) and set no_new_privs: from here on it
      holds no capability over the host, whatever runs in it later;
   3. ``unshare(CLONE_NEWUSER)``: a user namespace of its own, with every capability in it;
   4. ask the server to write the namespace's uid/gid maps (a process cannot map more than its
      own id into its own namespace) and wait for the answer;
   5. ``unshare(CLONE_NEWPID)`` + fork: G is pid 1 of a pid namespace owned by the new user
      namespace. The namespace S is pid 1 of belongs to the host's user namespace, so G could
      not ``setns`` back into it; into its own it can. S stays as G's reaper and exits with it.
G. 6. ``unshare(CLONE_NEWNS)``: a mount namespace owned by the user namespace. Every inherited
      mount becomes locked (read-only binds stay read-only; nothing can be unmounted to uncover
      what lies beneath), while tmpfs and proc mounts of its own are allowed. It mounts
      ``/proc`` for its pid namespace and keeps that namespace's fd, to ``setns`` back after
      each ``unshare(CLONE_NEWPID)`` + fork for an environment (HOST.md's one-fork trick);
   7. installs the snapshot's seccomp filter (``snapshot_seccomp``) and runs the Init: the
      function's environment and ``sys.path``, ``lamina_bootstrap.preload`` (the handler's
      import), the before-snapshot hooks. A failure is sent as ``init-failed`` with AWS's error
      shape, and the process exits;
   8. ``gc.collect(); gc.freeze()``, then serves spawn requests on its control socket as the
      template does (spares included), each child becoming an environment through
      ``restore.become_restored``.

Without a sandbox (``UnsandboxedLauncher``) steps 2-6 are skipped: the process is a plain fork
server whose Init is done.

Messages on the snapshot's socket, besides the template's (see ``protocol``):
    snapshot -> server ``{"op": "map-ids"}`` (the sender's pid comes with ``SO_PASSCRED``);
    ``{"op": "init-failed", "errorType", "errorMessage", "payload"}``;
    ``{"op": "fatal", "error"}`` before dying of a setup failure;
    server -> snapshot ``{"op": "mapped"}``.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import importlib
import json
import os
import signal
import socket
import sys
import traceback
from typing import Any, NoReturn

from lamina.engine.sandbox import child, linux, protocol, restore, snapshot_seccomp, userns

# A snapshot forks its next spare only after this long without requests (the template: 3 ms).
# Its process image is large (an Init's imports), so a fork costs milliseconds of CPU, which
# on a small host would be taken from the environment that has just been forked and is still
# restoring and answering its first invocation.
SPARE_DELAY_MS = 50


def become_snapshot(ctx: child.TemplateContext, spawn_id: int, config: dict[str, Any],
                    extra_fds: list[int]) -> NoReturn:
    """Called by ``child.become_environment`` once the child's sandbox is set up (still as
    host root when sandboxed); never returns."""
    if not extra_fds:
        child._report(ctx.ctl_fd, {"op": "child-failed", "id": spawn_id,
                                   "error": "snapshot: no control socket"})
        os._exit(child.SETUP_FAILED)
    sock = socket.socket(fileno=extra_fds[0])
    sock.setblocking(True)
    child._report(ctx.ctl_fd, {"op": "child-ready", "id": spawn_id})  # 1.
    os.close(ctx.ctl_fd)
    step = "start"
    pidns_fd = -1
    try:
        if ctx.sandboxed:
            step = "namespaces"
            pidns_fd = _leave_host_namespaces(ctx, config, sock)  # in G from here on
            if config.get("seccomp"):
                step = "seccomp"
                snapshot_seccomp.install()
        os.close(ctx.template_pidfd)
        linux.set_name("lamina-snapshot")
    except BaseException as exc:
        _fatal(sock, f"{step}: {exc}")
    _run_init(ctx, config, sock)
    _serve(ctx, config, sock, pidns_fd)


def _leave_host_namespaces(ctx: child.TemplateContext, config: dict[str, Any],
                           sock: socket.socket) -> int:
    """Steps 2-6; returns (in G) the fd of G's pid namespace. S never returns from here."""
    host_id = int(config["snapshot_ids"])
    # 2. Host root no more. setresuid away from 0 clears every capability set.
    child.drop_privileges(host_id, ctx.template_pidfd)
    # 3. Our own user namespace: we are its root, with no power over the host's.
    linux.unshare(userns.CLONE_NEWUSER)
    # 4. Its maps, written by the server (host root) for the pid it sees in the request.
    protocol.send(sock, {"op": "map-ids"})
    answer, fds, _ = protocol.receive(sock)
    for fd in fds:
        os.close(fd)
    if answer is None or answer.get("op") != "mapped" or not userns.is_mapped(host_id):
        raise OSError(f"the user namespace was not mapped: {answer}")
    # 5. A pid namespace owned by the user namespace, and its first process.
    linux.unshare(linux.CLONE_NEWPID)
    parent = os.pidfd_open(os.getpid())
    pid = os.fork()
    if pid != 0:
        _stay_as_reaper(pid)
    linux.set_pdeathsig(signal.SIGKILL)
    if child._readable(parent):
        os._exit(child.SETUP_FAILED)
    os.close(parent)
    # 6. A mount namespace owned by the user namespace, with /proc of our pid namespace.
    linux.unshare(linux.CLONE_NEWNS)
    linux.mount("proc", "/proc", "proc", linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC)
    return os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)


def _stay_as_reaper(pid: int) -> NoReturn:
    """S after the fork: hold nothing (the control socket's end-of-file must reach the server
    when G ends), reap G, exit as it did. G's orphans are G's to reap (it is their pid 1)."""
    try:
        linux.set_name("lamina-snapreap")
        linux.close_range(3)
        while True:
            try:
                waited, status = os.waitpid(-1, 0)
            except ChildProcessError:
                os._exit(0)
            if waited == pid:
                code = os.waitstatus_to_exitcode(status)
                os._exit(code if code >= 0 else 128 - code)
    finally:
        os._exit(child.SETUP_FAILED)


def _run_init(ctx: child.TemplateContext, config: dict[str, Any], sock: socket.socket) -> None:
    """Step 7: the function's Init and the before-snapshot hooks; exits on failure."""
    try:
        child._prepare_python(ctx, config)  # the function's environment and sys.path
        bootstrap = sys.modules.get(ctx.entry_module) \
            or importlib.import_module(ctx.entry_module)
    except BaseException as exc:
        _fatal(sock, f"prepare Init: {exc}")
    error = bootstrap.preload(config["environ"].get("_HANDLER", ""), config["task_dir"])
    if error is not None:
        _init_failed(sock, str(error.get("errorType") or "Runtime.Unknown"),
                     str(error.get("errorMessage") or ""), error)
    hooks = sys.modules.get("snapshot_restore_py")  # ours: the bootstrap imported it first
    try:
        if hooks is not None:
            hooks.run_before_snapshot()
    except Exception as exc:
        traceback.print_exc()
        payload = {"errorMessage": str(exc), "errorType": type(exc).__name__,
                   "stackTrace": traceback.format_list(traceback.extract_tb(exc.__traceback__))}
        _init_failed(sock, "Runtime.BeforeSnapshotError", str(exc), payload)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()


def _serve(ctx: child.TemplateContext, config: dict[str, Any], sock: socket.socket,
           pidns_fd: int) -> NoReturn:
    """Step 8: fork environments from this process image, as the template forks its own."""
    try:
        assert ctx.fork_server is not None  # the template's class, handed down by the template
        server = ctx.fork_server(
            {"sandboxed": ctx.sandboxed, "ctl_fd": sock.detach(),
             "spares": int(config.get("spares", 2)), "spare_delay_ms": SPARE_DELAY_MS},
            become=restore.become_restored)
        server.adopt(child.TemplateContext(
            sandboxed=ctx.sandboxed, ctl_fd=server.ctl.fileno(),
            template_pidfd=os.pidfd_open(os.getpid()), cgroup_joins=ctx.cgroup_joins,
            entry_module=ctx.entry_module, runtime_path=ctx.runtime_path,
            stdlib_paths=ctx.stdlib_paths, platform_modules=ctx.platform_modules,
            template_signals=ctx.template_signals, fork_server=ctx.fork_server,
            keep_environ=True, warm_spare=functools.partial(restore.warm, ctx)), pidns_fd)
        # Everything Init made is shared copy-on-write from now on: keep the collector off it
        # (HOST.md: a child's first collection 10-15 ms -> 0.02 ms, and pages stay shared).
        gc.collect()
        gc.freeze()
        server.serve()
    finally:
        os._exit(0)


def _init_failed(sock: socket.socket, error_type: str, message: str,
                 payload: dict[str, Any]) -> NoReturn:
    body = json.dumps(payload, default=str)
    if len(body) > protocol.MAX_MESSAGE // 2:  # one datagram: keep the message, drop the rest
        body = json.dumps({"errorMessage": message[:8192], "errorType": payload.get("errorType")})
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    with contextlib.suppress(OSError):
        protocol.send(sock, {"op": "init-failed", "errorType": error_type,
                             "errorMessage": message[:8192],
                             "payload": body})
    os._exit(1)


def _fatal(sock: socket.socket, error: str) -> NoReturn:
    with contextlib.suppress(OSError):
        protocol.send(sock, {"op": "fatal", "error": error[:4000]})
    os._exit(child.SETUP_FAILED)
