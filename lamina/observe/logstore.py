"""Function logs on disk, arranged as CloudWatch arranges them: a group per function, a stream
per execution environment.

Appends only touch memory; a flusher writes the batches out a few times a second, so nothing on the
invoke path waits for a disk. The flusher runs on the event loop, where appending to a file costs a
few microseconds, but making a new one does not run there: on this host's ext4 it cost ~0.4 ms (the
inode allocator skips recently deleted inodes one block read at a time), ~80 ms of the loop's time
in a burst of 200 new environments. A thread makes each new stream's (empty) file, and its lines
wait for the next flush. Only the making leaves the loop: handing whole batches to a thread cost
~5 µs per warm invoke, its Python holding the GIL the loop waits for. Each stream is one file of
``<epoch ms>\\t<message>`` lines under ``<root>/<function>/``; retention removes whole streams by
age and by the function's byte budget, oldest first.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import heapq
import os
import shutil
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
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


def _open_append(path: str) -> int:
    """A stream's file opened to append, made (with its directory) if it is not there: the
    function's first lines, or its directory was removed."""
    try:
        return os.open(path, _APPEND, 0o600)
    except FileNotFoundError:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        return os.open(path, _APPEND, 0o600)


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
        # The path of each stream whose file this store made or wrote: only their lines are
        # written by the periodic flush; the others' files are made off the loop (``_making``).
        # The lock keeps delete_function and a making apart.
        self._paths: dict[tuple[str, str], str] = {}
        self._making: set[tuple[str, str]] = set()
        self._maker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lamina-log-files")
        self._lock = threading.Lock()
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
        """Write everything queued, making the files of new streams here (``read``, ``close``,
        tests)."""
        self._write_pending(make_here=True)

    def _write_pending(self, make_here: bool) -> None:
        """Write the queued lines of each stream whose file is made; ask the maker for the
        others (``make_here``: make them on this thread), whose lines stay queued, in order.
        Waiters are told once nothing is left."""
        pending = self._pending
        for key in list(pending):
            if key not in self._paths and not make_here:
                if key not in self._making:
                    self._making.add(key)
                    self._maker.submit(self._make, key)
                continue
            lines = pending.pop(key)
            try:
                self._write(key, "".join(lines).encode("utf-8", "replace"))
            except OSError:
                continue  # a full disk must not take the server down; the lines are lost
        if pending:
            return
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _make(self, key: tuple[str, str]) -> None:
        """The maker thread: create ``key``'s file (empty), unless its function was deleted
        meanwhile. A failure is left for the loop's write to meet, which makes it again."""
        with self._lock:
            if key not in self._making:
                return
            path = self._path_of(key)
            with contextlib.suppress(OSError):
                os.close(_open_append(path))
            self._paths[key] = path
            self._making.discard(key)

    def _path_of(self, key: tuple[str, str]) -> str:
        return f"{self.root}/{quote(key[0], safe='')}/{_stream_file(key[1])}"

    def _write(self, key: tuple[str, str], data: bytes) -> None:
        """Append to a stream's file with bare system calls and a remembered path: a burst
        of new environments flushes hundreds of streams at once, on the event loop (the
        text-file layer and path objects were ~10% of the server's time in such a burst)."""
        path = self._paths.get(key)
        if path is None:
            if len(self._paths) >= 16384:
                self._paths.clear()
            path = self._paths[key] = self._path_of(key)
        fd = _open_append(path)
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
        self._maker.shutdown(wait=True)

    async def _run(self) -> None:
        last_retention = 0.0
        while True:
            await asyncio.sleep(FLUSH_INTERVAL_S)
            # Someone waiting for the lines (the logs API) does not wait for the maker too.
            self._write_pending(make_here=bool(self._waiters))
            now = time.monotonic()
            if now - last_retention > RETENTION_INTERVAL_S:
                last_retention = now
                await asyncio.to_thread(self.apply_retention)

    def delete_function(self, function: str) -> None:
        with self._lock:  # a making in progress ends first; one to come finds nothing to do
            self._making = {k for k in self._making if k[0] != function}
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
