"""The environments' seccomp filter, run by a small classic-BPF interpreter here over every
call number, both ABIs' markers and the arguments it looks at, against the rules it must
implement (``seccomp.py``'s docstring). No kernel needed: this checks the program itself."""

from __future__ import annotations

import errno
import struct

from lamina.engine.sandbox import seccomp

ALLOW = seccomp._RET_ALLOW
EPERM = seccomp._RET_ERRNO | errno.EPERM
ENOSYS = seccomp._RET_ERRNO | errno.ENOSYS
KILL = seccomp._RET_KILL_PROCESS
X86_64 = seccomp._AUDIT_ARCH_X86_64


def run(program: list[tuple[int, int, int, int]], nr: int, arch: int = X86_64,
        arg0: int = 0, arg1: int = 0) -> int:
    """Execute ``program`` on one ``struct seccomp_data`` (classic BPF, the subset used)."""
    data = struct.pack("<IIQQQQQQQ", nr, arch, 0, arg0, arg1, 0, 0, 0, 0)
    pc, acc, steps = 0, 0, 0
    while True:
        code, jt, jf, k = program[pc]
        steps += 1
        assert steps <= len(program), "a loop"
        if code == seccomp._LD_W_ABS:
            acc = struct.unpack_from("<I", data, k)[0]
            pc += 1
        elif code == seccomp._RET_K:
            return k
        elif code == seccomp._JA:
            pc += 1 + k
        else:
            taken = {seccomp._JEQ_K: acc == k, seccomp._JGE_K: acc >= k,
                     seccomp._JSET_K: bool(acc & k)}[code]
            pc += 1 + (jt if taken else jf)


def expected(nr: int, arch: int = X86_64, arg0: int = 0, arg1: int = 0) -> int:
    if arch != X86_64 or nr & seccomp._X32_BIT:
        return KILL
    if nr in seccomp.REFUSED_X86_64.values():
        return EPERM
    if nr == seccomp._CLONE3:
        return ENOSYS
    if nr == seccomp._CLONE and arg0 & seccomp._CLONE_NEW_FLAGS:
        return EPERM
    if nr == seccomp._IOCTL and arg1 == seccomp._TIOCSTI:
        return EPERM
    return ALLOW


def test_every_call_number_gets_its_rule() -> None:
    program = seccomp.build_program()
    for nr in range(1024):
        assert run(program, nr) == expected(nr), nr
    for nr in (seccomp._X32_BIT, seccomp._X32_BIT + 1, 0xFFFFFFFF):
        assert run(program, nr) == KILL


def test_other_abis_are_killed() -> None:
    program = seccomp.build_program()
    for arch in (0x40000003, 0xC00000B7, 0):  # i386, aarch64, nonsense
        assert run(program, 0, arch) == KILL
        assert run(program, seccomp._CLONE, arch) == KILL


def test_clone_and_ioctl_look_at_their_arguments() -> None:
    program = seccomp.build_program()
    flags = [1 << bit for bit in range(32)] + [0, 0x11, seccomp._CLONE_NEW_FLAGS]
    for value in flags:
        assert run(program, seccomp._CLONE, arg0=value) == expected(seccomp._CLONE, arg0=value)
        assert run(program, seccomp._IOCTL, arg1=value) == expected(seccomp._IOCTL, arg1=value)
    assert run(program, seccomp._IOCTL, arg1=seccomp._TIOCSTI) == EPERM
    assert run(program, seccomp._IOCTL, arg0=seccomp._TIOCSTI) == ALLOW


def test_the_search_is_short() -> None:
    program = seccomp.build_program()
    assert len(program) < 256  # every conditional jump fits in its 8-bit offset
    longest = max(_steps(program, nr) for nr in range(1024))
    assert longest <= 14


def _steps(program: list[tuple[int, int, int, int]], nr: int) -> int:
    count = 0
    original = program.__getitem__

    class Counting(list):  # type: ignore[type-arg]
        def __getitem__(self, index):  # type: ignore[no-untyped-def]
            nonlocal count
            count += 1
            return original(index)

    run(Counting(program), nr)
    return count
