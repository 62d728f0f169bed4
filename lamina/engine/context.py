"""What every environment of one engine shares: the launcher, the log store, the identity of the
deployment (region, account, endpoint) and the way paths look from inside a sandbox.

``sandbox_spec`` serves anything that runs a function version in a sandbox (``SpecSubject``):
an environment, and a SnapStart snapshot (``snapshots.py``), whose Init runs with the same
environment as an environment's would, under a log stream and credentials of its own.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Protocol

from lamina.engine.api import FunctionTarget
from lamina.engine.deadlines import Deadlines
from lamina.engine.envvars import build_environment
from lamina.engine.extensions import MAX_EXTENSIONS
from lamina.engine.runtimes import RUNTIMES, RUNTIMES_DIR
from lamina.engine.sandbox.api import ExecEntry, Launcher, SandboxSpec
from lamina.identity.directory import Directory
from lamina.identity.execution import issue_for_function
from lamina.identity.sessions import SessionRegistry
from lamina.observe.logstore import LogStore


class SpecSubject(Protocol):
    """What ``sandbox_spec`` reads of the one it builds a spec for (and where it leaves the
    key of the credentials it issued, to be revoked when that one ends)."""

    id: str
    target: FunctionTarget
    log_stream: str
    initialization_type: str
    session_key: str


@dataclasses.dataclass
class EngineContext:
    launcher: Launcher
    logs: LogStore
    sessions: SessionRegistry
    region: str
    account_id: str
    endpoint_url: str
    sandboxed: bool = True
    directory: Directory | None = None  # IAM roles, for each environment's credentials
    deadlines: Deadlines = dataclasses.field(default_factory=Deadlines)  # invocation timeouts

    def paths(self, env: SpecSubject) -> tuple[str, str]:
        """(task root, runtime dir) as the runtime sees them."""
        if self.sandboxed:
            return "/var/task", "/var/runtime"
        return str(env.target.code_dir), str(RUNTIMES_DIR)

    def sandbox_spec(self, env: SpecSubject, runtime_api: str, output_fd: int) -> SandboxSpec:
        target = env.target
        runtime = RUNTIMES[target.runtime]
        task_root, runtime_dir = self.paths(env)
        credentials = issue_for_function(self.sessions, self.directory, self.account_id,
                                         target.role, target.name)
        env.session_key = credentials.access_key_id
        environ = build_environment(
            user=target.environment,
            runtime_family=runtime.family,
            execution_env=runtime.execution_env,
            handler=target.handler,
            function_name=target.name,
            version=target.version,
            memory_mb=target.memory_mb,
            region=self.region,
            log_group=target.log_group,
            log_stream=env.log_stream,
            runtime_api=runtime_api,
            task_root=task_root,
            runtime_dir=runtime_dir,
            credentials=credentials.as_tuple(),
            endpoint_url=self.endpoint_url,
            initialization_type=env.initialization_type,
            log_format=target.log_format if target.log_format != "Text" else None,
            log_level=target.application_log_level,
            # Unsandboxed there is no /opt: the layers are where they lie on the host.
            opt="/opt" if self.sandboxed or target.opt_dir is None else str(target.opt_dir),
        )
        extensions = external_extensions(target.opt_dir)
        extension_environ = {k: v for k, v in environ.items() if k not in HIDDEN_FROM_EXTENSIONS}
        return SandboxSpec(
            env_id=env.id,
            code_dir=target.code_dir,
            entry=(ExecEntry(target.command, task_root) if target.command
                   else runtime.entry(runtime_dir, task_root)),
            environ=environ,
            memory_mb=target.memory_mb,
            ephemeral_mb=target.ephemeral_mb,
            output_fd=output_fd,
            opt_dir=target.opt_dir,
            extensions=extensions,
            extension_environ=extension_environ if extensions else None,
            network="none" if target.vpc else "host",
        )


# What Lambda keeps from extensions' environment (spec/runtime-api.md).
HIDDEN_FROM_EXTENSIONS = frozenset({"_HANDLER", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR",
                                    "AWS_EXECUTION_ENV", "AWS_LAMBDA_LOG_GROUP_NAME",
                                    "AWS_LAMBDA_LOG_STREAM_NAME"})


def external_extensions(opt_dir: Path | None) -> tuple[str, ...]:
    """The executables in the layers' ``extensions/`` directory, by name, at most 10."""
    if opt_dir is None:
        return ()
    directory = opt_dir / "extensions"
    try:
        names = sorted(entry.name for entry in os.scandir(directory)
                       if entry.is_file() and os.access(entry.path, os.X_OK))
    except FileNotFoundError:
        return ()
    return tuple(names[:MAX_EXTENSIONS])
