"""Errno-checked wrappers for the Linux system calls that Python 3.11's ``os`` lacks.

``unshare``/``setns`` arrived in ``os`` only with 3.12, and ``mount``, ``umount2``,
``pivot_root`` and ``prctl`` never did. Each wrapper raises ``OSError`` with the real errno so a
failing step in the template or in a child names its cause. This module is imported by the
template *before* it pivots into the sandbox root, so it must stay stdlib-only.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import fcntl
import os
import platform
import socket
import struct
from collections.abc import Callable

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)

# sched.h / linux/sched.h
CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

# sys/mount.h
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_PRIVATE = 1 << 18
MNT_DETACH = 2

# sys/prctl.h
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_NAME = 15
PR_SET_NO_NEW_PRIVS = 38

# pivot_root has no glibc wrapper; it is called by number.
_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}.get(platform.machine())

_libc.mount.argtypes = [
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_ulong,
    ctypes.c_char_p,
]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.prctl.argtypes = [ctypes.c_int, *[ctypes.c_ulong] * 4]


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _b(path: str | os.PathLike[str] | None) -> bytes | None:
    return None if path is None else os.fsencode(path)


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


def setns(fd: int, nstype: int) -> None:
    _check(_libc.setns(fd, nstype), "setns")


def mount(
    source: str | os.PathLike[str] | None,
    target: str | os.PathLike[str],
    fstype: str | None = None,
    flags: int = 0,
    data: str | None = None,
) -> None:
    result = _libc.mount(
        _b(source), _b(target), None if fstype is None else fstype.encode(), flags,
        None if data is None else data.encode(),
    )
    _check(result, f"mount {source} on {target}")


def bind_readonly(source: str | os.PathLike[str], target: str | os.PathLike[str],
                  *, recursive: bool = False) -> None:
    """Bind ``source`` at ``target`` read-only, nosuid, nodev.

    Two calls, because ``MS_BIND|MS_RDONLY`` in one ``mount`` ignores the read-only flag (the
    kernel only honours mount flags of a bind mount on a later ``MS_REMOUNT``; HOST.md measured
    a one-call bind staying writable).
    """
    mount(source, target, None, MS_BIND | (MS_REC if recursive else 0))
    mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)


def umount2(target: str | os.PathLike[str], flags: int = 0) -> None:
    _check(_libc.umount2(_b(target), flags), f"umount {target}")


def pivot_root(new_root: str | os.PathLike[str], put_old: str | os.PathLike[str]) -> None:
    if _SYS_PIVOT_ROOT is None:
        raise OSError(38, f"pivot_root: unknown syscall number on {platform.machine()}")
    _check(_libc.syscall(_SYS_PIVOT_ROOT, _b(new_root), _b(put_old)), "pivot_root")


def prctl(option: int, arg2: int = 0) -> None:
    _check(_libc.prctl(option, arg2, 0, 0, 0), f"prctl({option})")


def prctl_pointer(option: int, arg2: int, address: int) -> int:
    """``prctl(option, arg2, address)`` returning the raw result (errno in ``ctypes``), for
    calls whose third argument is a pointer (``PR_SET_SECCOMP``)."""
    return int(_libc.prctl(option, arg2, address, 0, 0))


def set_pdeathsig(sig: int) -> None:
    """Have the kernel send ``sig`` to the caller when the thread that forked it exits."""
    prctl(PR_SET_PDEATHSIG, sig)


def set_no_new_privs() -> None:
    """Make execve unable to grant privileges (setuid bits, file capabilities) from now on."""
    prctl(PR_SET_NO_NEW_PRIVS, 1)


def set_name(name: str) -> None:
    """Name the calling thread (``comm``, what ``ps`` shows); truncated to 15 bytes."""
    name_setter(name)()


def name_setter(name: str) -> Callable[[], None]:
    """``set_name(name)`` with its buffer made now: one foreign call when it is called (a
    child renames itself on the cold start's path, with the buffer made in the template)."""
    buf = ctypes.create_string_buffer(name.encode()[:15])
    address = ctypes.addressof(buf)

    def set_it() -> None:
        _check(_libc.prctl(PR_SET_NAME, address, 0, 0, 0), "prctl(PR_SET_NAME)")

    set_it.buffer = buf  # type: ignore[attr-defined]  # kept alive with the function
    return set_it


_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1


def interface_up(name: str = "lo") -> None:
    """Bring a network interface up (a fresh network namespace starts with ``lo`` down)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH14x", name.encode(), 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(sock, _SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, _SIOCSIFFLAGS, struct.pack("16sH14x", name.encode(), flags | _IFF_UP))


_SYS_CLOSE_RANGE = 436  # the same number on x86_64 and aarch64


def close_range(first: int, last: int = 0xFFFFFFFF) -> None:
    """Close every descriptor in ``[first, last]`` in one call.

    ``os.closerange`` falls back to a ``close`` per number when CPython was built without
    ``close_range``, which is millions of calls with a high ``RLIMIT_NOFILE``.
    """
    if first > last:
        return
    if _libc.syscall(_SYS_CLOSE_RANGE, ctypes.c_uint(first), ctypes.c_uint(last), 0) != 0:
        limit = os.sysconf("SC_OPEN_MAX")
        os.closerange(first, min(last + 1, limit))


# fork(2) through the C library, called with the GIL held (``PyDLL``: ctypes does not release
# it around the call, so no other thread of ours can run or hold a lock meanwhile).
_pylibc = ctypes.PyDLL(None, use_errno=True)
_libc_fork = _pylibc.fork
_libc_fork.restype = ctypes.c_int
_libc_fork.argtypes = []


def raw_fork() -> int:
    """``fork`` without CPython's after-fork work in the child, for a single-threaded fork
    server only (``template.Template``).

    ``os.fork`` runs, in the child, the hooks of ``os.register_at_fork`` (``threading``'s,
    ``logging``'s, ``random``'s) and re-initialises the interpreter's locks: work for a process
    that had other threads. A single-threaded caller that is not importing holds none of
    those locks, ``threading``'s state stays right (the same thread goes on, with the same
    ident), and the child re-seeds ``random`` itself. Skipped, the child touches ~60-200 fewer
    pages it shares with the template (each one a copy-on-write fault, and private memory of
    every environment). The C library's own fork handlers still run.
    """
    pid = _libc_fork()
    if pid < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"fork: {os.strerror(err)}")
    return pid

