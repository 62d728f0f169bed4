"""The seccomp filter of a SnapStart snapshot process: the environments' filter, minus what a
fork server of namespaced children cannot do without.

The snapshot runs user code (the function's Init) and then, in the same process, forks
environments that need ``unshare`` (mount, ipc, uts, pid namespaces), ``setns`` (back to its
own pid namespace after each fork), ``mount`` (their ``/tmp``, ``/dev/shm``, ``/proc``) and
``sethostname``. The environments' filter (``seccomp.py``) refuses all four, so the snapshot
gets this one instead, installed before Init runs:

* everything ``seccomp.py`` refuses, except those four calls;
* ``unshare`` and ``clone`` with ``CLONE_NEWUSER``: no nested user namespace, the usual way a
  process would gain capabilities over mounts it did not make;
* ``setns`` other than into a pid namespace (the only one the snapshot goes back to);
* ``clone3`` answers ``ENOSYS`` (its flags sit behind a pointer), ``ioctl(TIOCSTI)`` ``EPERM``,
  foreign ABIs kill, as in ``seccomp.py``.

Each environment forked from the snapshot then installs the full filter on top of this one
(filters stack; the strictest answer wins) as the last step of its setup. What the snapshot's
user code can still do that an environment's cannot: mount and create namespaces inside its own
user namespace, which maps to two unprivileged host ids and owns nothing of the host's.
"""

from __future__ import annotations

import ctypes
import errno
import struct

from lamina.engine.sandbox import linux, seccomp

NEEDED_BY_FORK_SERVER = frozenset({"unshare", "setns", "mount", "sethostname"})

_AUDIT_ARCH_X86_64 = 0xC000003E
_X32_BIT = 0x40000000
_RET_ALLOW, _RET_ERRNO, _RET_KILL_PROCESS = 0x7FFF0000, 0x00050000, 0x80000000
_LD_W_ABS, _JEQ_K, _JGE_K, _JSET_K, _RET_K = 0x20, 0x15, 0x35, 0x45, 0x06
_NR, _ARCH, _ARG0, _ARG1 = 0, 4, 16, 24
_CLONE, _CLONE3, _IOCTL, _UNSHARE, _SETNS = 56, 435, 16, 272, 308
_TIOCSTI = 0x5412
_CLONE_NEWUSER = 0x10000000
_CLONE_NEWPID = 0x20000000

# Source instructions: (code, jump-if-true, jump-if-false, k) with jump targets as labels
# (``None``: the next instruction); ``program`` resolves them into BPF's relative offsets.
_Source = tuple[int, str | None, str | None, int]


def program() -> list[tuple[int, int, int, int]]:
    """The filter as (code, jt, jf, k) instructions."""
    refused = sorted({nr for name, nr in seccomp.REFUSED_X86_64.items()
                      if name not in NEEDED_BY_FORK_SERVER})
    source: list[tuple[str, _Source]] = [
        ("", (_LD_W_ABS, None, None, _ARCH)),
        ("", (_JEQ_K, None, "kill", _AUDIT_ARCH_X86_64)),
        ("", (_LD_W_ABS, None, None, _NR)),
        ("", (_JGE_K, "kill", None, _X32_BIT)),
        *[("", (_JEQ_K, "eperm", None, nr)) for nr in refused],
        ("", (_JEQ_K, "enosys", None, _CLONE3)),
        ("", (_JEQ_K, "flags", None, _CLONE)),
        ("", (_JEQ_K, "flags", None, _UNSHARE)),
        ("", (_JEQ_K, None, "ioctl", _SETNS)),
        ("", (_LD_W_ABS, None, None, _ARG1)),
        ("", (_JEQ_K, "allow", "eperm", _CLONE_NEWPID)),
        ("flags", (_LD_W_ABS, None, None, _ARG0)),  # clone and unshare: the flags come first
        ("", (_JSET_K, "eperm", "allow", _CLONE_NEWUSER)),
        ("ioctl", (_JEQ_K, None, "allow", _IOCTL)),
        ("", (_LD_W_ABS, None, None, _ARG1)),
        ("", (_JEQ_K, "eperm", "allow", _TIOCSTI)),
        ("allow", (_RET_K, None, None, _RET_ALLOW)),
        ("eperm", (_RET_K, None, None, _RET_ERRNO | errno.EPERM)),
        ("enosys", (_RET_K, None, None, _RET_ERRNO | errno.ENOSYS)),
        ("kill", (_RET_K, None, None, _RET_KILL_PROCESS)),
    ]
    labels = {label: index for index, (label, _) in enumerate(source) if label}

    def offset(target: str | None, at: int) -> int:
        if target is None:
            return 0
        distance = labels[target] - (at + 1)
        if not 0 <= distance < 256:
            raise ValueError(f"jump to {target} out of range ({distance})")
        return distance

    return [(op, offset(true, at), offset(false, at), k)
            for at, (_, (op, true, false, k)) in enumerate(source)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


_PROGRAM = b"".join(struct.pack("<HBBI", *insn) for insn in program())
_BUFFER = ctypes.create_string_buffer(_PROGRAM, len(_PROGRAM))
_FPROG = _SockFprog(len(_PROGRAM) // 8, ctypes.addressof(_BUFFER))


def install() -> None:
    """Apply the snapshot's filter to the caller and its future children (needs
    ``no_new_privs``, set by the snapshot before it left the host's user namespace)."""
    result = linux.prctl_pointer(seccomp.PR_SET_SECCOMP, seccomp.SECCOMP_MODE_FILTER,
                                 ctypes.addressof(_FPROG))
    if result != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_SECCOMP)")
