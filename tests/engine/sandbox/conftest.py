"""Fixtures for the sandbox tests: real templates, real namespaces and cgroups (root only).

One ``NamespaceLauncher`` serves the whole session on one event loop (starting a template
costs ~0.2 s); tests that break a launcher on purpose make their own with ``runner.launcher``.
The Python entry is ``sandbox_probe_entry`` (next to this file), not lamina's bootstrap: it
does what ``TEST_ACTION`` in its environment says.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Awaitable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from lamina.engine.sandbox.api import ExitStatus, PythonEntry, SandboxSpec
from lamina.engine.sandbox.launcher import NamespaceLauncher, UnsandboxedLauncher

T = TypeVar("T")
HERE = Path(__file__).parent
ENTRY = "sandbox_probe_entry"
BASE_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "TEST_ACTION": "report"}


class Layout:
    """A data dir as the server has it: code of two functions, layers, the runtimes dir."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "data"
        self.code_root = self.data / "code"
        self.layers_root = self.data / "layers"
        self.fn_a = self.code_root / "fn-a"
        self.fn_b = self.code_root / "fn-b"
        self.layer = self.layers_root / "merged-1"
        self.runtime_dir = root / "runtimes" / "python"
        for directory in (self.fn_a, self.fn_b, self.layer / "python", self.runtime_dir):
            directory.mkdir(parents=True)
        (self.fn_a / "hello.txt").write_text("hello from a\n")
        (self.fn_a / "notexec.sh").write_text("#!/bin/sh\necho no\n")
        (self.fn_a / "noformat").write_bytes(b"\x00\x01garbage")
        os.chmod(self.fn_a / "noformat", 0o755)
        (self.fn_b / "secret.txt").write_text("secret of b\n")
        (self.layer / "python" / "layer_mod.py").write_text("VALUE = 42\n")
        (self.data / "credentials").write_text("root secret\n")
        shutil.copy(HERE / f"{ENTRY}.py", self.runtime_dir / f"{ENTRY}.py")
        for path in (root, self.data, self.code_root, self.layers_root):
            os.chmod(path, 0o711)


class Runner:
    """Runs coroutines on one loop shared by the session's launchers."""

    def __init__(self, layout: Layout) -> None:
        self.loop = asyncio.new_event_loop()
        self.layout = layout
        self.launchers: list[Any] = []

    def run(self, awaitable: Awaitable[T], timeout: float = 30.0) -> T:
        return self.loop.run_until_complete(asyncio.wait_for(awaitable, timeout))

    def launcher(self, cls: type = NamespaceLauncher, **kwargs: Any) -> Any:
        layout = self.layout
        if cls is NamespaceLauncher:
            kwargs.setdefault("layers_root", layout.layers_root)
        launcher = cls(layout.code_root, layout.runtime_dir, ENTRY, **kwargs)
        self.run(launcher.start())
        self.launchers.append(launcher)
        return launcher

    def spec(self, *, code_dir: Path | None = None, environ: dict[str, str] | None = None,
             **kwargs: Any) -> SandboxSpec:
        kwargs.setdefault("entry", PythonEntry())
        kwargs.setdefault("memory_mb", 128)
        return SandboxSpec(env_id="test", code_dir=code_dir or self.layout.fn_a,
                           environ=dict(BASE_ENV, **(environ or {})), **kwargs)

    async def execute(self, launcher: Any, spec: SandboxSpec) -> tuple[ExitStatus, str, Any]:
        """Spawn with a fresh output pipe, wait for the end; (status, output, process)."""
        read_fd, write_fd = os.pipe()
        spec = SandboxSpec(**{**spec.__dict__, "output_fd": write_fd})
        try:
            process = await launcher.spawn(spec)
        finally:
            os.close(write_fd)
        chunks: list[bytes] = []
        done = asyncio.Event()

        def readable() -> None:
            data = os.read(read_fd, 65536)
            if data:
                chunks.append(data)
            else:
                self.loop.remove_reader(read_fd)
                done.set()

        self.loop.add_reader(read_fd, readable)
        try:
            status = await process.wait()
            await asyncio.wait_for(done.wait(), 10)
        finally:
            self.loop.remove_reader(read_fd)
            os.close(read_fd)
        return status, b"".join(chunks).decode(errors="replace"), process

    def close(self) -> None:
        for launcher in self.launchers:
            self.run(launcher.close())
        self.loop.close()


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "the sandbox needs root"
    return None


@pytest.fixture(scope="session")
def layout(tmp_path_factory: pytest.TempPathFactory) -> Layout:
    return Layout(tmp_path_factory.mktemp("sandbox"))


@pytest.fixture(scope="session")
def runner(layout: Layout) -> Iterator[Runner]:
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    runner = Runner(layout)
    yield runner
    runner.close()


@pytest.fixture(scope="session")
def ns(runner: Runner, layout: Layout) -> NamespaceLauncher:
    probe = NamespaceLauncher(layout.code_root, layout.runtime_dir, ENTRY)
    reason = probe.unavailable_reason()
    if reason:
        pytest.skip(reason)
    return runner.launcher(NamespaceLauncher)


@pytest.fixture(scope="session")
def unsandboxed(runner: Runner) -> UnsandboxedLauncher:
    return runner.launcher(UnsandboxedLauncher)
