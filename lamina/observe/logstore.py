"""Function logs on disk, arranged as CloudWatch arranges them: a group per function, a stream
per execution environment.

Appends only touch memory; a flusher writes the batches out a few times a second, so nothing on
the invoke path waits for a disk. Each stream is one file of ``<epoch ms>\\t<message>`` lines
under ``<root>/<function>/``; retention removes whole streams by age and by the function's byte
budget, oldest first.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import heapq
import os
import shutil
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, unquote

FLUSH_INTERVAL_S = 0.2
RETENTION_INTERVAL_S = 60.0
_APPEND = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC


@dataclasses.dataclass(frozen=True)
class LogEvent:
    timestamp: int  # epoch milliseconds
    stream: str
    message: str


def _stream_file(stream: str) -> str:
    return quote(stream, safe="") + ".log"


def _stream_name(file_name: str) -> str:
    return unquote(file_name[: -len(".log")])


class LogStore:
    def __init__(self, root: Path, retention_days: int = 7,
                 max_bytes_per_function: int = 64 * 1024 * 1024) -> None:
        self.root = root
        self.retention_s = retention_days * 86400
        self.max_bytes = max_bytes_per_function
        self._pending: dict[tuple[str, str], list[str]] = defaultdict(list)
        self._task: asyncio.Task[None] | None = None
        self._waiters: list[asyncio.Future[None]] = []
        self._paths: dict[tuple[str, str], str] = {}
        root.mkdir(parents=True, exist_ok=True, mode=0o700)

    # writing --------------------------------------------------------------------------------

    def append(self, function: str, stream: str, message: str,
               timestamp: int | None = None) -> None:
        """Queue one line; it reaches the disk within ``FLUSH_INTERVAL_S``."""
        ts = int(time.time() * 1000) if timestamp is None else timestamp
        self._pending[(function, stream)].append(f"{ts}\t{message}\n")

    def append_lines(self, function: str, stream: str, messages: tuple[str | None, ...]) -> None:
        """Queue lines of one moment (END and REPORT), skipping ``None``: one clock read."""
        ts = int(time.time() * 1000)
        queued = self._pending[(function, stream)]
        for message in messages:
            if message is not None:
                queued.append(f"{ts}\t{message}\n")

    def flush(self) -> None:
        pending, self._pending = self._pending, defaultdict(list)
        for key, lines in pending.items():
            try:
                self._write(key, "".join(lines).encode("utf-8", "replace"))
            except OSError:
                continue  # a full disk must not take the server down; the lines are lost
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _write(self, key: tuple[str, str], data: bytes) -> None:
        """Append to a stream's file with bare system calls and a remembered path: a burst
        of new environments flushes hundreds of streams at once, on the event loop (the
        text-file layer and path objects were ~10% of the server's time in such a burst)."""
        path = self._paths.get(key)
        if path is None:
            if len(self._paths) >= 16384:
                self._paths.clear()
            path = self._paths[key] = \
                f"{self.root}/{quote(key[0], safe='')}/{_stream_file(key[1])}"
        try:
            fd = os.open(path, _APPEND, 0o600)
        except FileNotFoundError:  # the function's first lines, or its directory was removed
            os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
            fd = os.open(path, _APPEND, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)

    async def flushed(self) -> None:
        """Wait until what was appended so far is on disk (tests, `logs --follow`)."""
        if not self._pending:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        await waiter

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.flush()

    async def _run(self) -> None:
        last_retention = 0.0
        while True:
            await asyncio.sleep(FLUSH_INTERVAL_S)
            self.flush()
            now = time.monotonic()
            if now - last_retention > RETENTION_INTERVAL_S:
                last_retention = now
                await asyncio.to_thread(self.apply_retention)

    def delete_function(self, function: str) -> None:
        self._paths = {k: v for k, v in self._paths.items() if k[0] != function}
        self._pending = defaultdict(
            list, {k: v for k, v in self._pending.items() if k[0] != function})
        shutil.rmtree(self.root / quote(function, safe=""), ignore_errors=True)

    def apply_retention(self) -> None:
        cutoff = time.time() - self.retention_s
        for directory in self._function_dirs():
            files = []
            for path in directory.glob("*.log"):
                try:
                    stat = path.stat()
                except FileNotFoundError:
                    continue
                if stat.st_mtime < cutoff:
                    path.unlink(missing_ok=True)
                else:
                    files.append((stat.st_mtime, stat.st_size, path))
            total = sum(size for _, size, _ in files)
            for _, size, path in sorted(files):
                if total <= self.max_bytes:
                    break
                path.unlink(missing_ok=True)
                total -= size

    # reading --------------------------------------------------------------------------------

    def _function_dirs(self) -> Iterator[Path]:
        if self.root.exists():
            yield from (p for p in self.root.iterdir() if p.is_dir())

    def streams(self, function: str) -> list[str]:
        directory = self.root / quote(function, safe="")
        if not directory.exists():
            return []
        files = sorted(directory.glob("*.log"), key=lambda p: p.stat().st_mtime)
        return [_stream_name(p.name) for p in files]

    def read(self, function: str, start_ms: int = 0, limit: int = 10_000,
             stream: str | None = None) -> list[LogEvent]:
        """Events of a function at or after ``start_ms``, oldest first, across its streams."""
        self.flush()
        directory = self.root / quote(function, safe="")
        if not directory.exists():
            return []
        names = [_stream_file(stream)] if stream else [p.name for p in directory.glob("*.log")]
        per_stream = [self._read_stream(directory / name, start_ms) for name in names]
        events = list(heapq.merge(*per_stream, key=lambda e: e.timestamp))
        return events[-limit:] if len(events) > limit else events

    @staticmethod
    def _read_stream(path: Path, start_ms: int) -> list[LogEvent]:
        stream = _stream_name(path.name)
        events = []
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                for line in handle:
                    ts_text, _, message = line.rstrip("\n").partition("\t")
                    try:
                        ts = int(ts_text)
                    except ValueError:
                        continue
                    if ts >= start_ms:
                        events.append(LogEvent(ts, stream, message))
        except FileNotFoundError:
            return []
        return events

    def size_on_disk(self) -> int:
        total = 0
        for directory in self._function_dirs():
            for path in directory.glob("*.log"):
                with contextlib.suppress(FileNotFoundError):
                    total += os.path.getsize(path)
        return total
