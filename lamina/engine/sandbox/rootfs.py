"""The base root every sandboxed environment starts from, built once by the template.

The template moves itself into its own mount namespace and pivots into a small tmpfs root:

    /usr /etc /lib* /bin /sbin   read-only binds of the host's (symlinks kept: Debian is usr-merged)
    <sys.base_prefix>            the interpreter, read-only at the same path (root's home is 0700)
    /var/runtime                 lamina's runtimes directory, read-only
    /dev                         null zero full random urandom tty, fd links, an empty shm dir
    /var/task /opt /tmp /proc    empty mountpoints, filled per environment by ``child.py``
    /.lamina/code, /.lamina/layers  the host's code (and layers) roots, read-only; each child binds
                                 its own function from there and then detaches /.lamina, so no
                                 other function's code stays visible.

Every child starts with a copy of this mount table (``unshare(CLONE_NEWNS)`` copies it), which
costs far less than building it per spawn. The root tmpfs is remounted read-only at the end: the
tmpfs is one superblock shared by all environments, so a writable root would be a channel
between them.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from lamina.engine.sandbox import linux

HIDDEN = "/.lamina"
CODE_MOUNT = HIDDEN + "/code"
LAYERS_MOUNT = HIDDEN + "/layers"
RUNTIME_MOUNT = "/var/runtime"
HOST_DIRS = ("usr", "etc", "bin", "lib", "lib32", "lib64", "libx32", "sbin")
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
DEV_LINKS = {"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1",
             "stderr": "/proc/self/fd/2"}
MOUNTPOINTS = ("var/task", "opt", "tmp", "proc", "dev/shm")


def build_and_pivot(*, code_root: str, layers_root: str | None, runtimes_dir: str,
                    base_prefix: str) -> None:
    """Enter a new mount namespace, build the base root and make it the process's ``/``.

    Order matters: ``/`` is made recursively private first, or (where the host's root is a
    shared mount) every mount below would propagate back to the host.
    """
    linux.unshare(linux.CLONE_NEWNS)
    linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)
    staging = tempfile.mkdtemp(prefix="lamina-root-")
    root = Path(staging)
    linux.mount("tmpfs", root, "tmpfs", linux.MS_NOSUID | linux.MS_NODEV, "mode=0755,size=1m")
    bound: list[str] = []
    for name in HOST_DIRS:
        host = Path("/", name)
        if host.is_symlink():
            os.symlink(os.readlink(host), root / name)
        elif host.is_dir():
            _bind_dir(host, root / name)
            bound.append(str(host))
    prefix = os.path.realpath(base_prefix)
    if not any(prefix == b or prefix.startswith(b + "/") for b in bound):
        _bind_dir(Path(prefix), root / prefix.lstrip("/"))
    _bind_dir(Path(runtimes_dir), root / RUNTIME_MOUNT.lstrip("/"))
    _make_dev(root / "dev")
    for name in MOUNTPOINTS:
        (root / name).mkdir(mode=0o755, parents=True, exist_ok=True)
    os.chmod(root / "tmp", 0o1777)
    hidden = root / HIDDEN.lstrip("/")
    hidden.mkdir(mode=0o700)
    linux.mount("tmpfs", hidden, "tmpfs", linux.MS_NOSUID | linux.MS_NODEV, "mode=0700,size=16k")
    _bind_dir(Path(code_root), root / CODE_MOUNT.lstrip("/"))
    if layers_root is not None:
        _bind_dir(Path(layers_root), root / LAYERS_MOUNT.lstrip("/"))
    _pivot(root, staging)


def _bind_dir(host: Path, target: Path) -> None:
    """Read-only recursive bind; parents made 0755 so an unprivileged uid can walk to it."""
    _makedirs_0755(target)
    linux.bind_readonly(host, target, recursive=True)
    _remount_submounts_readonly(target)


def _makedirs_0755(path: Path) -> None:
    missing = []
    while not path.exists():
        missing.append(path)
        path = path.parent
    for directory in reversed(missing):
        directory.mkdir(mode=0o755)
        os.chmod(directory, 0o755)  # mkdir's mode is filtered by the umask


def _remount_submounts_readonly(target: Path) -> None:
    """A recursive bind carries submounts with their own (maybe writable) flags: fix them."""
    prefix = str(target) + "/"
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    for point in points:
        if point.startswith(prefix):
            with contextlib.suppress(OSError):
                linux.mount(None, point, None, linux.MS_REMOUNT | linux.MS_BIND | linux.MS_RDONLY
                            | linux.MS_NOSUID | linux.MS_NODEV)


def _make_dev(dev: Path) -> None:
    dev.mkdir(mode=0o755)
    for name in DEVICES:
        host = Path("/dev", name)
        if not host.exists():
            continue
        (dev / name).touch(mode=0o666)
        # Device binds keep the flags of the host's /dev mount (no nodev), unlike the root tmpfs.
        linux.mount(host, dev / name, None, linux.MS_BIND)
    for name, target in DEV_LINKS.items():
        os.symlink(target, dev / name)


def _pivot(root: Path, staging: str) -> None:
    """Make ``root`` the process's ``/`` and drop every view of the host's tree.

    The staging directory can be removed once the tmpfs moved away from it (it is then a plain
    empty directory in the old root), so a template leaves nothing behind on the host.
    """
    old = root / ".old"
    old.mkdir(mode=0o700)
    os.chdir(root)
    linux.pivot_root(".", ".old")
    os.chdir("/")
    with contextlib.suppress(OSError):
        os.rmdir("/.old" + staging)
    linux.umount2("/.old", linux.MNT_DETACH)
    os.rmdir("/.old")
    linux.mount(None, "/", None, linux.MS_REMOUNT | linux.MS_BIND | linux.MS_RDONLY
                | linux.MS_NOSUID | linux.MS_NODEV)
