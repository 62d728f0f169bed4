"""Deployment packages: Lambda's rules, hostile zips, safe unpacking, deterministic packing."""

from __future__ import annotations

import io
import os
import stat
import threading
import zipfile
import zlib
from pathlib import Path

import pytest
import zipcraft as z

from lamina.store.archives import (
    EMPTY_ZIP,
    INVALID_ZIP,
    MAX_ENTRIES,
    ArchiveError,
    ArchiveInfo,
    inspect_archive,
    pack_directory,
    unpack,
)

HELLO = b"def handler(event, context):\n    return 'hello'\n"


def _unpack_bytes(tmp_path: Path, data: bytes, **kwargs: int) -> Path:
    archive = tmp_path / "code.zip"
    archive.write_bytes(data)
    dest = tmp_path / "unpacked" / "tree"
    unpack(archive, dest, **kwargs)
    return dest


def _rejected(tmp_path: Path, data: bytes, match: str, **kwargs: int) -> None:
    """Both the upload check and the unpacker refuse ``data``, and the unpacker leaves no trace."""
    with pytest.raises(ArchiveError, match=match):
        inspect_archive(data, **kwargs)
    with pytest.raises(ArchiveError, match=match):
        _unpack_bytes(tmp_path, data, **kwargs)
    assert not (tmp_path / "unpacked" / "tree").exists()
    assert list((tmp_path / "unpacked").iterdir()) == []  # no temporary directory left behind


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


# -- accepted packages ----------------------------------------------------------------------------


def test_a_plain_package_is_inspected_and_unpacked(tmp_path: Path) -> None:
    data = z.build([z.file("app.py", HELLO), z.directory("lib/"), z.file("lib/util.py", b"x = 1")])
    assert inspect_archive(data) == ArchiveInfo(unzipped_size=len(HELLO) + 5, file_count=2)
    tree = _unpack_bytes(tmp_path, data)
    assert (tree / "app.py").read_bytes() == HELLO
    assert (tree / "lib" / "util.py").read_bytes() == b"x = 1"


def test_zipfile_made_archives_with_implicit_dirs_and_dot_slash_names(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("./index.mjs", b"export const handler = async () => 1;")
        zf.writestr("node_modules/pkg/deep/index.js", b"module.exports = 1;")
    tree = _unpack_bytes(tmp_path, buf.getvalue())
    assert (tree / "index.mjs").is_file()
    assert _mode(tree / "node_modules" / "pkg" / "deep") == 0o755


def test_streamed_zips_with_data_descriptors_and_a_prefix(tmp_path: Path) -> None:
    """Zips written to a pipe (Java, Go, ``zip -``) put sizes after the data; self-extracting
    ones start with a stub. Both are ordinary packages."""

    class Pipe(io.RawIOBase):
        def __init__(self) -> None:
            self.written = bytearray()

        def writable(self) -> bool:
            return True

        def write(self, b: bytes) -> int:  # type: ignore[override]
            self.written += b
            return len(b)

    pipe = Pipe()
    with zipfile.ZipFile(pipe, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("app.py", HELLO)
        with zf.open("lib/big.py", "w") as f:
            f.write(b"# padding\n" * 10_000)
    data = b"#!/bin/sh\necho stub\n" + bytes(pipe.written)
    assert all(i.flag_bits & 0x8 for i in zipfile.ZipFile(io.BytesIO(data)).infolist())
    assert inspect_archive(data).file_count == 2
    assert (_unpack_bytes(tmp_path, data) / "lib" / "big.py").stat().st_size == 100_000


def test_modes_are_0644_and_0755_with_exec_bits_kept(tmp_path: Path) -> None:
    data = z.build(
        [
            z.file("bootstrap", b"#!/bin/sh\n", mode=0o755),
            z.file("owner-exec.sh", b"", mode=0o700),  # any execute bit makes it executable
            z.file("private.txt", b"", mode=0o600),  # readable by the function's uid all the same
            z.file("weird", b"", mode=0o7777),  # no setuid, setgid or sticky bit survives
            z.Entry("dir/", unix_mode=stat.S_IFDIR | 0o700, deflate=False),
            z.file("dir/data.json", b"{}", mode=0o666),
        ]
    )
    old = os.umask(0o077)
    try:
        tree = _unpack_bytes(tmp_path, data)
    finally:
        os.umask(old)
    assert _mode(tree / "bootstrap") == 0o755
    assert _mode(tree / "owner-exec.sh") == 0o755
    assert _mode(tree / "private.txt") == 0o644
    assert _mode(tree / "weird") == 0o755
    assert _mode(tree / "dir") == 0o755
    assert _mode(tree / "dir" / "data.json") == 0o644
    assert _mode(tree) == 0o755


def test_windows_made_zip_gets_default_modes(tmp_path: Path) -> None:
    data = z.build(
        [
            z.Entry("lib/", unix_mode=None, dos_attr=0x10, deflate=False),
            z.Entry("lib/handler.py", HELLO, unix_mode=None, dos_attr=0x20),
            z.Entry("bootstrap", b"#!/bin/sh\n", unix_mode=None, dos_attr=0x20),
        ]
    )
    tree = _unpack_bytes(tmp_path, data)
    assert _mode(tree / "lib") == 0o755
    assert _mode(tree / "lib" / "handler.py") == 0o644
    assert _mode(tree / "bootstrap") == 0o644  # as on Lambda: no unix mode, no exec bit


def test_symlinks_inside_the_package_are_kept(tmp_path: Path) -> None:
    data = z.build(
        [
            z.file("lib/v1/mod.py", b"V = 1"),
            z.symlink("lib/current", "v1"),
            z.symlink("mod.py", "lib/current/mod.py"),  # through another symlink, still inside
            z.symlink("dangling", "not/there"),  # inside, if pointing at nothing
            z.symlink("self", "."),
        ]
    )
    assert inspect_archive(data).file_count == 5
    tree = _unpack_bytes(tmp_path, data)
    assert os.readlink(tree / "lib" / "current") == "v1"
    assert (tree / "mod.py").read_bytes() == b"V = 1"
    assert (tree / "dangling").is_symlink()


def test_a_zip_of_directories_only_is_accepted(tmp_path: Path) -> None:
    data = z.build([z.directory("empty/")])
    assert inspect_archive(data) == ArchiveInfo(0, 0)
    assert (_unpack_bytes(tmp_path, data) / "empty").is_dir()


# -- refused packages -----------------------------------------------------------------------------


@pytest.mark.parametrize("data", [b"hello, not a zip", b"PK\x03\x04" + b"\x00" * 40])
def test_not_a_zip_gets_aws_wording(tmp_path: Path, data: bytes) -> None:
    with pytest.raises(ArchiveError) as caught:
        inspect_archive(data)
    assert caught.value.message == INVALID_ZIP
    _rejected(tmp_path, data, "Could not unzip")


def test_truncated_zip_is_invalid(tmp_path: Path) -> None:
    data = z.build([z.file("app.py", HELLO * 100)])
    _rejected(tmp_path, data[: len(data) // 2], "Could not unzip")


def test_corrupt_data_is_invalid(tmp_path: Path) -> None:
    good = z.build([z.file("app.py", HELLO * 100)])
    at = 30 + len("app.py") + 5
    data = good[:at] + bytes(b ^ 0xFF for b in good[at : at + 20]) + good[at + 20 :]
    inspect_archive(data)  # the central directory is fine: only the bytes tell
    with pytest.raises(ArchiveError, match="Could not unzip"):
        _unpack_bytes(tmp_path, data)
    assert list((tmp_path / "unpacked").iterdir()) == []


def test_empty_zip_is_refused_as_aws_does(tmp_path: Path) -> None:
    empty = io.BytesIO()
    zipfile.ZipFile(empty, "w").close()
    assert len(empty.getvalue()) == 22
    _rejected(tmp_path, empty.getvalue(), EMPTY_ZIP)
    with pytest.raises(ArchiveError, match=EMPTY_ZIP):
        inspect_archive(b"")


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("../x", r"outside the package"),
        ("lib/../../x", r"outside the package"),
        ("a/b/../../../etc/cron.d/x", r"outside the package"),
        ("/etc/x", r"absolute path"),
        ("C:/Windows/x", r"absolute path"),
        ("lib\\handler.py", r"backslashes"),
        ("..\\..\\x", r"backslashes"),
        ("x" * 256, r"too long"),
    ],
)
def test_entry_names_that_escape_or_mislead_are_refused(
    tmp_path: Path, name: str, match: str
) -> None:
    _rejected(tmp_path, z.build([z.file("ok.py", HELLO), z.file(name, b"pwned")]), match)


def test_nul_in_an_entry_name_is_refused(tmp_path: Path) -> None:
    _rejected(tmp_path, z.build([z.file(b"handler.py\x00.txt", HELLO)]), "NUL")


@pytest.mark.parametrize(
    ("links", "match"),
    [
        ([("passwd", "/etc/passwd")], "absolute"),
        ([("a", "../../x")], "outside"),
        ([("lib/a", "../../x")], "outside"),
        ([("lib/up", ".."), ("esc", "lib/up/..")], "outside"),  # escapes only through a link
        ([("b", ".."), ("a", "b/..")], "outside"),
        ([("a", "b"), ("b", "a")], "loop"),
    ],
)
def test_symlinks_that_leave_the_package_are_refused(
    tmp_path: Path, links: list[tuple[str, str]], match: str
) -> None:
    data = z.build([z.file("ok.py", HELLO)] + [z.symlink(n, t) for n, t in links])
    _rejected(tmp_path, data, match)


def test_nothing_may_lie_beneath_a_symlink(tmp_path: Path) -> None:
    # The classic two-step escape: a link to a directory, then a file written "through" it.
    data = z.build([z.file("sub/ok.py", HELLO), z.symlink("l", "sub"), z.file("l/x.py", b"1")])
    _rejected(tmp_path, data, "beneath 'l', which is a symlink")


def test_an_entry_beneath_a_file_or_twice_is_refused(tmp_path: Path) -> None:
    _rejected(tmp_path, z.build([z.file("a", b"1"), z.file("a/b", b"2")]), "beneath")
    _rejected(tmp_path, z.build([z.file("a", b"1"), z.file("a", b"2")]), "more than once")
    _rejected(tmp_path, z.build([z.file("a", b"1"), z.directory("a/")]), "more than once")


def test_devices_and_fifos_are_refused(tmp_path: Path) -> None:
    fifo = z.Entry("pipe", b"", stat.S_IFIFO | 0o644)
    _rejected(tmp_path, z.build([z.file("ok.py", HELLO), fifo]), "device, FIFO or socket")


def test_encrypted_entries_are_refused(tmp_path: Path) -> None:
    encrypted = z.Entry("secret.py", HELLO, flags=0x1)
    _rejected(tmp_path, z.build([encrypted]), "Could not unzip")


def test_unzipped_size_limit_uses_aws_wording(tmp_path: Path) -> None:
    data = z.build([z.file("a.bin", os.urandom(600)), z.file("b.bin", os.urandom(600))])
    _rejected(tmp_path, data, "Unzipped size must be smaller than 1000 bytes", max_unzipped=1000)
    assert inspect_archive(data, max_unzipped=1200).unzipped_size == 1200


# -- zip bombs ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gigabyte_of_zeros() -> bytes:
    """A real zip of 1 GiB of zeros in about 1 MB: each 1 MiB of zeros deflates to the same
    bytes after a full flush, so the stream is built by repetition instead of compression."""
    chunk = bytes(1 << 20)
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    piece = c.compress(chunk) + c.flush(zlib.Z_FULL_FLUSH)
    stream = piece * 1024 + c.flush()
    crc = 0
    for _ in range(1024):
        crc = zlib.crc32(chunk, crc)
    return z.build([z.Entry("zeros.bin", raw=stream, crc=crc, declared_size=1 << 30)])


def test_a_gigabyte_bomb_is_refused_before_inflating(
    tmp_path: Path, gigabyte_of_zeros: bytes
) -> None:
    assert len(gigabyte_of_zeros) < 2 << 20
    _rejected(tmp_path, gigabyte_of_zeros, "Unzipped size must be smaller than 262144000 bytes")


def test_an_entry_compressed_beyond_reason_is_refused(tmp_path: Path) -> None:
    data = z.build([z.file("app.py", HELLO), z.file("zeros.bin", bytes(50 << 20))])
    _rejected(tmp_path, data, "compressed more than 200:1")


def test_many_small_bombs_are_refused_by_the_total_ratio(tmp_path: Path) -> None:
    data = z.build([z.file(f"z{i}.bin", bytes(512 << 10)) for i in range(40)])
    _rejected(tmp_path, data, "zip is compressed more than 100:1")


def test_entries_sharing_compressed_bytes_are_refused(tmp_path: Path) -> None:
    """The non-recursive bomb: many names, one kernel of compressed data."""
    data = z.build([z.file("kernel.bin", b"A" * 4096)], aliases=[("k1", 0), ("k2", 0)])
    _rejected(tmp_path, data, "overlaps another")


def test_an_absurd_entry_count_is_refused_before_parsing(tmp_path: Path) -> None:
    data = z.claim_entry_count(z.build([z.file("app.py", HELLO)]), 10_000_000)
    _rejected(tmp_path, data, f"at most {MAX_ENTRIES}")


@pytest.mark.parametrize("declared", [10, 5000])
def test_declared_sizes_that_lie_are_caught_while_extracting(tmp_path: Path, declared: int) -> None:
    real = os.urandom(1000)  # incompressible, so no ratio guard gets in the way
    liar = z.Entry("liar.bin", real, declared_size=declared)
    data = z.build([z.file("app.py", HELLO), liar])
    assert inspect_archive(data).unzipped_size == len(HELLO) + declared  # headers are consistent
    with pytest.raises(ArchiveError, match="Could not unzip"):
        _unpack_bytes(tmp_path, data)
    assert list((tmp_path / "unpacked").iterdir()) == []


def test_extraction_counts_real_bytes_not_declared_ones(tmp_path: Path) -> None:
    """Even if every header were believed, extraction stops at the limit by its own count."""
    from lamina.store.archives import _extract, _open_zip, _plan

    data = z.build([z.file("a.bin", os.urandom(3000)), z.file("b.bin", os.urandom(3000))])
    f = io.BytesIO(data)
    with _open_zip(f) as zf:
        entries = _plan(f, zf, max_unzipped=10_000)
        with pytest.raises(ArchiveError, match="smaller than 4000 bytes"):
            _extract(zf, entries, tmp_path, max_unzipped=4000)
    assert (tmp_path / "a.bin").stat().st_size == 3000
    assert (tmp_path / "b.bin").stat().st_size < 1001


# -- unpacking once -------------------------------------------------------------------------------


def test_unpack_into_an_existing_tree_does_nothing(tmp_path: Path) -> None:
    tree = _unpack_bytes(tmp_path, z.build([z.file("app.py", HELLO)]))
    (tmp_path / "code.zip").unlink()  # not even read
    unpack(tmp_path / "code.zip", tree)
    assert (tree / "app.py").read_bytes() == HELLO


def test_concurrent_unpackers_of_one_tree_all_succeed(tmp_path: Path) -> None:
    archive = tmp_path / "code.zip"
    archive.write_bytes(z.build([z.file(f"m{i}.py", HELLO * 50) for i in range(200)]))
    dest = tmp_path / "trees" / "abc"
    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def run() -> None:
        barrier.wait()
        try:
            unpack(archive, dest)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert sorted(p.name for p in dest.iterdir()) == sorted(f"m{i}.py" for i in range(200))
    assert [p.name for p in (tmp_path / "trees").iterdir()] == ["abc"]


# -- packing --------------------------------------------------------------------------------------


def _source_tree(root: Path) -> Path:
    (root / "pkg" / "sub").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / "app.py").write_bytes(HELLO)
    (root / "bootstrap").write_bytes(b"#!/bin/sh\nexec python3 app.py\n")
    (root / "bootstrap").chmod(0o750)
    (root / "pkg" / "__init__.py").write_bytes(b"")
    (root / "pkg" / "sub" / "data.json").write_bytes(b'{"a": 1}')
    (root / "pkg" / "sub" / "data.json").chmod(0o600)
    (root / "latest").symlink_to("pkg/sub")
    return root


def test_pack_is_deterministic(tmp_path: Path) -> None:
    src = _source_tree(tmp_path / "src")
    first = pack_directory(src)
    for path in src.rglob("*"):
        os.utime(path, (1_000_000, 1_000_000), follow_symlinks=False)
    assert pack_directory(src) == first
    names = zipfile.ZipFile(io.BytesIO(first)).namelist()
    assert names == [
        "app.py",
        "bootstrap",
        "empty/",
        "latest",
        "pkg/",
        "pkg/__init__.py",
        "pkg/sub/",
        "pkg/sub/data.json",
    ]
    assert {i.date_time for i in zipfile.ZipFile(io.BytesIO(first)).infolist()} == {
        (1980, 1, 1, 0, 0, 0)
    }


def test_pack_then_unpack_gives_the_tree_back(tmp_path: Path) -> None:
    src = _source_tree(tmp_path / "src")
    data = pack_directory(src)
    assert inspect_archive(data).file_count == 5
    tree = _unpack_bytes(tmp_path, data)
    assert (tree / "app.py").read_bytes() == HELLO
    assert _mode(tree / "bootstrap") == 0o755
    assert _mode(tree / "pkg" / "sub" / "data.json") == 0o644
    assert os.readlink(tree / "latest") == "pkg/sub"
    assert (tree / "empty").is_dir()


@pytest.mark.parametrize("target", ["/etc/passwd", "../../outside", "sub/../../../outside"])
def test_pack_refuses_links_that_would_not_unpack(tmp_path: Path, target: str) -> None:
    src = _source_tree(tmp_path / "src")
    (src / "pkg" / "bad").symlink_to(target)
    with pytest.raises(ArchiveError, match="symlink"):
        pack_directory(src)


def test_pack_refuses_fifos(tmp_path: Path) -> None:
    src = _source_tree(tmp_path / "src")
    os.mkfifo(src / "pipe")
    with pytest.raises(ArchiveError, match="not a file"):
        pack_directory(src)
