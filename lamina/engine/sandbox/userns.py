"""The user namespace of a SnapStart snapshot: how its ids map to the host's, and who maps them.

A snapshot process runs the function's Init (user code) and then forks environments, which
need new mount, pid, ipc and uts namespaces. Those take ``CAP_SYS_ADMIN``, and the snapshot
must never hold it over the host. A user namespace of its own gives it exactly that power over
namespaces it owns and nothing over the host's.

Id layout: each snapshot gets a block of ``BLOCK`` host ids from the launcher (``IdBlocks``),
starting at ``U``; the same numbers serve as uids and gids:

====================  ===========  ==========================================================
inside the namespace  on the host  who
====================  ===========  ==========================================================
0                     U            the snapshot's own processes (namespace root: mounts,
                                   unshare, setns inside; no capability on the host)
``FUNCTION_UID`` 993  U + 1        user code of every environment forked from the snapshot
                                   (993 is the uid of ``sbx_user1051``, Lambda's own)
====================  ===========  ==========================================================

Every other id shows as the overflow id (65534). All environments of one snapshot share one
function uid: they are one function version (one trust domain), each in its own pid, mount,
ipc and uts namespace and cgroup, so the uid separates them from nothing they could reach.

A process cannot write a map with more than its own id into its own namespace: the writer needs
``CAP_SETUID``/``CAP_SETGID`` over the *parent* namespace. So the snapshot asks the server (host
root, the only party that has both that capability and a ``/proc`` showing host pids) over its
control socket, and the server calls ``write_maps`` with the pid the kernel attached to the
request (``SO_PASSCRED``). The requester blocks until the answer, so the pid is still its own.
"""

from __future__ import annotations

import os
import select

CLONE_NEWUSER = 0x10000000
FUNCTION_UID = 993
BLOCK = 2  # host ids per snapshot: U (namespace root) and U + 1 (the function)


def id_map(host_base: int) -> str:
    """The text of ``uid_map`` (and ``gid_map``) for a snapshot whose block starts at
    ``host_base``: ``inside outside count`` per line."""
    return f"0 {host_base} 1\n{FUNCTION_UID} {host_base + 1} 1\n"


def write_maps(pid: int, host_base: int) -> None:
    """Map the user namespace of ``pid`` (the server side; needs host root).

    ``gid_map`` can be written without first denying ``setgroups``, because the writer has
    ``CAP_SETGID`` over the parent namespace; the snapshot's children can then clear their
    supplementary groups inside. Raises ``OSError`` when the process is gone or already mapped.
    """
    pidfd = os.pidfd_open(pid)
    try:
        text = id_map(host_base).encode()
        for name in ("uid_map", "gid_map"):
            fd = os.open(f"/proc/{pid}/{name}", os.O_WRONLY)
            try:
                os.write(fd, text)
            finally:
                os.close(fd)
        # If the pid had been recycled between the request and pidfd_open, the process the
        # pidfd names would not be the requester; a live pidfd now means the files we wrote
        # belonged to the process that was alive when we opened it.
        if _exited(pidfd):
            raise ProcessLookupError(f"process {pid} exited while being mapped")
    finally:
        os.close(pidfd)


def is_mapped(host_base: int, path: str = "/proc/self/uid_map") -> bool:
    """Whether the caller's namespace carries exactly the map of ``host_base`` (child side)."""
    try:
        with open(path) as f:
            lines = [line.split() for line in f if line.strip()]
    except OSError:
        return False
    expected = [line.split() for line in id_map(host_base).splitlines()]
    return lines == expected


def _exited(pidfd: int) -> bool:
    return bool(select.select([pidfd], [], [], 0)[0])


class IdBlocks:
    """Host id blocks for snapshots: ``base + BLOCK * k``, the lowest free ``k`` first.

    ``base`` must keep clear of the uids of cgroup slots (``uid_base + index``), which grow by
    one per slot ever made: the default leaves room for tens of millions of them.
    """

    def __init__(self, base: int = 100_000_000) -> None:
        self.base = base
        self._used: set[int] = set()

    def take(self) -> int:
        k = 0
        while k in self._used:
            k += 1
        self._used.add(k)
        return self.base + BLOCK * k

    def give_back(self, host_base: int) -> None:
        self._used.discard((host_base - self.base) // BLOCK)
