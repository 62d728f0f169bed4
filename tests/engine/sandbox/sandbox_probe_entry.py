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


def main() -> int:
    action = os.environ.get("TEST_ACTION", "report")
    if action == "report":
        return report()
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
