"""Deployment packages: Lambda's rules for a code zip, a safe unpacker, a deterministic packer.

A package comes from a user and is unpacked by lamina (root) into a tree that functions see
read-only at ``/var/task``. So a package is judged entirely before anything is written:

* ``inspect_archive`` validates an upload from its central directory (no extraction): paths must
  stay inside the tree, symlinks too (resolved through each other, as the kernel would), sizes
  must stay under Lambda's limit, and zip bombs (extreme compression ratios, entries that share
  compressed bytes, absurd entry counts) are refused.
* ``unpack`` re-runs the same checks, then extracts without trusting any declared size (it counts
  the bytes it really writes), into a temporary directory renamed into place at the end: a tree
  exists whole or not at all.

Empty zips are refused as AWS refuses them ("Uploaded file must be a non-empty zip"); a zip
holding only directories is accepted, as it is not empty.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import io
import os
import re
import shutil
import stat
import struct
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Literal

from lamina.store.api import StoreError

MAX_UNZIPPED = 262_144_000  # Lambda's limit on a function's unzipped code (and layers)
MAX_ENTRIES = 100_000  # a large node_modules tree has tens of thousands of files
MAX_ENTRY_RATIO = 200  # uncompressed / compressed, for one entry ...
MAX_TOTAL_RATIO = 100  # ... and for the whole archive; deflate tops out near 1,030
RATIO_FLOOR = 1 << 20  # entries (and totals) smaller than this are never called bombs
MAX_PATH_BYTES = 1024
MAX_NAME_BYTES = 255
MAX_LINK_TARGET_BYTES = 1024
MAX_LINK_HOPS = 40  # as Linux's ELOOP limit

INVALID_ZIP = "Could not unzip uploaded file. Please check your file, then try to upload again."
EMPTY_ZIP = "Uploaded file must be a non-empty zip"

_FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest a zip can say: packs don't depend on mtimes
_MSDOS_DIR = 0x10
_ENCRYPTED = 0x1
_SUPPORTED_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
_LOCAL_HEADER = struct.Struct("<4s22xHH")  # signature, then name and extra field lengths
_DRIVE = re.compile(r"[A-Za-z]:")


class ArchiveError(StoreError):
    """A package breaks a rule; ``message`` is meant for the user (the API answers
    ``InvalidParameterValueException`` with it)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclasses.dataclass(frozen=True)
class ArchiveInfo:
    unzipped_size: int  # bytes of all files (and symlink targets) once unpacked
    file_count: int  # regular files and symlinks; directories are not counted


@dataclasses.dataclass(frozen=True)
class _Entry:
    info: zipfile.ZipInfo
    path: str  # normalised: relative, "/"-separated, no "." or empty components
    kind: Literal["file", "dir", "link"]
    mode: int  # permission bits it gets on disk
    target: str = ""  # for links


def inspect_archive(data: bytes, *, max_unzipped: int = MAX_UNZIPPED) -> ArchiveInfo:
    """Validate an uploaded package without extracting it; raises ``ArchiveError``."""
    if not data:
        raise ArchiveError(EMPTY_ZIP)
    f = io.BytesIO(data)
    with _open_zip(f) as zf:
        entries = _plan(f, zf, max_unzipped)
    files = [e for e in entries if e.kind != "dir"]
    return ArchiveInfo(sum(e.info.file_size for e in files), len(files))


def unpack(archive: Path, dest: Path, *, max_unzipped: int = MAX_UNZIPPED) -> None:
    """Extract ``archive`` to ``dest`` (dirs 0755, files 0644 or 0755), once.

    If ``dest`` exists there is nothing to do: trees are only ever renamed into place complete,
    so an existing one is a finished one. Two processes unpacking the same ``dest`` both succeed;
    the second rename loses and its copy is thrown away. The tree is not fsynced: it is a cache
    of the archive, safe against a crash of the process (the rename comes last), and after a
    power cut it can be deleted and unpacked again.
    """
    dest = Path(dest)
    if os.path.lexists(dest):
        return
    dest.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.unpack-", dir=dest.parent))
    try:
        with open(archive, "rb") as f, _open_zip(f) as zf:
            _extract(zf, _plan(f, zf, max_unzipped), tmp, max_unzipped)
        os.chmod(tmp, 0o755)
        try:
            os.rename(tmp, dest)
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST) or not dest.exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # gone already after a successful rename


def pack_directory(src: Path) -> bytes:
    """A deterministic zip of ``src``: sorted entries, fixed timestamps, modes reduced to
    0644/0755 (the execute bit is all that survives), symlinks kept as symlinks.

    Symlinks must be relative and point inside ``src`` (``unpack`` would refuse anything else);
    sockets, FIFOs and devices are refused.
    """
    src = Path(src)
    if not src.is_dir():
        raise NotADirectoryError(src)
    buf = io.BytesIO()
    links: dict[str, str] = {}
    with zipfile.ZipFile(buf, "w") as zf:
        for rel, path in _walk_sorted(src):
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                target = os.readlink(path)
                if os.path.isabs(target):
                    raise ArchiveError(f"{rel} is a symlink to an absolute path ({target})")
                links[rel] = target
                _add(zf, rel, stat.S_IFLNK | 0o777, os.fsencode(target))
            elif stat.S_ISDIR(st.st_mode):
                _add(zf, rel + "/", stat.S_IFDIR | 0o755, b"")
            elif stat.S_ISREG(st.st_mode):
                mode = 0o755 if st.st_mode & 0o111 else 0o644
                _add(zf, rel, stat.S_IFREG | mode, path.read_bytes())
            else:
                raise ArchiveError(f"{rel} is not a file, directory or symlink")
    for rel, target in links.items():  # the same rule unpack applies, so a pack always unpacks
        _resolve_inside(rel, target, links)
    return buf.getvalue()


# -- validation ---------------------------------------------------------------------------------


@contextlib.contextmanager
def _open_zip(f: IO[bytes]) -> Iterator[zipfile.ZipFile]:
    """The zip in ``f``; anything ``zipfile`` raises inside the block becomes ``ArchiveError``."""
    declared = _declared_entry_count(f)
    if declared is not None and declared > MAX_ENTRIES:
        raise ArchiveError(f"The zip has {declared} entries; at most {MAX_ENTRIES} are allowed")
    with _as_archive_error(), zipfile.ZipFile(f) as zf:
        yield zf


def _plan(f: IO[bytes], zf: zipfile.ZipFile, max_unzipped: int) -> list[_Entry]:
    """Every check, from the central directory (and symlink targets, which are tiny)."""
    infos = zf.infolist()
    if not infos:
        raise ArchiveError(EMPTY_ZIP)
    if len(infos) > MAX_ENTRIES:
        raise ArchiveError(f"The zip has {len(infos)} entries; at most {MAX_ENTRIES} are allowed")
    _check_no_overlap(f, infos)
    entries = [e for e in (_classify(zf, info) for info in infos) if e is not None]
    _check_sizes(entries, max_unzipped)
    _check_tree(entries)
    return entries


def _classify(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> _Entry | None:
    raw = info.orig_filename  # zipfile cuts ``filename`` at a NUL; the original keeps it
    if "\x00" in raw:
        raise ArchiveError(f"The zip entry {raw!r} has a NUL byte in its name")
    if "\\" in raw:
        raise ArchiveError(
            f"The zip entry {raw!r} uses backslashes as path separators; "
            "re-create the zip with a tool that writes forward slashes"
        )
    if raw.startswith("/") or _DRIVE.match(raw):
        raise ArchiveError(f"The zip entry {raw!r} has an absolute path")
    parts = [p for p in raw.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ArchiveError(f"The zip entry {raw!r} points outside the package ('..')")
    path = "/".join(parts)
    if len(path.encode()) > MAX_PATH_BYTES or any(len(p.encode()) > MAX_NAME_BYTES for p in parts):
        raise ArchiveError(f"The zip entry {raw[:80]!r}... has a name too long")
    if info.flag_bits & _ENCRYPTED or info.compress_type not in _SUPPORTED_METHODS:
        raise ArchiveError(INVALID_ZIP)

    unix_mode = info.external_attr >> 16  # 0 in zips made on Windows
    kind = stat.S_IFMT(unix_mode)
    if kind == stat.S_IFLNK:
        if not path or raw.endswith("/"):
            raise ArchiveError(f"The zip entry {raw!r} is a symlink named like a directory")
        return _Entry(info, path, "link", 0o777, _link_target(zf, info))
    if kind == stat.S_IFDIR or raw.endswith("/") or info.external_attr & _MSDOS_DIR:
        return _Entry(info, path, "dir", 0o755) if path else None  # "./" is the root itself
    if kind not in (0, stat.S_IFREG):
        raise ArchiveError(f"The zip entry {raw!r} is a device, FIFO or socket")
    if not path:
        raise ArchiveError(f"The zip entry {raw!r} has no name")
    return _Entry(info, path, "file", 0o755 if unix_mode & 0o111 else 0o644)


def _link_target(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> str:
    if info.file_size > MAX_LINK_TARGET_BYTES:
        raise ArchiveError(f"The symlink {info.filename!r} has a target too long")
    with zf.open(info) as f:
        raw = f.read(MAX_LINK_TARGET_BYTES + 1)
    if not raw or len(raw) > MAX_LINK_TARGET_BYTES or b"\x00" in raw:
        raise ArchiveError(f"The symlink {info.filename!r} has an invalid target")
    target = os.fsdecode(raw)
    if target.startswith("/"):
        raise ArchiveError(f"The symlink {info.filename!r} points to an absolute path ({target})")
    return target


def _check_no_overlap(f: IO[bytes], infos: list[zipfile.ZipInfo]) -> None:
    """Refuse entries whose compressed bytes overlap: the trick by which a small zip makes many
    entries each inflate the same kernel (the "non-recursive zip bomb")."""
    f.seek(0, os.SEEK_END)
    end_of_data = f.tell()
    ordered = sorted(infos, key=lambda i: i.header_offset)
    for info, following in zip(ordered, [*ordered[1:], None], strict=True):
        f.seek(info.header_offset)
        header = f.read(_LOCAL_HEADER.size)
        if len(header) < _LOCAL_HEADER.size:
            raise ArchiveError(INVALID_ZIP)
        signature, name_len, extra_len = _LOCAL_HEADER.unpack(header)
        if signature != b"PK\x03\x04":
            raise ArchiveError(INVALID_ZIP)
        data_end = info.header_offset + _LOCAL_HEADER.size + name_len + extra_len
        data_end += info.compress_size
        limit = end_of_data if following is None else following.header_offset
        if data_end > limit:
            raise ArchiveError(f"The zip entry {info.filename!r} overlaps another (a zip bomb)")


def _check_sizes(entries: list[_Entry], max_unzipped: int) -> None:
    sized = [e.info for e in entries if e.kind != "dir"]
    total = sum(i.file_size for i in sized)
    if total > max_unzipped:
        raise ArchiveError(f"Unzipped size must be smaller than {max_unzipped} bytes")
    for info in sized:
        if _bomb_ratio(info.file_size, info.compress_size, MAX_ENTRY_RATIO):
            raise ArchiveError(
                f"The zip entry {info.filename!r} is compressed more than "
                f"{MAX_ENTRY_RATIO}:1 (a zip bomb?)"
            )
    if _bomb_ratio(total, sum(i.compress_size for i in sized), MAX_TOTAL_RATIO):
        raise ArchiveError(f"The zip is compressed more than {MAX_TOTAL_RATIO}:1 (a zip bomb?)")


def _bomb_ratio(size: int, compressed: int, ratio: int) -> bool:
    return size >= RATIO_FLOOR and size > ratio * max(compressed, 1)


def _check_tree(entries: list[_Entry]) -> None:
    """One kind per path, nothing beneath a file or a symlink, every symlink resolving inside."""
    by_path: dict[str, _Entry] = {}
    for entry in entries:
        seen = by_path.get(entry.path)
        if seen is not None and not (seen.kind == entry.kind == "dir"):
            raise ArchiveError(f"The zip has {entry.path!r} more than once")
        by_path[entry.path] = entry
    for entry in entries:
        parts = entry.path.split("/")
        for depth in range(1, len(parts)):
            parent = by_path.get("/".join(parts[:depth]))
            if parent is not None and parent.kind != "dir":
                raise ArchiveError(
                    f"The zip entry {entry.path!r} lies beneath {parent.path!r}, "
                    f"which is a {'symlink' if parent.kind == 'link' else 'file'}"
                )
    links = {e.path: e.target for e in entries if e.kind == "link"}
    for path, target in links.items():
        _resolve_inside(path, target, links)


def _resolve_inside(path: str, target: str, links: dict[str, str]) -> None:
    """Follow ``path -> target`` through the archive's own symlinks, component by component as
    the kernel does, and refuse if it ever climbs above the package root. A dangling target
    inside the package is allowed."""
    where = path.split("/")[:-1]
    pending = target.split("/")
    hops = 0
    while pending:
        part = pending.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            if not where:
                raise ArchiveError(f"The symlink {path!r} -> {target!r} points outside the package")
            where.pop()
            continue
        where.append(part)
        inner = links.get("/".join(where))
        if inner is not None:
            hops += 1
            if hops > MAX_LINK_HOPS:
                raise ArchiveError(f"The symlink {path!r} is part of a loop")
            where.pop()
            pending = inner.split("/") + pending


def _declared_entry_count(f: IO[bytes]) -> int | None:
    """The entry count the end-of-central-directory record declares, read before ``zipfile``
    builds an object per entry (which a zip of a million empty entries would make costly)."""
    f.seek(0, os.SEEK_END)
    size = f.tell()
    tail_start = max(0, size - (22 + 0xFFFF))
    f.seek(tail_start)
    tail = f.read()
    pos = tail.rfind(b"PK\x05\x06")
    if pos < 0 or len(tail) - pos < 22:
        return None  # zipfile will explain
    (count,) = struct.unpack_from("<H", tail, pos + 10)
    locator = pos - 20
    if count == 0xFFFF and locator >= 0 and tail[locator : locator + 4] == b"PK\x06\x07":
        (record_offset,) = struct.unpack_from("<Q", tail, locator + 8)
        f.seek(record_offset)
        record = f.read(40)
        if len(record) == 40 and record[:4] == b"PK\x06\x06":
            (count,) = struct.unpack_from("<Q", record, 32)
    return count


@contextlib.contextmanager
def _as_archive_error() -> Iterator[None]:
    """What ``zipfile`` and the decompressors raise on a broken or lying archive, as the one
    message AWS gives for it."""
    try:
        yield
    except (
        zipfile.BadZipFile,
        zlib.error,
        EOFError,
        NotImplementedError,
        struct.error,
        ValueError,
        RuntimeError,
    ) as exc:
        raise ArchiveError(INVALID_ZIP) from exc


# -- extraction ---------------------------------------------------------------------------------


def _extract(zf: zipfile.ZipFile, entries: list[_Entry], root: Path, max_unzipped: int) -> None:
    """Write ``entries`` under ``root``. Symlinks come last, so no file is ever written while a
    symlink exists in the tree; together with ``_check_tree`` no write can leave ``root``."""
    written = 0
    for entry in entries:
        path = root.joinpath(*entry.path.split("/"))
        if entry.kind == "dir":
            _make_dirs(root, path)
        elif entry.kind == "file":
            _make_dirs(root, path.parent)
            written = _write_file(zf, entry, path, written, max_unzipped)
    for entry in entries:
        if entry.kind == "link":
            path = root.joinpath(*entry.path.split("/"))
            _make_dirs(root, path.parent)
            os.symlink(entry.target, path)


def _write_file(
    zf: zipfile.ZipFile, entry: _Entry, path: Path, written: int, max_unzipped: int
) -> int:
    """Stream one entry to ``path``; returns the running total of real bytes written."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    size = 0
    with os.fdopen(os.open(path, flags, 0o600), "wb") as out, zf.open(entry.info) as src:
        while chunk := src.read(1 << 20):
            size += len(chunk)  # the real bytes: declared sizes are not trusted
            if written + size > max_unzipped:
                raise ArchiveError(f"Unzipped size must be smaller than {max_unzipped} bytes")
            out.write(chunk)
        os.fchmod(out.fileno(), entry.mode)  # explicit, whatever the umask
    if size != entry.info.file_size:
        # zipfile stops at the declared size when there is more (the CRC then fails), but a
        # stream that ends early passes its CRC: a short entry is a lying archive as well.
        raise ArchiveError(INVALID_ZIP)
    return written + size


def _make_dirs(root: Path, path: Path) -> None:
    missing = []
    while path != root and not path.is_dir():
        missing.append(path)
        path = path.parent
    for directory in reversed(missing):
        directory.mkdir(mode=0o755)
        os.chmod(directory, 0o755)


# -- packing ------------------------------------------------------------------------------------


def _walk_sorted(src: Path) -> Iterator[tuple[str, Path]]:
    """Every path under ``src`` (not following symlinks), parents before children, by name."""
    for child in sorted(src.iterdir(), key=lambda p: p.name):
        yield child.name, child
        if child.is_dir() and not child.is_symlink():
            for rel, path in _walk_sorted(child):
                yield f"{child.name}/{rel}", path


def _add(zf: zipfile.ZipFile, name: str, mode: int, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
    info.create_system = 3  # unix, so readers honour the mode bits below
    info.external_attr = mode << 16 | (_MSDOS_DIR if stat.S_ISDIR(mode) else 0)
    info.compress_type = zipfile.ZIP_DEFLATED if stat.S_ISREG(mode) else zipfile.ZIP_STORED
    zf.writestr(info, data)
