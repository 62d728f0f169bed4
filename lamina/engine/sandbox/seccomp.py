"""The seccomp filter of execution environments: system calls a function never needs, refused.

A classic BPF program, assembled here by hand (no libseccomp in the venv), is installed with
``prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER)`` as the child's last step before the entry,
after ``no_new_privs`` (which the kernel requires of an unprivileged caller) and after every
setup step that needed the calls it refuses (``unshare``, ``mount``...). It is inherited by
every process the function starts and cannot be removed.

Refused with ``EPERM`` (what the calls answer an unprivileged caller anyway, so well-behaved
programs see a familiar error): debugging other processes (``ptrace``, ``process_vm_*``,
``kcmp``, ``pidfd_getfd``), mounting and changing root (``mount``, ``umount2``, ``pivot_root``,
``chroot``, the new mount API), namespaces (``unshare``, ``setns``, and ``clone`` with any
``CLONE_NEW*`` flag), kernel modules, keyrings, ``bpf``, ``perf_event_open``,
``userfaultfd``, ``io_uring_*``, ``reboot``, ``kexec_*``, ``swapon``/``swapoff``, clocks, quotas,
accounting, ``syslog``, file handles (``open_by_handle_at``), I/O ports, and ``ioctl(TIOCSTI)``
(typing into a terminal). ``clone3`` answers ``ENOSYS``, as container runtimes do, because its
flags sit behind a pointer the filter cannot read: the C library then falls back to ``clone``,
whose flags it can. A call made under another ABI (x32, or a foreign architecture) kills the
process: the table below is for x86_64 numbers only.

Only x86_64 is covered; elsewhere ``supported()`` is false and the launcher says so.
"""

from __future__ import annotations

import ctypes
import errno
import platform
import struct

from lamina.engine.sandbox import linux

PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2

_AUDIT_ARCH_X86_64 = 0xC000003E
_X32_BIT = 0x40000000
_RET_ALLOW = 0x7FFF0000
_RET_ERRNO = 0x00050000
_RET_KILL_PROCESS = 0x80000000

# BPF opcodes
_LD_W_ABS = 0x20
_JEQ_K = 0x15
_JGE_K = 0x35
_JSET_K = 0x45
_RET_K = 0x06

# offsets in struct seccomp_data
_NR, _ARCH, _ARG0, _ARG1 = 0, 4, 16, 24

_CLONE, _CLONE3, _IOCTL = 56, 435, 16
_TIOCSTI = 0x5412
_CLONE_NEW_FLAGS = (0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000
                    | 0x20000000 | 0x40000000 | 0x00000080)  # NS CGROUP UTS IPC USER PID NET TIME

# x86_64 system call numbers refused with EPERM.
REFUSED_X86_64 = {
    "ptrace": 101, "syslog": 103, "uselib": 134, "adjtimex": 159, "chroot": 161, "acct": 163,
    "settimeofday": 164, "mount": 165, "umount2": 166, "swapon": 167, "swapoff": 168,
    "reboot": 169, "sethostname": 170, "setdomainname": 171, "iopl": 172, "ioperm": 173,
    "create_module": 174, "init_module": 175, "delete_module": 176, "get_kernel_syms": 177,
    "query_module": 178, "quotactl": 179, "nfsservctl": 180, "lookup_dcookie": 212,
    "clock_settime": 227, "kexec_load": 246, "add_key": 248, "request_key": 249,
    "keyctl": 250, "unshare": 272, "perf_event_open": 298, "name_to_handle_at": 303,
    "open_by_handle_at": 304, "clock_adjtime": 305, "setns": 308, "process_vm_readv": 310,
    "process_vm_writev": 311, "kcmp": 312, "finit_module": 313, "kexec_file_load": 320,
    "bpf": 321, "userfaultfd": 323, "io_uring_setup": 425, "io_uring_enter": 426,
    "io_uring_register": 427, "open_tree": 428, "move_mount": 429, "fsopen": 430,
    "fsconfig": 431, "fsmount": 432, "fspick": 433, "pidfd_getfd": 438, "mount_setattr": 442,
    "pivot_root": 155,
}


def supported() -> bool:
    return platform.machine() == "x86_64"


def _insn(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("<HBBI", code, jt, jf, k)


_JA = 0x05  # BPF_JMP | BPF_JA: an unconditional jump (32-bit offset)
_LEAF = 2  # calls compared one after the other at the bottom of the search tree


def build_program() -> list[tuple[int, int, int, int]]:
    """The filter as (code, jt, jf, k) instructions.

    After the ABI checks, the call number is found by binary search over the calls with a
    rule (``JGE`` at each node, a few ``JEQ`` at the leaves) rather than compared with each in
    turn: installing the filter (the kernel checks and translates it, and runs it over every
    call number to cache the always-allowed ones) took ~0.2 ms of each cold start with the
    linear list, ~0.13 ms so, and a call runs through at most 14 instructions instead of up
    to 60 (``tests/engine/sandbox/test_seccomp_program.py`` runs it over every call number).
    Every rule ends in one of four shared returns at the end (ALLOW, EPERM, ENOSYS, KILL).
    """
    rules = sorted([(nr, "eperm") for nr in set(REFUSED_X86_64.values())]
                   + [(_CLONE3, "enosys"), (_CLONE, "clone"), (_IOCTL, "ioctl")])
    head: list[tuple[int | str, int | str, int | str, int]] = [
        (_LD_W_ABS, 0, 0, _ARCH), (_JEQ_K, 0, "kill", _AUDIT_ARCH_X86_64),
        (_LD_W_ABS, 0, 0, _NR), (_JGE_K, "kill", 0, _X32_BIT),
        *_search(rules),
    ]
    ends = {"allow": len(head), "eperm": len(head) + 1, "enosys": len(head) + 2,
            "kill": len(head) + 3}
    program: list[tuple[int, int, int, int]] = []
    for at, (code, jt, jf, k) in enumerate(head):
        def to(target: int | str, at: int = at) -> int:
            return ends[target] - (at + 1) if isinstance(target, str) else target
        if code == "ja":
            program.append((_JA, 0, 0, to(str(jt))))
            continue
        jump_true, jump_false = to(jt), to(jf)
        assert 0 <= jump_true < 256 and 0 <= jump_false < 256
        program.append((int(code), jump_true, jump_false, k))
    program += [(_RET_K, 0, 0, _RET_ALLOW), (_RET_K, 0, 0, _RET_ERRNO | errno.EPERM),
                (_RET_K, 0, 0, _RET_ERRNO | errno.ENOSYS), (_RET_K, 0, 0, _RET_KILL_PROCESS)]
    return program


def _search(rules: list[tuple[int, str]]) -> list[tuple[int | str, int | str, int | str, int]]:
    """Instructions that send the call number in the accumulator to its rule's return (or to
    ALLOW): ``JGE`` splits the sorted rules in halves down to ``_LEAF`` compared in turn."""
    if len(rules) <= _LEAF:
        leaf: list[tuple[int | str, int | str, int | str, int]] = []
        for nr, kind in rules:
            if kind == "clone":  # EPERM if any namespace flag is in its first argument
                leaf += [(_JEQ_K, 0, 2, nr), (_LD_W_ABS, 0, 0, _ARG0),
                         (_JSET_K, "eperm", "allow", _CLONE_NEW_FLAGS)]
            elif kind == "ioctl":  # EPERM for TIOCSTI (its second argument)
                leaf += [(_JEQ_K, 0, 2, nr), (_LD_W_ABS, 0, 0, _ARG1),
                         (_JEQ_K, "eperm", "allow", _TIOCSTI)]
            else:
                leaf.append((_JEQ_K, kind, 0, nr))
        return [*leaf, ("ja", "allow", 0, 0)]
    middle = len(rules) // 2
    low, high = _search(rules[:middle]), _search(rules[middle:])
    return [(_JGE_K, len(low), 0, rules[middle][0]), *low, *high]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


_PROGRAM = b"".join(_insn(*i) for i in build_program())
# Built once, in the template: a child only points the kernel at it.
_BUFFER = ctypes.create_string_buffer(_PROGRAM, len(_PROGRAM))
_FPROG = _SockFprog(len(_PROGRAM) // 8, ctypes.addressof(_BUFFER))


def install() -> None:
    """Apply the filter to the calling thread (and all it will start); needs no_new_privs."""
    result = linux.prctl_pointer(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(_FPROG))
    if result != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_SECCOMP)")
