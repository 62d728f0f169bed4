"""Escape attempts, one per action: each returns what happened instead of raising, so a test
can tell "refused" from "broke"."""

import ctypes
import errno
import os
import socket
import sys

libc = ctypes.CDLL(None, use_errno=True)

# x86_64 system call numbers
SYSCALLS = {"ptrace": 101, "mount": 165, "umount2": 166, "unshare": 272, "setns": 308,
            "init_module": 175, "finit_module": 313, "keyctl": 250, "add_key": 248,
            "bpf": 321, "perf_event_open": 298, "reboot": 169, "kexec_load": 246,
            "swapon": 167, "pivot_root": 155, "chroot": 161, "userfaultfd": 323,
            "open_by_handle_at": 304, "process_vm_readv": 310}
CLONE_NEWUSER = 0x10000000
CLONE_NEWNS = 0x00020000
PTRACE_ATTACH = 16


def handler(event, context):
    return ACTIONS[event["action"]](event)


def _errno_of(result):
    return 0 if result == 0 else ctypes.get_errno()


def syscalls(event):
    """Each refused call's errno (0 would mean it went through)."""
    results = {}
    child = os.fork()
    if child == 0:
        import time
        time.sleep(5)
        os._exit(0)
    try:
        results["ptrace_attach_child"] = _errno_of(libc.ptrace(PTRACE_ATTACH, child, 0, 0))
        results["ptrace_traceme"] = _errno_of(libc.ptrace(0, 0, 0, 0))
    finally:
        os.kill(child, 9)
        os.waitpid(child, 0)
    results["mount"] = _errno_of(libc.mount(b"tmpfs", b"/tmp", b"tmpfs", 0, None))
    results["umount"] = _errno_of(libc.umount2(b"/var/task", 2))
    results["unshare_user"] = _errno_of(libc.unshare(CLONE_NEWUSER))
    results["unshare_mount"] = _errno_of(libc.unshare(CLONE_NEWNS))
    for name in ("init_module", "finit_module", "keyctl", "add_key", "bpf", "perf_event_open",
                 "reboot", "kexec_load", "swapon", "pivot_root", "chroot", "userfaultfd",
                 "open_by_handle_at", "setns"):
        results[name] = _errno_of(libc.syscall(SYSCALLS[name], 0, 0, 0, 0, 0))
    try:
        os.unshare(CLONE_NEWUSER) if hasattr(os, "unshare") else None
    except OSError as exc:
        results["os_unshare"] = exc.errno
    results["no_new_privs"] = int(open("/proc/self/status").read().split("NoNewPrivs:")[1]
                                  .split()[0])
    results["seccomp"] = int(open("/proc/self/status").read().split("Seccomp:")[1].split()[0])
    return results


def signal(event):
    """Signal a host process by its host pid (it is not in our pid namespace)."""
    try:
        os.kill(event["pid"], event.get("signal", 9))
        return {"ok": True}
    except OSError as exc:
        return {"ok": False, "errno": exc.errno, "error": str(exc)}


def environs(event):
    """Every environment we can read through /proc (only our own should be there)."""
    found = {}
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/environ", "rb") as handle:
                    found[pid] = handle.read().decode(errors="replace")
            except OSError as exc:
                found[pid] = f"error {exc.errno}"
    return {"environs": found, "self": os.getpid()}


def read_files(event):
    out = {}
    for path in event["paths"]:
        try:
            with open(path, "rb") as handle:
                out[path] = {"ok": True, "data": handle.read(200).decode(errors="replace")}
        except OSError as exc:
            out[path] = {"ok": False, "errno": exc.errno}
    return out


def network(event):
    """What the network looks like from here, and whether given loopback ports answer."""
    out = {"routes": open("/proc/net/route").read().splitlines()[1:],
           "interfaces": [line.split(":")[0].strip()
                          for line in open("/proc/net/dev").read().splitlines()[2:]]}
    results = {}
    for host, port in event.get("connect", []):
        sock = socket.socket()
        sock.settimeout(2)
        try:
            sock.connect((host, port))
            results[f"{host}:{port}"] = "connected"
        except OSError as exc:
            results[f"{host}:{port}"] = errno.errorcode.get(exc.errno or 0, str(exc))
        finally:
            sock.close()
    out["connect"] = results
    return out


def call_lamina(event):
    """Call lamina's API with this environment's own credentials (boto3 vendored in the zip)."""
    sys.path.insert(0, "/var/task/vendor")
    import boto3
    import botocore.config
    import botocore.exceptions
    client = boto3.client(event.get("service", "lambda"),
                          config=botocore.config.Config(retries={"max_attempts": 0},
                                                        connect_timeout=5, read_timeout=30))
    try:
        response = getattr(client, event["method"])(**event.get("params", {}))
    except botocore.exceptions.ClientError as exc:
        return {"ok": False, "code": exc.response["Error"]["Code"],
                "message": exc.response["Error"]["Message"]}
    except botocore.exceptions.BotoCoreError as exc:
        return {"ok": False, "code": type(exc).__name__, "message": str(exc)}
    response.pop("ResponseMetadata", None)
    if "Payload" in response:
        response["Payload"] = response["Payload"].read().decode()
    import json
    return {"ok": True, "response": json.loads(json.dumps(response, default=str))}


def credentials(event):
    """Exfiltrate this environment's own temporary credentials."""
    return {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                           "AWS_SESSION_TOKEN")}


ACTIONS = {"syscalls": syscalls, "credentials": credentials, "signal": signal, "environs": environs,
           "read_files": read_files, "network": network, "call_lamina": call_lamina}
