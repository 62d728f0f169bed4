"""``lamina emulate``: a drop-in for the AWS runtime interface emulator (aws-lambda-rie).

It serves ``POST /2015-03-31/functions/function/invocations`` for one function, with no
credentials, the way the emulator does inside a container image; the function runs through the
same environments, Runtime API and scheduler as under ``lamina serve``, without the sandbox (the
emulator's users already run it inside their own container or dev box). Unlike the emulator it
serves concurrent requests, each in an environment of its own.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import tempfile
import uuid
from pathlib import Path

from lamina.engine.api import FunctionTarget, InvokeRequest
from lamina.engine.context import EngineContext
from lamina.engine.runtimes import RUNTIMES, RUNTIMES_DIR
from lamina.engine.scheduler import Scheduler
from lamina.errors import ServiceError
from lamina.http.server import HttpServer
from lamina.http.types import Request, Response
from lamina.identity.sessions import SessionRegistry
from lamina.observe.logstore import LogStore

INVOKE_PATH = "/2015-03-31/functions/function/invocations"
_JSON = ("content-type", "application/json")


def target_for(args: argparse.Namespace) -> FunctionTarget:
    command = [part for part in (args.command or []) if part != "--"] or None
    code_dir = Path(args.code).resolve()
    if command is None and not args.handler:
        raise SystemExit("lamina emulate: give --handler (with --runtime) or -- CMD ARGS...")
    runtime = "provided.al2023" if command else args.runtime
    if runtime not in RUNTIMES:
        raise SystemExit(f"lamina emulate: unknown runtime {runtime}; "
                         f"supported: {', '.join(sorted(RUNTIMES))}")
    handler = args.handler or (command[-1] if command else "")
    return FunctionTarget(
        name=os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "function"),
        version="$LATEST",
        function_arn="arn:aws:lambda:us-east-1:012345678912:function:function",
        generation="emulate",
        runtime=runtime,
        handler=handler,
        memory_mb=args.memory,
        timeout_s=float(args.timeout),
        code_dir=code_dir,
        environment={k: v for k, v in os.environ.items() if not k.startswith("LAMINA_")},
        log_group="/aws/lambda/function",
        command=tuple(command) if command else None,
    )


class Emulator:
    def __init__(self, scheduler: Scheduler, target: FunctionTarget, logs: LogStore) -> None:
        self.scheduler = scheduler
        self.target = target
        self.logs = logs

    async def handle(self, request: Request) -> Response:
        if request.path != INVOKE_PATH or request.method != "POST":
            return Response(404, [_JSON], b'{"message":"Not Found"}')
        request_id = str(uuid.uuid4())
        invoke = InvokeRequest(payload=request.body or b"{}", request_id=request_id,
                               invoked_arn=self.target.function_arn,
                               trace_id=f"Root=1-{uuid.uuid4().hex[:8]}-{uuid.uuid4().hex[:24]}")
        try:
            result = await self.scheduler.invoke(self.target, invoke)
        except ServiceError as exc:
            return Response(exc.status, [_JSON], json.dumps(exc.body()).encode())
        return Response(200, [_JSON], result.payload)


class _EchoLogs(LogStore):
    """The emulator prints function output to its own stdout, as the emulator does."""

    def append(self, function: str, stream: str, message: str,
               timestamp: int | None = None) -> None:
        sys.stdout.write(message + "\n")
        sys.stdout.flush()


async def _serve(args: argparse.Namespace) -> int:
    from lamina.engine.sandbox.launcher import UnsandboxedLauncher

    target = target_for(args)
    scratch = Path(tempfile.mkdtemp(prefix="lamina-emulate-"))
    logs = _EchoLogs(scratch / "logs")
    launcher = UnsandboxedLauncher(code_root=target.code_dir.parent,
                                   runtime_dir=RUNTIMES_DIR / "python", spares=2)
    await launcher.start()
    context = EngineContext(launcher, logs, SessionRegistry(), "us-east-1", "012345678912",
                            f"http://{args.host}:{args.port}", sandboxed=False)
    scheduler = Scheduler(context, account_limit=1000, idle_timeout=3600)
    scheduler.start()
    emulator = Emulator(scheduler, target, logs)
    server = HttpServer(emulator.handle, max_body=6 * 1024 * 1024)
    host, port = await server.listen(args.host, args.port)
    print(f"lamina emulate: serving {target.handler} at "
          f"http://{host}:{port}{INVOKE_PATH}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await server.close()
    await scheduler.close()
    await launcher.close()
    return 0


def run_emulator(args: argparse.Namespace) -> int:
    import uvloop

    logging.basicConfig(level=logging.WARNING)
    return uvloop.run(_serve(args))
