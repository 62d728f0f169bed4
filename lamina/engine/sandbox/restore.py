"""What a child of a SnapStart snapshot does before it serves invocations: an environment made
from the snapshot's process image, in which the function's Init has already run.

It is ``child.become_environment`` for a different parent, and shares its helpers. What differs:

* the parent is the snapshot (``snapshot_process``), which lives in a user namespace of its own
  (``userns``): every namespace made here is owned by that user namespace, and the child is
  namespace root (host uid U, no host capability) until it drops to the function's uid;
* ``/var/task`` and ``/opt`` are already in place, read-only and locked (they came from a mount
  namespace of the host's user namespace), and the roots they were bound from are long gone:
  only the per-environment mounts (``/tmp``, ``/dev/shm``, ``/proc``) are made here;
* the entry is the bootstrap's ``main()`` with the handler already imported (``preload``):
  with ``AWS_LAMBDA_INITIALIZATION_TYPE=snap-start`` it runs the after-restore hooks first and
  reports a failure on ``/runtime/restore/error``, as Lambda's runtime does.

``child.after_fork`` ran first, as for every fork of a template: it re-seeded ``random`` and
reset ``tempfile``'s name sequence. The environment variables are the snapshot's (the
function's, plus whatever its Init set); only those that differ per environment are updated
from the spawn payload (Runtime API address, log stream, credentials, ``snap-start``): a few
``setenv`` calls instead of forty, each of which copies pages shared with the snapshot.

A spare (forked ahead of demand) runs ``warm`` before it waits for a request: the allocations
and set-up a restore would make first, done once ahead, so that their copy-on-write faults in
the snapshot's large process image are paid before the cold start, not during it.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from typing import Any, NoReturn

from lamina.engine.sandbox import child, linux, protocol, seccomp


def become_restored(ctx: child.TemplateContext, message: dict[str, Any],
                    fds: list[int]) -> NoReturn:
    """Turn this child of a snapshot (past ``child.after_fork``) into an environment."""
    spawn_id, slot = message["id"], message.get("slot")
    payload_fd, output_fd = fds[0], fds[1] if len(fds) > 1 else -1
    step = "start"
    try:
        # 1. The cgroup first, so that the limits hold from here on. The launcher gave this
        #    slot's join file to the snapshot's namespace root (host uid U), which we still
        #    are; the file of any other slot belongs to host root and stays out of reach.
        if slot is not None:
            step = "join cgroup"
            for dirfd, name in ctx.cgroup_joins:
                child._write_at(dirfd, f"{slot}/{name}", "0")
        step = "read spawn payload"
        config = protocol.read_payload(payload_fd)
        # 2. Namespaces, owned by the snapshot's user namespace (we hold CAP_SYS_ADMIN there
        #    and nowhere else). The pid namespace was made by the snapshot before the fork.
        if ctx.sandboxed:
            step = "unshare"
            flags = linux.CLONE_NEWNS | linux.CLONE_NEWIPC | linux.CLONE_NEWUTS
            if config["network"] == "none":
                flags |= linux.CLONE_NEWNET
            linux.unshare(flags)
            step = "mounts"
            _mount_private(config)
            if config["network"] == "none":
                step = "network"
                linux.interface_up("lo")
            step = "hostname"
            socket.sethostname(config["hostname"])
        # 3. Descriptors, as in child.become_environment: only the control socket (for the
        #    readiness report) and the snapshot's pidfd (until privileges are gone) stay.
        step = "stdio"
        child._redirect_stdio(output_fd)
        child._close_all_but(ctx.ctl_fd, ctx.template_pidfd)
        step = "chdir"
        os.chdir(config["task_dir"])
        os.setsid()
        # 4. The function's uid inside the user namespace (host uid U + 1): no capability
        #    anywhere from here on (no_new_privs is inherited from the snapshot, which set it
        #    before it left the host's user namespace; setting it again costs nothing).
        if config["uid"] is not None:
            step = "drop privileges"
            child.drop_privileges(config["uid"], ctx.template_pidfd)
        os.close(ctx.template_pidfd)
        step = "environment"
        _update_environ(config["environ"])
        # 5. The environments' full seccomp filter, on top of the snapshot's looser one.
        if config.get("seccomp"):
            step = "seccomp"
            seccomp.install()
    except BaseException as exc:
        child._report(ctx.ctl_fd, {"op": "child-failed", "id": spawn_id,
                                   "error": f"{step}: {exc}"})
        os._exit(child.SETUP_FAILED)
    try:
        # 6. Ready (the server learns our host pid from the kernel), then the runtime: the
        #    after-restore hooks and the invoke loop, in the bootstrap.
        child._report(ctx.ctl_fd, {"op": "child-ready", "id": spawn_id})
        os.close(ctx.ctl_fd)
        if config.get("extensions"):
            child._start_extensions(config)
        child._run_python(ctx)
    finally:
        os._exit(child.SETUP_FAILED)


def warm(ctx: child.TemplateContext) -> None:
    """A spare's work ahead of its request (see the module's docstring)."""
    json.loads(json.dumps({"environ": dict(os.environ), "extension_environ": {}}))
    prepare = getattr(sys.modules.get(ctx.entry_module), "prepare_fork", None)
    if prepare is not None:
        prepare()


def _update_environ(environ: dict[str, str]) -> None:
    """Set what differs from the snapshot's environment; what the Init added stays."""
    current = os.environ
    for key, value in environ.items():
        if current.get(key) != value:
            current[key] = value


def _mount_private(config: dict[str, Any]) -> None:
    """This environment's own ``/tmp`` (``EphemeralStorage`` MB), ``/dev/shm`` and ``/proc``.

    They cover the snapshot's: whatever its Init wrote to ``/tmp`` stays invisible (the
    environment starts with an empty one, a difference from Lambda, whose snapshots include the
    disk). A function without capabilities cannot unmount them to look beneath.
    """
    flags = linux.MS_NOSUID | linux.MS_NODEV
    size = f"size={config['ephemeral_mb']}m,mode=1777"
    linux.mount("tmpfs", "/tmp", "tmpfs", flags, size)
    linux.mount("tmpfs", "/dev/shm", "tmpfs", flags | linux.MS_NOEXEC, size)
    # A proc mount inside a user namespace must be at least as restrictive as the one it
    # could otherwise see (the snapshot's: nosuid, nodev, noexec).
    linux.mount("proc", "/proc", "proc", flags | linux.MS_NOEXEC)
