"""The runtimes lamina runs, and how an environment of each one starts.

A runtime is supported only where this host can really run it: python3.11 runs in the
interpreter that runs lamina's template (3.11), node needs a node 20 binary, ``provided.*``
needs nothing but the function's own ``bootstrap``. Anything else is refused at create time
with the list of what is supported, never accepted and left to fail at the first invoke.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
from functools import cache
from pathlib import Path

from lamina.engine.sandbox.api import ExecEntry, PythonEntry
from lamina.errors import InvalidParameterValue

RUNTIMES_DIR = Path(__file__).resolve().parent.parent / "runtimes"


@dataclasses.dataclass(frozen=True)
class Runtime:
    name: str
    family: str  # python | node | provided
    execution_env: str | None  # AWS_EXECUTION_ENV, absent on provided runtimes

    def entry(self, runtime_dir: str, task_root: str) -> PythonEntry | ExecEntry:
        """How to start the runtime; paths are as seen from inside the environment."""
        if self.family == "python":
            return PythonEntry()
        if self.family == "node":
            return ExecEntry((node_binary() or "node", f"{runtime_dir}/node/index.mjs"), task_root)
        return ExecEntry((f"{task_root}/bootstrap",), task_root)


RUNTIMES: dict[str, Runtime] = {
    "python3.11": Runtime("python3.11", "python", "AWS_Lambda_python3.11"),
    "nodejs20.x": Runtime("nodejs20.x", "node", "AWS_Lambda_nodejs20.x"),
    "provided.al2023": Runtime("provided.al2023", "provided", None),
    "provided.al2": Runtime("provided.al2", "provided", None),
}


@cache
def node_binary() -> str | None:
    """The host's node 20, which must lie in a directory the sandbox shows (``/usr``)."""
    for candidate in ("/usr/bin/node", "/usr/local/bin/node", shutil.which("node")):
        if candidate and os.access(candidate, os.X_OK):
            try:
                out = subprocess.run([candidate, "--version"], capture_output=True, text=True,
                                     timeout=10, check=False).stdout.strip()
            except (OSError, subprocess.SubprocessError):
                continue
            if out.startswith("v20."):
                return candidate
    return None


def unavailable_reason(runtime: Runtime) -> str | None:
    if runtime.family == "node" and node_binary() is None:
        return "no node 20 binary on this host (looked for /usr/bin/node and node on PATH)"
    return None


def resolve_runtime(name: str) -> Runtime:
    """The runtime by name, or the error a CreateFunction with it gets."""
    runtime = RUNTIMES.get(name)
    if runtime is None:
        supported = ", ".join(sorted(RUNTIMES))
        raise InvalidParameterValue(
            f"The runtime parameter of {name} is not supported by lamina. "
            f"Supported runtimes: {supported}.")
    reason = unavailable_reason(runtime)
    if reason is not None:
        raise InvalidParameterValue(f"The runtime {name} cannot run on this host: {reason}.")
    return runtime
