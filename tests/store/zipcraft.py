"""A tiny raw zip writer for hand-built (and deliberately broken) archives.

``zipfile`` refuses or repairs much of what an attacker would send (it cuts names at NUL, cannot
lie about sizes, cannot make entries share bytes), so the tests write the bytes themselves.
"""

from __future__ import annotations

import dataclasses
import stat
import struct
import zlib
from collections.abc import Sequence

_LOCAL = struct.Struct("<4sHHHHHIIIHH")
_CENTRAL = struct.Struct("<4sBBHHHHHIIIHHHHHII")
_END = struct.Struct("<4sHHHHIIH")
_DATE_1980_01_01 = (0 << 9) | (1 << 5) | 1


@dataclasses.dataclass
class Entry:
    name: str | bytes
    content: bytes = b""  # the uncompressed bytes (ignored when ``raw`` is given)
    unix_mode: int | None = stat.S_IFREG | 0o644  # None: no unix mode (as Windows tools write)
    dos_attr: int = 0
    deflate: bool = True
    raw: bytes | None = None  # the compressed bytes as they go in the file
    crc: int | None = None
    declared_size: int | None = None  # what the headers claim the uncompressed size is
    flags: int = 0


def file(name: str | bytes, content: bytes = b"", mode: int = 0o644) -> Entry:
    return Entry(name, content, stat.S_IFREG | mode)


def directory(name: str) -> Entry:
    return Entry(name, b"", stat.S_IFDIR | 0o755, dos_attr=0x10, deflate=False)


def symlink(name: str, target: str) -> Entry:
    return Entry(name, target.encode(), stat.S_IFLNK | 0o777, deflate=False)


def deflated(data: bytes) -> bytes:
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


def build(entries: list[Entry], aliases: Sequence[tuple[str, int]] = ()) -> bytes:
    """A zip of ``entries``; each ``(name, i)`` in ``aliases`` adds a central directory record
    named ``name`` pointing at entry ``i``'s bytes (entries that overlap)."""
    out = bytearray()
    central: list[bytes] = []
    records: list[tuple[bytes, int, int, int, int, int, int, int]] = []
    for entry in entries:
        name = entry.name.encode() if isinstance(entry.name, str) else entry.name
        raw = entry.raw
        if raw is None:
            raw = deflated(entry.content) if entry.deflate else entry.content
        crc = zlib.crc32(entry.content) if entry.crc is None else entry.crc
        size = len(entry.content) if entry.declared_size is None else entry.declared_size
        method = 8 if (entry.deflate or entry.raw is not None) else 0
        offset = len(out)
        flags = entry.flags | 0x800  # names are UTF-8
        out += _LOCAL.pack(
            b"PK\x03\x04", 20, flags, method, 0, _DATE_1980_01_01, crc, len(raw), size, len(name), 0
        )
        out += name + raw
        external = entry.dos_attr | ((entry.unix_mode or 0) << 16)
        system = 0 if entry.unix_mode is None else 3
        records.append((name, system, flags, method, crc, len(raw), size, offset))
        central.append(_central(name, system, flags, method, crc, len(raw), size, external, offset))
    for alias, index in aliases:
        _, system, flags, method, crc, csize, size, offset = records[index]
        external = (stat.S_IFREG | 0o644) << 16
        central.append(
            _central(alias.encode(), system, flags, method, crc, csize, size, external, offset)
        )
    start = len(out)
    for record in central:
        out += record
    out += _END.pack(b"PK\x05\x06", 0, 0, len(central), len(central), len(out) - start, start, 0)
    return bytes(out)


def _central(
    name: bytes,
    system: int,
    flags: int,
    method: int,
    crc: int,
    csize: int,
    size: int,
    external: int,
    offset: int,
) -> bytes:
    return (
        _CENTRAL.pack(
            b"PK\x01\x02",
            20,
            system,
            20,
            flags,
            method,
            0,
            _DATE_1980_01_01,
            crc,
            csize,
            size,
            len(name),
            0,
            0,
            0,
            0,
            external,
            offset,
        )
        + name
    )


def claim_entry_count(data: bytes, count: int) -> bytes:
    """``data`` with a zip64 end record in front of its end record, declaring ``count`` entries
    (what a zip of that many entries would say)."""
    end = data.rindex(b"PK\x05\x06")
    body, eocd = data[:end], bytearray(data[end:])
    _, _, _, _, _, cd_size, cd_offset, _ = _END.unpack(bytes(eocd[: _END.size]))
    zip64_end = struct.pack(
        "<4sQHHIIQQQQ", b"PK\x06\x06", 44, 45, 45, 0, 0, count, count, cd_size, cd_offset
    )
    locator = struct.pack("<4sIQI", b"PK\x06\x07", 0, len(body), 1)
    struct.pack_into("<HH", eocd, 8, 0xFFFF, 0xFFFF)
    return body + zip64_end + locator + bytes(eocd)
