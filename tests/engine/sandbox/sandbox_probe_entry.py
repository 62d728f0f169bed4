"""Stand-in for lamina's Python bootstrap in the sandbox tests: does what ``TEST_ACTION`` says.

Copied into the test runtimes directory; imported by the template, ``main()`` runs in a fork.
"""

import json
import os
import socket
import sys
import time


def _status_field(name: str) -> str:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(name + ":"):
                return line.split(":", 1)[1].strip()
    return ""


def report() -> int:
    fds = sorted(int(fd) for fd in os.listdir("/proc/self/fd"))
    info = {
        "uid": os.getuid(), "euid": os.geteuid(), "gid": os.getgid(), "groups": os.getgroups(),
        "pid": os.getpid(), "cwd": os.getcwd(), "environ": dict(os.environ), "path": sys.path,
        "fds": fds, "hostname": socket.gethostname(),
        "proc": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
        "lamina_modules": sorted(m for m in sys.modules if m.split(".")[0] == "lamina"),
        "argv": sys.argv, "no_new_privs": _status_field("NoNewPrivs"),
        "cap_eff": _status_field("CapEff"), "root": sorted(os.listdir("/")),
    }
    print(json.dumps(info))
    return 0


PRELOADED: dict = {}


def preload(handler=None, task_root=None):
    """SnapStart's Init, as lamina's bootstrap has it: import the handler's module once, in the
    snapshot process; ``main()`` in each fork then finds it here. Returns AWS's error shape."""
    import contextlib
    import importlib

    spec = handler or os.environ.get("_HANDLER", "")
    with contextlib.suppress(ImportError):
        import snapshot_restore_py  # noqa: F401 - as the bootstrap does, before user code
    try:
        PRELOADED["module"] = importlib.import_module(spec.rsplit(".", 1)[0])
    except Exception as exc:
        return {"errorType": type(exc).__name__, "errorMessage": str(exc), "stackTrace": []}
    return None


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _listing(path: str) -> list[str] | str:
    try:
        return sorted(os.listdir(path))
    except OSError as exc:
        return exc.strerror or "error"


def restored() -> int:
    """A fork of a snapshot: run the after-restore hooks, report what the environment sees."""
    import random

    import snapshot_restore_py

    snapshot_restore_py.run_after_restore()
    module = PRELOADED["module"]
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    unshare = 0 if libc.unshare(0x00020000) == 0 else ctypes.get_errno()  # CLONE_NEWNS
    print(json.dumps({
        "uid": os.getuid(), "pid": os.getpid(), "init": module.STATE,
        "random": random.random(), "tmp": sorted(os.listdir("/tmp")),
        "proc": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
        "environ": dict(os.environ), "cwd": os.getcwd(), "root": sorted(os.listdir("/")),
        "no_new_privs": _status_field("NoNewPrivs"), "cap_eff": _status_field("CapEff"),
        "seccomp": _status_field("Seccomp"), "fds": sorted(int(fd) for fd in
                                                         os.listdir("/proc/self/fd")),
        "cgroup": _read("/proc/self/cgroup"), "hidden": _listing("/.lamina"),
        "mounts": [line.split()[4] for line in _read("/proc/self/mountinfo").splitlines()],
        "unshare": unshare,
    }))
    return 0


def main() -> int:
    action = os.environ.get("TEST_ACTION", "report")
    if action == "report":
        return report()
    if action == "restored":
        return restored()
    if action == "alloc":
        block = b"x" * (int(os.environ["TEST_MB"]) << 20)  # written, so really allocated
        print("allocated", len(block), flush=True)
        return 0
    if action == "sleep":
        print("ready", flush=True)
        while True:
            time.sleep(60)
    if action == "fork":  # a fork bomb, counting
        children, error = 0, None
        try:
            while children < 500:
                if os.fork() == 0:
                    time.sleep(60)
                    os._exit(0)
                children += 1
        except OSError as exc:
            error = exc.errno
        procs = len([p for p in os.listdir("/proc") if p.isdigit()])
        print(json.dumps({"children": children, "errno": error, "procs": procs}))
        return 0
    if action == "exit":
        return int(os.environ["TEST_CODE"])
    if action == "import-layer":
        import layer_mod  # from /opt/python

        print(layer_mod.VALUE)
        return 0
    if action == "raise":
        raise RuntimeError("boom from the probe")
    print(f"unknown action {action}", file=sys.stderr)
    return 2
