"""The contract between the scheduler and whatever starts sandboxed execution environments.

A ``Launcher`` turns a ``SandboxSpec`` into a running process tree that is isolated as Lambda's
execution environments are (see ``docs/design.md``, "Threat containment"). Guarantees:

* ``spawn`` returns once the environment's first process exists and sits in its cgroup; the
  runtime inside then connects to ``AWS_LAMBDA_RUNTIME_API`` (from ``spec.environ``) by itself.
* ``SandboxProcess.wait`` resolves exactly once, when every process of the environment is gone.
* ``kill`` ends the whole environment (all its processes), is idempotent, and is harmless after
  the environment exited.
* ``close`` ends every environment and template it started; after it returns no process the
  launcher created is left on the host.
* A launcher never raises out of ``spawn`` for a reason that concerns only the function (bad
  bootstrap, missing interpreter inside the sandbox): the process starts and exits with a status,
  which the scheduler reports as ``Runtime.ExitError`` / ``Runtime.InvalidEntrypoint``.
  ``SpawnFailed`` means the platform could not start it (template died, cgroup trouble).

SnapStart (``snapshot``): a ``Snapshot`` is a sandboxed process that has run one function
version's Init once and forks that version's environments from itself. Guarantees:

* ``snapshot`` returns once the Init (module code, then the before-snapshot hooks) succeeded;
  it raises ``SnapshotFailed`` when the Init failed, overran ``timeout`` or the process died,
  and then nothing of it is left running.
* ``Snapshot.spawn`` is ``spawn`` for an environment forked from the snapshot, sandboxed as
  any other (own cgroup slot, namespaces, private ``/tmp``, unprivileged uid, seccomp); its
  ``SandboxProcess`` behaves as any other. ``SpawnFailed`` once the snapshot is dead.
* ``alive`` turns false for good when the snapshot process is gone (its environments die
  with it); ``close`` ends it and every environment forked from it, and is idempotent.
"""

from __future__ import annotations

import dataclasses
import signal
from collections.abc import Mapping
from pathlib import Path
from typing import Literal, Protocol


class SpawnFailed(Exception):
    """The platform could not start an environment; the invoke gets a platform error."""


class SnapshotFailed(Exception):
    """A snapshot could not be made: the function's Init failed or overran, or the platform
    could not run it. ``error_type``/``message``/``payload`` are what an Init failure of an
    on-demand environment would report (AWS's error shape, as the runtime sent it)."""

    def __init__(self, error_type: str, message: str, payload: bytes | None = None,
                 timed_out: bool = False) -> None:
        super().__init__(f"{error_type}: {message}")
        self.error_type = error_type
        self.message = message
        self.payload = payload
        self.timed_out = timed_out


@dataclasses.dataclass(frozen=True)
class PythonEntry:
    """Run lamina's lean Python bootstrap inside a fork of the pre-initialised template; no exec.

    The handler comes from ``_HANDLER`` in the spec's environment.
    """


@dataclasses.dataclass(frozen=True)
class ExecEntry:
    """Execute a program inside the sandbox (a ``provided`` bootstrap, node with our bootstrap)."""

    argv: tuple[str, ...]
    cwd: str = "/var/task"


@dataclasses.dataclass(frozen=True)
class SandboxSpec:
    env_id: str
    code_dir: Path  # host path of the unpacked package; read-only at /var/task
    entry: PythonEntry | ExecEntry
    environ: Mapping[str, str]
    memory_mb: int
    ephemeral_mb: int = 512
    output_fd: int = -1  # write end of a pipe: the environment's stdout and stderr
    opt_dir: Path | None = None  # host path of the merged layers; read-only at /opt
    pids_max: int = 1024
    network: Literal["host", "none"] = "host"
    # External extensions: file names in /opt/extensions, started (with extension_environ)
    # before the entry, as Lambda starts them before the runtime.
    extensions: tuple[str, ...] = ()
    extension_environ: Mapping[str, str] | None = None


@dataclasses.dataclass(frozen=True)
class ExitStatus:
    code: int | None = None
    signal: int | None = None
    oom_killed: bool = False

    def describe(self) -> str:
        """The words Lambda uses after "Runtime exited with error: " (Go's signal names)."""
        if self.signal is not None:
            name = _SIGNAL_WORDS.get(self.signal)
            if name is None:
                try:
                    name = signal.Signals(self.signal).name.lower()
                except ValueError:
                    name = str(self.signal)
            return f"signal: {name}"
        return f"exit status {self.code}"


_SIGNAL_WORDS = {
    signal.SIGKILL: "killed", signal.SIGSEGV: "segmentation fault", signal.SIGABRT: "aborted",
    signal.SIGTERM: "terminated", signal.SIGBUS: "bus error", signal.SIGILL: "illegal instruction",
    signal.SIGFPE: "floating point exception", signal.SIGHUP: "hangup",
    signal.SIGINT: "interrupt", signal.SIGQUIT: "quit", signal.SIGPIPE: "broken pipe",
    signal.SIGTRAP: "trace/breakpoint trap", signal.SIGALRM: "alarm clock",
}


class SandboxProcess(Protocol):
    pid: int  # the environment's first process, as the host sees it

    async def wait(self) -> ExitStatus: ...

    def kill(self) -> None: ...

    def max_memory_used_mb(self) -> int:
        """Peak memory of the environment so far (cgroup peak), in MB; 0 if unknown."""


class Snapshot(Protocol):
    @property
    def alive(self) -> bool: ...

    async def spawn(self, spec: SandboxSpec) -> SandboxProcess: ...

    async def close(self) -> None: ...


class Launcher(Protocol):
    def unavailable_reason(self) -> str | None:
        """Why this host cannot sandbox (``None`` when it can); checked before ``start``."""

    def stats(self) -> dict[str, int]:
        """Counters for ``/_lamina/stats`` (spares parked and wanted)."""

    async def start(self) -> None: ...

    async def spawn(self, spec: SandboxSpec) -> SandboxProcess: ...

    async def snapshot(self, spec: SandboxSpec, timeout: float) -> Snapshot:
        """Run the Init of ``spec`` (a ``PythonEntry``) once in a new snapshot process."""

    async def close(self) -> None: ...
