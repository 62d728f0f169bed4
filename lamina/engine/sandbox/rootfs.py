"""The base root every sandboxed environment starts from, built once by the template.

The template moves itself into its own mount namespace and pivots into a small tmpfs root:

    /usr /lib* /bin /sbin        read-only binds of the host's (symlinks kept: Debian is usr-merged)
    /etc                         a minimal copy: name resolution, time zone, the dynamic loader's
                                 cache, CA certificates, alternatives; users and groups written
                                 anew (root, nobody). No shadow, gshadow, ssh keys, machine-id.
    <sys.base_prefix>            the interpreter, read-only at the same path (root's home is 0700)
    /var/runtime                 lamina's runtimes directory, read-only
    /dev                         null zero full random urandom tty, fd links, an empty shm dir
    /var/task /opt /tmp /proc    empty mountpoints, filled per environment by ``child.py``
    /.lamina/code, /.lamina/layers  the host's code (and layers) roots, read-only; each child binds
                                 its own function from there and then detaches /.lamina, so no
                                 other function's code stays visible.
    /.lamina/net                 (when given) the launcher's directory of per-environment Unix
                                 sockets: a VPC environment binds its own at ``NET_SOCKET``.

Every child starts with a copy of this mount table (``unshare(CLONE_NEWNS)`` copies it), which
costs far less than building it per spawn. The root tmpfs is remounted read-only at the end: the
tmpfs is one superblock shared by all environments, so a writable root would be a channel
between them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from lamina.engine.sandbox import linux

HIDDEN = "/.lamina"
CODE_MOUNT = HIDDEN + "/code"
LAYERS_MOUNT = HIDDEN + "/layers"
NET_MOUNT = HIDDEN + "/net"
NET_SOCKET = "/dev/lamina-net"  # a VPC environment's one way out: lamina's APIs
RUNTIME_MOUNT = "/var/runtime"
HOST_DIRS = ("usr", "bin", "lib", "lib32", "lib64", "libx32", "sbin")
# What of the host's /etc an environment sees (copied, symlinks as symlinks).
ETC_KEEP = ("hosts", "host.conf", "resolv.conf", "nsswitch.conf", "gai.conf", "localtime",
            "timezone", "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "ssl", "ca-certificates",
            "ca-certificates.conf", "alternatives", "os-release", "debian_version", "mime.types",
            "protocols", "services", "networks", "locale.alias", "magic", "magic.mime",
            "inputrc", "crypto-policies", "pki")
ETC_PASSWD = ("root:x:0:0:root:/root:/usr/sbin/nologin\n"
              "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n")
ETC_GROUP = "root:x:0:\nnogroup:x:65534:\n"
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
DEV_LINKS = {"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1",
             "stderr": "/proc/self/fd/2"}
MOUNTPOINTS = ("var/task", "opt", "tmp", "proc", "dev/shm")


def build_and_pivot(*, code_root: str, layers_root: str | None, runtimes_dir: str,
                    base_prefix: str, net_root: str | None = None) -> None:
    """Enter a new mount namespace, build the base root and make it the process's ``/``.

    Order matters: ``/`` is made recursively private first, or (where the host's root is a
    shared mount) every mount below would propagate back to the host.
    """
    linux.unshare(linux.CLONE_NEWNS)
    linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)
    staging = tempfile.mkdtemp(prefix="lamina-root-")
    root = Path(staging)
    linux.mount("tmpfs", root, "tmpfs", linux.MS_NOSUID | linux.MS_NODEV, "mode=0755,size=8m")
    bound: list[str] = []
    for name in HOST_DIRS:
        host = Path("/", name)
        if host.is_symlink():
            os.symlink(os.readlink(host), root / name)
        elif host.is_dir():
            _bind_dir(host, root / name)
            bound.append(str(host))
    _make_etc(root / "etc")
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
    if net_root is not None:
        _bind_dir(Path(net_root), root / NET_MOUNT.lstrip("/"))
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


def _make_etc(etc: Path) -> None:
    """The allow-listed part of the host's /etc, plus users and groups of our own."""
    etc.mkdir(mode=0o755)
    for name in ETC_KEEP:
        host = Path("/etc", name)
        target = etc / name
        with contextlib.suppress(OSError):
            if host.is_symlink():
                os.symlink(os.readlink(host), target)
            elif host.is_dir():
                shutil.copytree(host, target, symlinks=True,
                                ignore=lambda _d, names: [n for n in names
                                                          if n == "private" or n.endswith("~")])
            elif host.is_file() and os.stat(host).st_mode & 0o004:  # world-readable only
                shutil.copy2(host, target)
    (etc / "passwd").write_text(ETC_PASSWD)
    (etc / "group").write_text(ETC_GROUP)
    for path in (etc / "passwd", etc / "group"):
        os.chmod(path, 0o644)


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
    (dev / NET_SOCKET.rsplit("/", 1)[1]).touch(mode=0o600)  # a mountpoint, bound per VPC env


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
