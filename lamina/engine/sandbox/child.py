"""What a forked child does, in the template's process image, before user code runs.

A child first runs ``after_fork`` (what does not depend on the request: signals, death signal,
random state, stdio objects); a spare then parks in ``wait_as_spare`` until the template hands
it a request, a child forked for a request goes on at once. ``become_environment`` does the
rest and never returns: it ends in the entry (the Python bootstrap's ``main()``, or
``execve``) or exits. Nothing is exec'd for a Python entry, so everything the template had is
inherited and has to be dealt with here: signal handlers, open descriptors, random state,
``sys.path``, the environment.

The order of the steps is the point of this module (each step notes why it sits where it is).
A failure before the entry is reported to the launcher as ``child-failed`` (the spawn then raises
``SpawnFailed``); a failure of the entry itself (a missing executable) is an exit status, as the
function's own fault.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import gc
import importlib
import json
import os
import random
import resource
import select
import signal
import socket
import sys
import traceback
from collections.abc import Callable
from typing import Any, NoReturn

from lamina.engine.sandbox import linux, netrelay, protocol, rootfs, seccomp, snapshot_process

SETUP_FAILED = 125  # exit code of a child whose setup failed (the launcher reports SpawnFailed)
NOFILE_LIMIT = 1024  # Lambda's open-files limit
DEFAULT_EPHEMERAL_MB = 512  # the /tmp a spare mounts ahead (Lambda's default EphemeralStorage)
SPARE_NAME = "lamina-spare"  # a parked spare's process name
# The template and every environment run as SCHED_BATCH: a process they wake (the server's
# reply, a spawn request) does not preempt the server on its CPU. CFS gives a woken sleeper
# precedence; in a burst of cold starts that let each woken child interrupt the server, the
# one process every cold start waits for.
RUN_POLICY = os.SCHED_BATCH
ENTRY_NAME = os.path.basename(sys.executable)[:15] or "python"  # a Python environment's, as exec'd
_name_entry = linux.name_setter(ENTRY_NAME)
_keep_alive: list[Any] = []


@dataclasses.dataclass
class TemplateContext:
    """What a child inherits from its template besides the process image."""

    sandboxed: bool
    ctl_fd: int  # the template's control socket: the child reports readiness on it
    template_pidfd: int  # becomes readable when the template exits
    cgroup_joins: list[tuple[int, str]]  # per hierarchy: <instance> dirfd, file to write "0" to
    entry_module: str
    runtime_path: str  # the Python runtime directory as the child sees it
    stdlib_paths: list[str]
    platform_modules: list[str]  # lamina's modules in the template, hidden from the function
    template_signals: tuple[int, ...] = (signal.SIGCHLD,)
    # The template's class: a SnapStart snapshot (``snapshot_process``) serves its own children
    # with one, without importing the module that runs as ``__main__`` in the template.
    fork_server: Callable[..., Any] | None = None
    # A snapshot's children keep its environment (the function's, with whatever its Init
    # set) and only update what differs per environment; a template's start with none.
    keep_environ: bool = False
    # Run by a spare before it waits: work of the spawn path that can be done ahead.
    warm_spare: Callable[[], None] | None = None
    # What a spare of the server's sets up ahead (``prepare_spare``): the launcher's hostname.
    hostname: str = "localhost"
    # The template made its own image what every child would otherwise make of it first
    # (``ready_image``): ``after_fork`` then leaves those steps out.
    image_ready: bool = False


# What a child becomes once it has its spawn request: (context, request, its descriptors).
Become = Callable[[TemplateContext, dict[str, Any], list[int]], NoReturn]


# The cgroup slot this process joined first thing after its fork (``enter_slot``), or why it
# could not: ``become_environment`` and ``prepare_spare`` then skip (or report) that step.
_entered: dict[str, Any] = {}


def enter_slot(ctx: TemplateContext, slot: str) -> None:
    """Join cgroup ``slot`` right after the fork, before ``after_fork`` (see
    ``template.Template._fork``). A failure is kept for the spawn to report."""
    try:
        _join_cgroup(ctx, slot)
        _entered["slot"] = slot
    except OSError as exc:
        _entered["error"] = f"join cgroup: {exc}"


def after_fork(ctx: TemplateContext) -> None:
    """What every child does first, before it knows which environment it will be.

    Spares (children forked ahead of demand, see ``template.py``) run this and then wait, so
    everything here is off the spawn's path for them: each first write to a page shared with
    the template costs a copy-on-write fault (the steps below took ~0.7 ms after a spawn
    request, measured). Whatever fails here, the child exits: it has nobody to report to yet.
    """
    try:
        # Undo the template's signal setup first: a SIGCHLD arriving now must not write to the
        # template's wakeup pipe (the child shares it until descriptors are closed).
        signal.set_wakeup_fd(-1)
        for sig in ctx.template_signals:
            signal.signal(sig, signal.SIG_DFL)
        # Die with the template. It may already have died between fork and prctl; its pidfd
        # tells (getppid() is 0 for a pid-namespace init, so it cannot).
        linux.set_pdeathsig(signal.SIGKILL)
        if _readable(ctx.template_pidfd):
            os._exit(SETUP_FAILED)
        # Every child starts with the template's random state: make each one its own.
        _reseed()
        if not ctx.image_ready:
            _ready(ctx)
    except BaseException:
        os._exit(SETUP_FAILED)


def ready_image(ctx: TemplateContext) -> None:
    """In the template, once, before it forks: what ``after_fork`` would otherwise do in
    every child that does not depend on the child (environment, stdio objects, argv, the
    platform's modules, resource limits). Each of those steps writes pages every child shares
    with the template: ~150 copy-on-write faults and ~0.5 ms of every cold start, measured
    in a burst. The template's own descriptors 1 and 2 stay as they were.
    """
    saved = (os.dup(1), os.dup(2))
    try:
        _ready(ctx)
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])
    ctx.platform_modules = []
    ctx.image_ready = True


def _ready(ctx: TemplateContext) -> None:
    _set_rlimits()
    if not ctx.keep_environ:
        os.environ.clear()  # nothing of the template's environment reaches a function
    _make_stdio()
    sys.argv = [ctx.entry_module]
    sys.orig_argv = [sys.executable, "-m", ctx.entry_module]
    # The platform's own modules are not the function's: it cannot find them in sys.modules
    # (nor import them: lamina is not on its path). The template's code keeps its references.
    for name in ctx.platform_modules:
        sys.modules.pop(name, None)


def wait_as_spare(ctx: TemplateContext, sock_fd: int, become: Become | None = None,
                  prepare_slot: str | None = None, prepare: bool = False) -> NoReturn:
    """Park until a spawn request comes on ``sock_fd``, then become that environment
    (``become_from_request`` unless the template says otherwise).

    ``prepare``: a spare of the server's (see ``template.py``), which sets up ahead what does
    not depend on the function (``prepare_spare``; in cgroup slot ``prepare_slot``) and says
    so in the request it hands on. Any spare warms the entry's code paths (``warm_spare``):
    its first invocation costs less CPU, worth ~0.1 s in a burst of 200 cold starts.
    """
    prepared = prepare_spare(ctx) if prepare else None
    if ctx.warm_spare is not None:
        with contextlib.suppress(Exception):
            ctx.warm_spare()
        # The rehearsal's garbage (cycles of its objects) is collected now rather than by
        # the environment's first collection, which a cold start would then wait for.
        gc.collect()
    if prepared is not None and prepare_slot is not None and not prepared.get("error"):
        # Only now into its own slot: until here it worked in the spares' group, whose low
        # CPU weight (cgroups.SPARES) keeps a refill of many spares from starving the
        # environments (a slot's weight is an environment's, whatever the policy inside it).
        try:
            _join_cgroup(ctx, prepare_slot)
            prepared["slot"] = prepare_slot
        except OSError as exc:
            prepared["error"] = f"join cgroup: {exc}"
    try:
        sock = socket.socket(fileno=sock_fd)
        sock.setblocking(True)
        if prepare:
            # All done ahead: the launcher hands out only spares that said so, and makes
            # this one an ordinary process again (it may still be at SCHED_IDLE) before it
            # sends the request.
            protocol.send(sock, {"op": "parked"})
        message, fds, _ = protocol.receive(sock)
        sock.detach()
        os.close(sock_fd)
    except BaseException:
        os._exit(SETUP_FAILED)
    if message is None:
        os._exit(0)  # the template (or the server) closed our socket: no longer needed
    if prepared is not None:
        message["prepared"] = prepared
        normal_priority()
    (become or become_from_request)(ctx, message, fds)


def idle_priority() -> None:
    """Run at ``SCHED_IDLE``: a spare's work ahead (after_fork, its set-up, the rehearsal)
    takes only CPU time nothing else wants, so refilling spares after a burst does not slow
    the environments the burst started."""
    with contextlib.suppress(OSError):
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))


def normal_priority() -> None:
    """Back to the environments' policy, ``RUN_POLICY`` (the launcher did it already where it
    could)."""
    with contextlib.suppress(OSError):
        os.sched_setscheduler(0, RUN_POLICY, os.sched_param(0))


def drop_privileges(uid: int, parent_pidfd: int) -> None:
    """Become ``uid`` and group ``uid``, with no supplementary groups and ``no_new_privs``.

    A change of uid clears the parent-death signal (prctl(2)): it is armed again, then the
    parent (``parent_pidfd``) is checked to be alive still; if it died in between, this
    process exits with ``SETUP_FAILED``."""
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    linux.set_no_new_privs()
    linux.set_pdeathsig(signal.SIGKILL)
    if _readable(parent_pidfd):
        os._exit(SETUP_FAILED)


def prepare_spare(ctx: TemplateContext) -> dict[str, Any]:
    """The steps of ``become_environment`` that do not depend on the function, done by a spare
    while it waits, off the cold start (~0.5 ms of it here): unshare the mount, IPC and UTS
    namespaces, mount a private ``/tmp`` and ``/dev/shm`` of the default size and ``/proc``,
    set the hostname, start a session (``wait_as_spare`` then joins its slot). Returns what
    was done, for ``become_environment``; a failure is kept and reported by the spawn that
    gets this spare.
    """
    done: dict[str, Any] = {"slot": None, "sandbox": False, **_entered}
    if done.get("error"):
        return done
    try:
        # Named before it joins a slot: a parked spare is no environment (``ps``, the bench).
        linux.set_name(SPARE_NAME)
        if ctx.sandboxed:
            linux.unshare(linux.CLONE_NEWNS | linux.CLONE_NEWIPC | linux.CLONE_NEWUTS)
            _mount_private(DEFAULT_EPHEMERAL_MB)
            socket.sethostname(ctx.hostname)
            os.setsid()
            done["sandbox"] = True
    except OSError as exc:
        done["error"] = f"prepare spare: {exc}"
    return done


def become_from_request(ctx: TemplateContext, message: dict[str, Any],
                        fds: list[int]) -> NoReturn:
    """``become_environment`` for a spawn request: fds are [payload, output, extra...]."""
    become_environment(ctx, message["id"], message.get("slot"), fds[0],
                       fds[1] if len(fds) > 1 else -1, fds[2:],
                       message.get("prepared") or _entered or None)


def become_environment(ctx: TemplateContext, spawn_id: int, slot: str | None,
                       payload_fd: int, output_fd: int,
                       extra_fds: list[int] | None = None,
                       prepared: dict[str, Any] | None = None) -> NoReturn:
    """Turn this child (past ``after_fork``) into an execution environment; never returns.

    ``prepared``: what a spare did ahead (``prepare_spare``); those steps are skipped here.
    ``mode: "snapshot"`` in the payload makes it a SnapStart snapshot instead, which leaves
    after step 3 for ``snapshot_process`` keeping ``extra_fds`` (its control socket) and the
    cgroup directory fds open.
    """
    step = "start"
    ahead = prepared or {}
    try:
        if ahead.get("error"):
            raise OSError(ahead["error"])
        # 1. Join the cgroup before anything else allocates or runs: limits hold from here on.
        if slot is not None and ahead.get("slot") != slot:
            step = "join cgroup"
            _join_cgroup(ctx, slot)
        step = "read spawn payload"
        config = protocol.read_payload(payload_fd)
        # 2. Namespaces and mounts, while still root.
        if ctx.sandboxed:
            step = "unshare"
            flags = 0 if ahead.get("sandbox") else \
                linux.CLONE_NEWNS | linux.CLONE_NEWIPC | linux.CLONE_NEWUTS
            if config["network"] == "none":
                flags |= linux.CLONE_NEWNET
            if flags:
                linux.unshare(flags)
            step = "mounts"
            _mount_code(config)
            if not ahead.get("sandbox"):
                _mount_private(config["ephemeral_mb"])
            elif config["ephemeral_mb"] != DEFAULT_EPHEMERAL_MB:
                _mount_private(config["ephemeral_mb"], remount=True)
            if config["network"] == "none":
                step = "network"
                linux.interface_up("lo")  # loopback only: the env can talk to itself
                if config.get("relay_ports"):
                    step = "network relay"
                    _start_relay(config)
            if not ahead.get("sandbox") or config["hostname"] != ctx.hostname:
                step = "hostname"
                socket.sethostname(config["hostname"])
        # 3. Descriptors: stdio onto the output pipe and /dev/null, then close everything the
        #    template had (O_CLOEXEC means nothing without an exec). The control socket stays
        #    open until the readiness report, the template's pidfd until privileges are gone.
        step = "stdio"
        _redirect_stdio(output_fd)
        snapshot = config["mode"] == "snapshot"
        keep = [*(extra_fds or ()), *(fd for fd, _ in ctx.cgroup_joins)] if snapshot else []
        _close_all_but(ctx.ctl_fd, ctx.template_pidfd, *keep)
        step = "chdir"
        os.chdir(config["task_dir"])
        if not ahead.get("sandbox"):
            os.setsid()  # own session and process group: kill(-pid) reaches unsandboxed trees
        if snapshot:  # privileges are the snapshot's business: see snapshot_process
            snapshot_process.become_snapshot(ctx, spawn_id, config, list(extra_fds or ()))
        # 4. Privileges last: every step above needed root.
        if config["uid"] is not None:
            step = "drop privileges"
            drop_privileges(config["uid"], ctx.template_pidfd)
        os.close(ctx.template_pidfd)
        step = "prepare entry"
        if config["mode"] == "exec":
            _prepare_exec()
        else:
            _name_entry()
            _prepare_python(ctx, config)
        # 5. The seccomp filter last: every step above may have needed what it refuses.
        if config.get("seccomp"):
            step = "seccomp"
            seccomp.install()
    except BaseException as exc:  # whatever it was, the child must not return
        _report(ctx.ctl_fd, {"op": "child-failed", "id": spawn_id, "error": f"{step}: {exc}"})
        os._exit(SETUP_FAILED)
    try:
        # 6. Ready: the spawn returns in the server while we enter the entry.
        _report(ctx.ctl_fd, {"op": "child-ready", "id": spawn_id})
        os.close(ctx.ctl_fd)
        if config.get("extensions"):
            _start_extensions(config)
        if config["mode"] == "exec":
            _exec(config)
        _run_python(ctx)
    finally:
        os._exit(SETUP_FAILED)


def _close_all_but(*keep: int) -> None:
    low = 3
    for fd in sorted(keep):
        linux.close_range(low, fd - 1)
        low = fd + 1
    linux.close_range(low)


def _readable(fd: int) -> bool:
    return bool(select.select([fd], [], [], 0)[0])


def _write_at(dirfd: int, path: str, value: str) -> None:
    fd = os.open(path, os.O_WRONLY, dir_fd=dirfd)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def _join_cgroup(ctx: TemplateContext, slot: str) -> None:
    """Move this process into its cgroup slot, through directory fds the template opened
    before it pivoted away from /sys. On v1 we write "0" to ``tasks``: moving only the calling
    thread (we are single-threaded, so that is the whole process) skips the global threadgroup
    lock whose RCU sync made a ``cgroup.procs`` write cost ~7 ms here against ~0.1 ms."""
    for dirfd, name in ctx.cgroup_joins:
        _write_at(dirfd, f"{slot}/{name}", "0")


def _mount_code(config: dict[str, Any]) -> None:
    """The function's own mounts on top of the base root (a private copy since unshare)."""
    linux.bind_readonly(config["bind_code"], "/var/task")
    if config.get("net_socket"):  # a VPC environment's one way out (netrelay)
        linux.mount(config["net_socket"], rootfs.NET_SOCKET, None, linux.MS_BIND)
    if config.get("bind_opt"):
        linux.bind_readonly(config["bind_opt"], "/opt")
    # Only now: /var/task and /opt hold their own mounts, the roots they came from can go.
    linux.umount2(rootfs.HIDDEN, linux.MNT_DETACH)


def _mount_private(ephemeral_mb: int, remount: bool = False) -> None:
    """A private tmpfs ``/tmp`` and ``/dev/shm`` of ``ephemeral_mb`` and our own ``/proc``
    (``remount``: only resize the two tmpfs a spare mounted at the default size)."""
    flags = linux.MS_NOSUID | linux.MS_NODEV
    # tmpfs pages are charged to the memory cgroup of whoever writes them: /tmp and /dev/shm
    # count against the function's memory as well as against their own size.
    size = f"size={ephemeral_mb}m,mode=1777"
    again = linux.MS_REMOUNT if remount else 0
    linux.mount("tmpfs", "/tmp", "tmpfs", flags | again, size)
    linux.mount("tmpfs", "/dev/shm", "tmpfs", flags | linux.MS_NOEXEC | again, size)
    if not remount:
        # /proc of our own pid namespace: we are its pid 1, so it lists only this environment.
        linux.mount("proc", "/proc", "proc", flags | linux.MS_NOEXEC)


def _start_relay(config: dict[str, Any]) -> None:
    """Fork the inner half of the VPC relay (``netrelay``): it listens on the namespace's
    loopback at the Runtime API's and the public API's ports, drops to the environment's uid
    and seccomp filter, and bridges each connection to the environment's Unix socket."""
    ports = {tag.encode(): int(port) for tag, port in config["relay_ports"]}
    listeners = netrelay.listen_inside(ports)
    pid = os.fork()
    if pid == 0:
        try:
            keep = sorted(sock.fileno() for sock, _ in listeners)
            null = os.open("/dev/null", os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            _close_all_but(*keep)
            linux.set_name("lamina-net")
            uid = config["uid"]
            if uid is not None:
                os.setgroups([])
                os.setresgid(uid, uid, uid)
                os.setresuid(uid, uid, uid)
            linux.set_no_new_privs()
            linux.prctl(linux.PR_SET_DUMPABLE, 0)  # its descriptors stay its own
            if config.get("seccomp"):
                seccomp.install()
            netrelay.serve_inside(listeners, rootfs.NET_SOCKET)
        finally:
            os._exit(0)
    for sock, _ in listeners:
        sock.close()


def _redirect_stdio(output_fd: int) -> None:
    null = os.open("/dev/null", os.O_RDWR)
    out = output_fd if output_fd >= 0 else null
    os.dup2(null, 0)
    os.dup2(out, 1)
    os.dup2(out, 2)


def _set_rlimits() -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    limit = NOFILE_LIMIT if hard == resource.RLIM_INFINITY else min(NOFILE_LIMIT, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))


def _reseed() -> None:
    random.seed()
    tempfile = sys.modules.get("tempfile")
    if tempfile is not None:
        tempfile._name_sequence = None  # type: ignore[attr-defined]  # its pid check sees pid 1


def _report(ctl_fd: int, message: dict[str, Any]) -> None:
    # If the template (and so the launcher's view of us) is gone, PDEATHSIG follows.
    with contextlib.suppress(OSError):
        os.write(ctl_fd, json.dumps(message).encode())


def _prepare_exec() -> None:
    # Python ignores SIGPIPE and SIGXFSZ; ignored dispositions would survive execve.
    for sig in (signal.SIGPIPE, signal.SIGXFSZ):
        signal.signal(sig, signal.SIG_DFL)


def _exec(config: dict[str, Any]) -> NoReturn:
    """``execve`` the entry; a failure is the function's: 127 not found, 126 not executable."""
    argv = config["argv"]
    env = config["environ"]
    try:
        os.chdir(config["cwd"])
    except OSError as exc:
        os.write(2, f"lamina: cannot enter {config['cwd']}: {exc.strerror}\n".encode())
        os._exit(126)
    try:
        if "/" in argv[0]:
            os.execve(argv[0], argv, env)
        os.execvpe(argv[0], argv, env)
    except OSError as exc:
        code = 127 if exc.errno in (errno.ENOENT, errno.ENOTDIR) else 126
        os.write(2, f"lamina: cannot execute {argv[0]}: {exc.strerror}\n".encode())
        os._exit(code)
    os._exit(127)


def _start_extensions(config: dict[str, Any]) -> None:
    """Start each external extension as a child of the runtime's process, as Lambda starts
    them before the runtime. They share the output pipe; they run with the (already dropped)
    privileges of the environment. One that cannot be executed exits 127 and simply never
    registers, which fails Init as it would on AWS."""
    directory = f"{config['opt_dir']}/extensions"
    environ = config["extension_environ"]
    for name in config["extensions"]:
        path = f"{directory}/{name}"
        if os.fork() == 0:
            try:
                _prepare_exec()
                os.chdir(config["opt_dir"])
                os.execve(path, [path], environ)
            except BaseException as exc:  # never fall back into the runtime's code
                with contextlib.suppress(Exception):
                    os.write(2, f"lamina: cannot start extension {name}: {exc}\n".encode())
            os._exit(127)


def _make_stdio() -> None:
    """Python's stdio objects for descriptors 0-2 as the environment will have them.

    The template's objects were made for other files (a cached "seekable" then makes a pipe
    fail with ESPIPE), so new ones are made here over a stand-in pipe; ``become_environment``
    later puts the output pipe (or /dev/null) on 1 and 2 underneath them. The old objects are
    kept referenced: finalising them would close 0-2.
    """
    read_end, write_end = os.pipe()
    os.dup2(write_end, 1)
    os.dup2(write_end, 2)
    os.close(read_end)
    os.close(write_end)
    _keep_alive.extend((sys.stdin, sys.stdout, sys.stderr))
    sys.stdin = sys.__stdin__ = open(0, closefd=False)  # noqa: SIM115
    sys.stdout = sys.__stdout__ = open(1, "w", buffering=1, closefd=False,  # noqa: SIM115
                                       encoding="utf-8", errors="backslashreplace")
    sys.stderr = sys.__stderr__ = open(2, "w", buffering=1, closefd=False,  # noqa: SIM115
                                       encoding="utf-8", errors="backslashreplace")


def _prepare_python(ctx: TemplateContext, config: dict[str, Any]) -> None:
    """Lambda's ``sys.path`` and the function's environment for the pre-imported interpreter."""
    _set_environ(config["environ"])
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    head = [config["task_dir"]]
    if config["opt_dir"]:
        opt = config["opt_dir"]
        head += [f"{opt}/python/lib/{version}/site-packages", f"{opt}/python"]
    # The template's path importer cache stays: its stdlib finders are still right, new
    # directories get new finders. Clearing it (or walking sys.modules) would touch hundreds
    # of objects, and every refcount write copies a page the child shares with the template
    # (~0.45 MB of private memory each, measured).
    sys.path[:] = [*head, ctx.runtime_path, *ctx.stdlib_paths]


def _set_environ(environ: dict[str, str]) -> None:
    """``os.environ.update(environ)`` in one loop: the C library's environment (``putenv``,
    what the function's subprocesses inherit) and ``os.environ``'s own mapping. ``update``
    goes through ``MutableMapping`` and three Python calls per variable, ~0.1 ms more for
    Lambda's forty variables on the cold start. ``_data`` is CPython's bytes-keyed store
    behind ``os.environ`` (POSIX), the one its ``__setitem__`` writes."""
    data = os.environ._data  # type: ignore[attr-defined]
    putenv = os.putenv
    encoding = sys.getfilesystemencoding()  # as os.environ encodes (with surrogateescape)
    for key, value in environ.items():
        putenv(key, value)
        data[key.encode(encoding, "surrogateescape")] = value.encode(encoding, "surrogateescape")


def _run_python(ctx: TemplateContext) -> NoReturn:
    """Call the bootstrap's ``main()`` and exit with its result, as ``python -m`` would."""
    code = 1
    try:
        module = sys.modules.get(ctx.entry_module) or importlib.import_module(ctx.entry_module)
        result = module.main()
        code = result if isinstance(result, int) else 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if exc.code is not None and not isinstance(exc.code, int):
            print(exc.code, file=sys.stderr)
    except BaseException:  # report and exit like an uncaught exception would
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
    os._exit(code & 0xFF)
