"""One execution environment: a sandboxed runtime process and the Runtime API it talks to.

An environment is a small state machine (``EnvState``); every transition is checked and an
illegal one raises, because a silently ignored transition is how invocations get lost. Each
environment has its own loopback Runtime API listener: the port is its identity (the official
clients open fresh connections for ``/init/error``, so a shared port could not tell them apart).

The hot path, an invocation on a warm environment, is: ``dispatch`` resolves the runtime's
parked ``GET /next`` with the event; the runtime posts ``/response``; ``_complete`` sets the
caller's future. No task, no loop timer (the timeout is an entry in ``deadlines.py``), no
disk I/O: log lines go to memory and the REPORT line is written after the caller has its answer.

A SnapStart environment (``initialization_type="snap-start"``) is forked from its version's
snapshot (``spawner``, see ``snapshots.py``) instead of started by the launcher: its log starts
with ``RESTORE_START``, the time from spawn to the runtime's first ``/next`` (the after-restore
hooks included) is its Restore Duration (``RESTORE_REPORT``, and on the first REPORT instead of
an Init Duration), and a restore that fails (``/runtime/restore/error``) or overruns fails the
waiting invocation with ``SnapStartException`` / ``SnapStartTimeoutException``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import enum
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from lamina.engine.api import FunctionTarget, InvokeRequest, InvokeResult
from lamina.engine.deadlines import Deadline
from lamina.engine.extensions import PREFIX as EXTENSIONS_PREFIX
from lamina.engine.extensions import SHUTDOWN_GRACE_S, ExtensionsHost
from lamina.engine.output import OutputLines
from lamina.engine.platform_logs import PlatformLines, Report
from lamina.engine.runtime_turn import parse_turn
from lamina.engine.sandbox.api import (
    ExitStatus,
    SandboxProcess,
    SandboxSpec,
    SnapshotFailed,
    SpawnFailed,
)
from lamina.errors import FunctionErrorType, ServiceError, SnapStartError, SnapStartTimeout
from lamina.http.server import HttpProtocol, HttpServer
from lamina.http.types import Pending, Request, Response

if TYPE_CHECKING:
    from lamina.engine.context import EngineContext

log = logging.getLogger(__name__)

MAX_RESPONSE_BYTES = 6 * 1024 * 1024
INIT_TIMEOUT_S = 10.0
TAIL_BYTES = 4096
READ_BUDGET_BYTES = 1024 * 1024  # per loop turn, so a flooding function cannot starve others

_PREFIX = "/2018-06-01/runtime/"
_NEXT = _PREFIX + "invocation/next"
_INVOCATION = _PREFIX + "invocation/"
_INIT_ERROR = _PREFIX + "init/error"
_RESTORE_NEXT = _PREFIX + "restore/next"
_RESTORE_ERROR = _PREFIX + "restore/error"
_JSON = ("Content-Type", "application/json")
_ACCEPTED = Response(202, [_JSON], b'{"status":"OK"}', constant=True)


class EnvState(enum.Enum):
    STARTING = "starting"  # spawned; Init runs until the runtime's first /next
    IDLE = "idle"  # the runtime waits in /next
    BUSY = "busy"  # an invocation is assigned
    DEAD = "dead"

    # Members are singletons: identity is the hash. Enum's own __hash__ is Python code, and
    # the transition check below hashes states on every invocation.
    __hash__ = object.__hash__


_ALLOWED = {
    EnvState.STARTING: {EnvState.IDLE, EnvState.BUSY, EnvState.DEAD},
    EnvState.IDLE: {EnvState.BUSY, EnvState.DEAD},
    EnvState.BUSY: {EnvState.IDLE, EnvState.DEAD},
    EnvState.DEAD: set(),
}


class IllegalTransition(RuntimeError):
    pass


Outcome = Callable[[InvokeResult | None, ServiceError | None], None]


class Invocation:
    """One invocation's journey through an environment.

    Its caller learns the outcome through a future (awaited by ``Scheduler.invoke``) or, on the
    warm path, through ``on_outcome``, called at once when the runtime answers: the API then
    writes its response in the same turn of the loop.
    """

    __slots__ = ("delivered_at", "done", "future", "lines", "on_outcome", "outcome", "request",
                 "timer")

    def __init__(self, request: InvokeRequest, future: asyncio.Future[InvokeResult] | None,
                 on_outcome: Outcome | None = None) -> None:
        self.request = request
        self.future = future
        self.on_outcome = on_outcome
        self.delivered_at = 0.0
        self.timer: Deadline | None = None
        self.lines: list[str] | None = [] if request.tail_log else None
        self.done = False
        self.outcome: tuple[str | None, str | None, str | None] = (None, None, None)

    def complete(self, result: InvokeResult) -> None:
        if self.on_outcome is not None:
            callback, self.on_outcome = self.on_outcome, None
            callback(result, None)
        elif self.future is not None and not self.future.done():
            self.future.set_result(result)

    def fail(self, error: ServiceError) -> None:
        if self.on_outcome is not None:
            callback, self.on_outcome = self.on_outcome, None
            callback(None, error)
        elif self.future is not None and not self.future.done():
            self.future.set_exception(error)


RESTORE_FAILED = ("The afterRestore() runtime hook encountered an error. For more information, "
                  "check the Amazon CloudWatch logs.")
RESTORE_TIMED_OUT = "Lambda couldn't restore the snapshot within the timeout limit."


class Spawner(Protocol):
    """Where an environment's process comes from: the launcher, or a SnapStart snapshot."""

    async def spawn(self, spec: SandboxSpec) -> SandboxProcess: ...


def error_payload(error_type: str, message: str) -> bytes:
    return json.dumps({"errorType": error_type, "errorMessage": message}).encode()


class Environment:
    def __init__(self, target: FunctionTarget, context: EngineContext,
                 on_ready: Callable[[Environment], None],
                 on_dead: Callable[[Environment], None],
                 initialization_type: str = "on-demand", spawner: Spawner | None = None) -> None:
        """``on_ready`` runs once, when Init has finished (the runtime's first ``/next``);
        ``on_dead`` runs once, when the environment is gone, whatever the cause. ``spawner``
        (SnapStart: the version's snapshot) replaces the launcher."""
        self.id = uuid.uuid4().hex
        self.target = target
        self.context = context
        self.state = EnvState.STARTING
        self.initialization_type = initialization_type
        self._restored = initialization_type == "snap-start"  # forked from a snapshot
        self._spawner = spawner
        self.last_used = time.monotonic()
        self.retired = False
        self.current: Invocation | None = None
        self.process: SandboxProcess | None = None
        self.init_ms: float | None = None  # reported once, on the first invocation's REPORT
        self.init_duration_ms: float | None = None
        self.init_error: str | None = None  # the error type of a failed Init
        self.session_key = ""  # the temporary credentials handed to this environment
        self.counted_as_starting = False  # the scheduler's bound on environments in Init
        self._memory_mb = 0
        self._memory_read_at = 0.0
        self._extensions: ExtensionsHost | None = None
        self._runtime_waiting_init = False  # the runtime's first /next waits for extensions
        self._awaiting_extensions: Invocation | None = None  # answered, extensions still busy
        self._idle_callbacks: list[Callable[[], None]] = []
        self._on_ready = on_ready
        self._on_dead = on_dead
        self._parked: Pending | None = None
        self._server: HttpServer | None = None
        self._out_fd = -1
        self._output = OutputLines(self._log)
        self._started_at = 0.0
        self._init_timer: asyncio.TimerHandle | None = None
        self._init_reported = False
        self._loop = asyncio.get_running_loop()
        day = time.strftime("%Y/%m/%d", time.gmtime())
        self.log_stream = f"{day}/[{target.version}]{self.id}"
        self._lines = PlatformLines(target.runtime, target.function_arn,
                                    target.log_format == "JSON", target.system_log_level)

    # lifecycle ------------------------------------------------------------------------------

    def _to(self, state: EnvState) -> None:
        if state not in _ALLOWED[self.state]:
            raise IllegalTransition(f"environment {self.id}: {self.state.value} -> {state.value}")
        self.state = state

    async def start(self) -> None:
        """Spawn the runtime; Init then runs on its own until the first ``/next``."""
        self._server = HttpServer(self._runtime_api, max_body=MAX_RESPONSE_BYTES + 64 * 1024,
                                  too_large=self._too_large, hold_before_pending=True,
                                  fast_path=self._runtime_turn)
        listener, port = _runtime_listener()
        await self._server.serve_socket(listener)
        read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
        os.set_blocking(read_fd, False)
        self._out_fd = read_fd
        self._loop.add_reader(read_fd, self._read_output)
        self._started_at = time.perf_counter()
        self._log(self._lines.restore_start(self.target.version) if self._restored
                  else self._lines.init_start(self.initialization_type))
        spec = self.context.sandbox_spec(self, f"127.0.0.1:{port}", write_fd)
        if spec.extensions:
            self._extensions = self._new_extensions_host(len(spec.extensions))
        try:
            self.process = await (self._spawner or self.context.launcher).spawn(spec)
        except SnapshotFailed as exc:  # the version's snapshot had to be made anew, and failed
            log.warning("no snapshot for an environment of %s: %s", self.target.name, exc)
            self._fail_init(exc.error_type, exc.message, exc.payload,
                            status="timeout" if exc.timed_out else "error")
            return
        except SpawnFailed as exc:
            log.error("could not start an environment of %s: %s", self.target.name, exc)
            self._fail_init(FunctionErrorType.UNKNOWN, f"Could not start the runtime: {exc}")
            return
        finally:
            os.close(write_fd)
        if self.state is EnvState.DEAD:
            self.process.kill()
            return
        self._init_timer = self._loop.call_later(INIT_TIMEOUT_S, self._on_init_timeout)
        self._loop.create_task(self._watch(self.process))

    async def _watch(self, process: SandboxProcess) -> None:
        status = await process.wait()
        # The runtime may have written its answer just before exiting: let the loop read that
        # socket first, or a result that was sent would be reported as a crash.
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        self._on_exit(status)

    def kill(self, reason: str = "shutdown") -> None:
        """End the environment now (after a SHUTDOWN grace when extensions subscribed to it).
        Harmless when it is already dead."""
        if self.state is EnvState.DEAD:
            return
        current = self.current
        self._to(EnvState.DEAD)
        if current is not None and not current.done:
            self._finish_with_error(current, FunctionErrorType.EXIT_ERROR,
                                    f"RequestId: {current.request.request_id} Error: "
                                    f"Runtime exited with error: signal: killed ({reason})")
        if self._extensions is not None and self._extensions.wants("SHUTDOWN"):
            shutdown_reason = {"idle": "SPINDOWN", "retired": "SPINDOWN",
                               "shutdown": "SPINDOWN", "timeout": "TIMEOUT"}.get(reason,
                                                                                   "FAILURE")
            self._extensions.shutdown(shutdown_reason)
            self._loop.call_later(SHUTDOWN_GRACE_S, self._cleanup)
            return
        self._cleanup()

    def when_idle(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once this busy environment is idle again (its extensions done)."""
        self._idle_callbacks.append(callback)

    @property
    def awaiting_extensions(self) -> bool:
        return self._awaiting_extensions is not None

    def _cleanup(self) -> None:
        if self._extensions is not None:
            self._extensions.close()
        if self.process is not None:
            self.process.kill()
        if self._init_timer is not None:
            self._init_timer.cancel()
        if self._parked is not None and not self._parked.done():
            self._parked.cancel()
        self._parked = None
        if self._out_fd >= 0:
            self._read_output()
            self._output.flush()
            self._loop.remove_reader(self._out_fd)
            os.close(self._out_fd)
            self._out_fd = -1
        if self._server is not None:
            server, self._server = self._server, None
            self._loop.create_task(server.close())
        if self.session_key:
            self.context.sessions.revoke(self.session_key)
        self._on_dead(self)

    def _on_exit(self, status: ExitStatus) -> None:
        if self.state is EnvState.DEAD:
            return
        self._read_output()
        if self.state is EnvState.STARTING:
            if status.oom_killed:
                self._fail_init(FunctionErrorType.OUT_OF_MEMORY, self._exit_message(None, status))
            else:
                self._fail_init(FunctionErrorType.EXIT_ERROR, self._exit_message(None, status))
            return
        current = self.current
        self._to(EnvState.DEAD)
        if current is not None and not current.done:
            kind = (FunctionErrorType.OUT_OF_MEMORY if status.oom_killed
                    else FunctionErrorType.EXIT_ERROR)
            self._finish_with_error(current, kind,
                                    self._exit_message(current.request.request_id, status))
        self._cleanup()

    @staticmethod
    def _exit_message(request_id: str | None, status: ExitStatus) -> str:
        prefix = f"RequestId: {request_id} Error: " if request_id else "Error: "
        if status.code == 0 and status.signal is None:
            return prefix + "Runtime exited without providing a reason"
        return prefix + f"Runtime exited with error: {status.describe()}"

    # Init ------------------------------------------------------------------------------------

    def _init_done(self) -> None:
        init_ms = (time.perf_counter() - self._started_at) * 1000
        # A pre-initialised environment's Init is nobody's cold start: its REPORT shows none.
        # A restored one's shows as Restore Duration (see _write_report).
        self.init_ms = init_ms if self.initialization_type in ("on-demand", "snap-start") \
            else None
        self.init_duration_ms = init_ms
        if self._init_timer is not None:
            self._init_timer.cancel()
            self._init_timer = None
        if self._restored:
            self._log(self._lines.restore_report(init_ms))

    def _on_init_timeout(self) -> None:
        if self.state is EnvState.STARTING and self._restored:
            self._fail_restore(SnapStartTimeout(RESTORE_TIMED_OUT), FunctionErrorType.TIMED_OUT,
                               "timeout")
        elif self.state is EnvState.STARTING:
            self._fail_init(FunctionErrorType.TIMED_OUT,
                            f"Init phase timed out after {INIT_TIMEOUT_S:.2f} seconds",
                            status="timeout")

    def _fail_init(self, error_type: str, message: str, payload: bytes | None = None,
                   status: str = "error") -> None:
        """Init failed: report it as Lambda does and hand the error to the waiting invocation."""
        if self.state is EnvState.DEAD:
            return
        init_ms = (time.perf_counter() - self._started_at) * 1000
        self.init_error = str(error_type)
        if not self._init_reported:
            self._init_reported = True
            self._log(self._lines.init_report(init_ms, "init", status, str(error_type)))
        current = self.current
        self._to(EnvState.DEAD)
        if current is not None and not current.done:
            body = payload if payload is not None else error_payload(str(error_type), message)
            self._log(self._lines.start(current.request.request_id, self.target.version), current)
            current.delivered_at = self._started_at
            self.init_ms = init_ms
            self._finish(current, body, "Unhandled", str(error_type),
                         "timeout" if status == "timeout" else "error")
        self._cleanup()

    def _fail_restore(self, error: ServiceError, error_type: str, status: str) -> None:
        """A SnapStart restore failed: the environment is not used, and the invocation that
        waited for it gets Lambda's API error (not a function error)."""
        if self.state is EnvState.DEAD:
            return
        restore_ms = (time.perf_counter() - self._started_at) * 1000
        self._log(self._lines.restore_report(restore_ms, status, error_type))
        current, self.current = self.current, None
        self._to(EnvState.DEAD)
        if current is not None and not current.done:
            current.done = True
            if current.timer is not None:
                current.timer.cancel()
            current.fail(error)
        self._cleanup()

    # dispatch -------------------------------------------------------------------------------

    def dispatch(self, invocation: Invocation) -> None:
        """Give the environment its next invocation (it must be idle or still starting)."""
        if self.current is not None:
            raise IllegalTransition(f"environment {self.id} already runs an invocation")
        self.current = invocation
        if self.state is EnvState.IDLE:
            self._to(EnvState.BUSY)
            parked, self._parked = self._parked, None
            if parked is not None and not parked.done():
                parked.resolve(self._deliver(invocation))
        elif self.state is not EnvState.STARTING:
            raise IllegalTransition(f"dispatch to a {self.state.value} environment")

    def _deliver(self, invocation: Invocation) -> Response:
        request = invocation.request
        now = time.time()
        invocation.delivered_at = time.perf_counter()
        deadline_ms = int((now + self.target.timeout_s) * 1000)
        invocation.timer = self.context.deadlines.after(self.target.timeout_s, self._on_timeout,
                                                        invocation)
        self._log(self._lines.start(request.request_id, self.target.version), invocation)
        # One formatted string for the whole head: the values are ids and ARNs lamina made,
        # a trace header and a client context that arrived as single header lines or were
        # re-encoded without line breaks (``InvokeRequest``).
        head = (f"Content-Type: application/json\r\n"
                f"Lambda-Runtime-Aws-Request-Id: {request.request_id}\r\n"
                f"Lambda-Runtime-Deadline-Ms: {deadline_ms}\r\n"
                f"Lambda-Runtime-Invoked-Function-Arn: {request.invoked_arn}\r\n"
                f"Lambda-Runtime-Trace-Id: {request.trace_id}\r\n")
        if request.client_context:
            head += f"Lambda-Runtime-Client-Context: {request.client_context}\r\n"
        if request.cognito_identity:
            head += f"Lambda-Runtime-Cognito-Identity: {request.cognito_identity}\r\n"
        if self._extensions is not None and self._extensions.wants("INVOKE"):
            self._extensions.invoke(request.request_id, deadline_ms, request.invoked_arn,
                                    request.trace_id)
        return Response(200, body=request.payload, head=head.encode("latin-1"))

    def _on_timeout(self, invocation: Invocation) -> None:
        if invocation is self._awaiting_extensions:
            # The caller has its answer; the extensions overran the function's timeout.
            self._awaiting_extensions = None
            self.kill("timeout")
            return
        if invocation.done or self.current is not invocation:
            return
        seconds = f"{self.target.timeout_s:.2f}"
        message = (f"RequestId: {invocation.request.request_id} Error: "
                   f"Task timed out after {seconds} seconds")
        self._finish(invocation, error_payload(FunctionErrorType.TIMED_OUT, message),
                     "Unhandled", FunctionErrorType.TIMED_OUT, "timeout")
        self.kill("timeout")

    # Runtime API ----------------------------------------------------------------------------

    def _runtime_api(self, request: Request) -> Response | Pending | asyncio.Future[Response]:
        path = request.path
        if path == _NEXT:
            return self._on_next()
        if path.startswith(EXTENSIONS_PREFIX):
            if self._extensions is None:  # an internal extension, in the runtime's process
                self._extensions = self._new_extensions_host(0)
            return self._extensions.handle(request)
        if path.startswith(_INVOCATION) and request.method == "POST":
            request_id, _, action = path[len(_INVOCATION):].partition("/")
            if action == "response":
                return self._on_response(request_id, request.body)
            if action == "error":
                return self._on_error(request_id, request)
        elif path == _INIT_ERROR and request.method == "POST":
            return self._on_init_error(request)
        elif path == _RESTORE_NEXT:
            return Response(200, [_JSON], b"")
        elif path == _RESTORE_ERROR and request.method == "POST":
            return self._on_restore_error(request)
        return Response(404, [_JSON], json.dumps({
            "errorType": "InvalidRequest", "errorMessage": f"Unknown path {path}"}).encode())

    def _on_next(self) -> Response | Pending:
        if self.state is EnvState.DEAD:
            return Response(500, [_JSON], error_payload("EnvironmentGone", "shutting down"))
        if self.state is EnvState.STARTING:
            if self._extensions is not None and not self._extensions.settled():
                # Init ends when the extensions are waiting too: the runtime waits for them.
                self._runtime_waiting_init = True
                self._parked = Pending()
                return self._parked
            return self._end_init()
        current = self.current
        if current is not None and not current.done and current.delivered_at:
            # The runtime asked for more work without answering: that invocation is lost to it.
            self._finish_with_error(current, FunctionErrorType.UNKNOWN,
                                    f"RequestId: {current.request.request_id} Error: runtime "
                                    "asked for the next event without answering this one")
        if self.current is not None and not self.current.delivered_at:
            return self._deliver(self.current)
        if self._parked is not None and not self._parked.done():
            self._parked.cancel()
        self._parked = Pending()
        return self._parked

    def _end_init(self) -> Response | Pending:
        """Init is over: hand the runtime its first invocation, or park it idle."""
        self._init_done()
        if self._extensions is not None:
            self._extensions.accepting_registrations = False
        if self.current is not None:
            self._to(EnvState.BUSY)
            self._on_ready(self)
            return self._deliver(self.current)
        self._to(EnvState.IDLE)
        self._parked = Pending()
        self._on_ready(self)
        return self._parked

    def _on_extensions_settled(self) -> None:
        """Every extension waits in event/next: Init or an invocation may be complete."""
        if self.state is EnvState.STARTING and self._runtime_waiting_init:
            self._runtime_waiting_init = False
            parked, self._parked = self._parked, None
            answer = self._end_init()
            if parked is not None and not parked.done():
                if isinstance(answer, Response):
                    parked.resolve(answer)
                else:  # idle: the runtime keeps waiting, on the answer it already holds
                    self._parked = parked
                    answer.cancel()
        elif self._awaiting_extensions is not None and self.state is EnvState.BUSY:
            self._extensions_finished(self._awaiting_extensions)

    def _new_extensions_host(self, expected: int) -> ExtensionsHost:
        return ExtensionsHost(expected, self.target.name, self.target.version,
                              self.target.handler, self._on_extensions_settled,
                              self._on_extension_error)

    def _on_extension_error(self, phase: str, error_type: str, body: bytes) -> None:
        if phase == "init" and self.state is EnvState.STARTING:
            self._fail_init(error_type, "An extension failed to initialise", body or None)
        elif phase == "exit":
            self.retired = True  # the environment is reset after this invocation, as on AWS

    def _check_id(self, request_id: str) -> Invocation | Response:
        current = self.current
        if current is None or current.done or current.request.request_id != request_id:
            return Response(400, [_JSON], error_payload(
                "InvalidRequestID", f"Invalid request ID: {request_id}"))
        return current

    def _on_response(self, request_id: str, body: bytes) -> Response:
        found = self._check_id(request_id)
        if isinstance(found, Response):
            return found
        self._drain_for_tail(found)
        self._finish(found, body, None, None, None)
        return _ACCEPTED

    def _runtime_turn(self, protocol: HttpProtocol, data: bytes) -> bool:
        """A response post and the next long poll in one read (``runtime_turn.py``): the same
        as the two requests through ``_runtime_api``, without the parser. A request id that is
        not the current invocation's is refused with no effect, so it is left to the general
        path, which answers the refusal."""
        turn = parse_turn(data, MAX_RESPONSE_BYTES)
        if turn is None or self._on_response(*turn) is not _ACCEPTED:
            return False
        protocol.answer_recognised(_ACCEPTED, self._on_next())
        return True

    def _on_error(self, request_id: str, request: Request) -> Response:
        found = self._check_id(request_id)
        if isinstance(found, Response):
            return found
        self._drain_for_tail(found)
        payload, error_type = _normalise_error(request)
        self._finish(found, payload, "Unhandled", error_type, "error")
        return _ACCEPTED

    def _on_init_error(self, request: Request) -> Response:
        if self.state is not EnvState.STARTING:
            return Response(403, [_JSON], error_payload("InvalidStateTransition",
                                                        "init/error outside of Init"))
        self._read_output()
        payload, error_type = _normalise_error(request)
        message = ""
        with contextlib.suppress(ValueError, AttributeError, TypeError):
            message = json.loads(payload).get("errorMessage", "")
        self._fail_init(error_type, message, payload)
        return _ACCEPTED

    def _on_restore_error(self, request: Request) -> Response:
        """``/runtime/restore/error``: an after-restore hook raised in this environment."""
        if self.state is not EnvState.STARTING:
            return Response(403, [_JSON], error_payload("InvalidStateTransition",
                                                        "restore/error outside of a restore"))
        self._read_output()
        _, error_type = _normalise_error(request)
        header_type = request.headers.get("lambda-runtime-function-error-type")
        self._fail_restore(SnapStartError(RESTORE_FAILED), header_type or error_type, "error")
        return _ACCEPTED

    def _too_large(self, request: Request) -> Response:
        path = request.path
        if path.startswith(_INVOCATION) and path.endswith("/response"):
            request_id = path[len(_INVOCATION):].partition("/")[0]
            found = self._check_id(request_id)
            if isinstance(found, Response):
                return found
            message = (f"Response payload size exceeded maximum allowed payload size "
                       f"({MAX_RESPONSE_BYTES} bytes).")
            self._finish(found, error_payload(FunctionErrorType.RESPONSE_TOO_LARGE, message),
                         "Unhandled", FunctionErrorType.RESPONSE_TOO_LARGE, "error")
            return Response(413, [_JSON], error_payload(
                FunctionErrorType.RESPONSE_TOO_LARGE, message))
        return Response(413, [_JSON], error_payload("RequestTooLarge", "request too large"))

    # completion -----------------------------------------------------------------------------

    def _finish_with_error(self, invocation: Invocation, error_type: str, message: str) -> None:
        self._finish(invocation, error_payload(error_type, message), "Unhandled", error_type,
                     "error")

    def _finish(self, invocation: Invocation, payload: bytes, function_error: str | None,
                error_type: str | None, status: str | None) -> None:
        if invocation.done:
            return
        invocation.done = True
        extensions_busy = (self._extensions is not None and self.state is EnvState.BUSY
                           and self._extensions.wants("INVOKE") and not self._extensions.settled())
        if invocation.timer is not None and not extensions_busy:
            invocation.timer.cancel()
        duration_ms = (time.perf_counter() - invocation.delivered_at) * 1000 \
            if invocation.delivered_at else 0.0
        if len(payload) > MAX_RESPONSE_BYTES:
            error_type = FunctionErrorType.RESPONSE_TOO_LARGE
            function_error, status = "Unhandled", "error"
            payload = error_payload(error_type, "Response payload size exceeded maximum allowed "
                                                f"payload size ({MAX_RESPONSE_BYTES} bytes).")
        init_ms = self.init_ms
        if self.current is invocation:
            self.current = None
            if extensions_busy:
                # The caller gets the runtime's answer now; the environment stays busy (and the
                # REPORT waits) until every INVOKE extension asks for its next event.
                self._awaiting_extensions = invocation
                invocation.outcome = (function_error, error_type, status)
                invocation.complete(InvokeResult(
                    payload, self.target.version, function_error, None, error_type))
                return
            if self.state is EnvState.BUSY:
                self._to(EnvState.IDLE)
        self.init_ms = None
        self.last_used = time.monotonic()
        result = InvokeResult(payload, self.target.version, function_error, None, error_type)
        report = (invocation.request.request_id, duration_ms, init_ms, status, error_type)
        if invocation.lines is not None:
            self._write_report(invocation, *report)
            result.log_tail = _tail(invocation.lines)
        else:
            self._loop.call_soon(self._write_report, invocation, *report)
        invocation.complete(result)

    def _extensions_finished(self, invocation: Invocation) -> None:
        """The INVOKE extensions are done with ``invocation``: it ends now, REPORT included."""
        self._awaiting_extensions = None
        if invocation.timer is not None:
            invocation.timer.cancel()
        duration_ms = (time.perf_counter() - invocation.delivered_at) * 1000
        init_ms, self.init_ms = self.init_ms, None
        function_error, error_type, status = invocation.outcome
        del function_error
        self._to(EnvState.IDLE)
        self.last_used = time.monotonic()
        self._write_report(invocation, invocation.request.request_id, duration_ms, init_ms,
                           status, error_type)
        callbacks, self._idle_callbacks = self._idle_callbacks, []
        for callback in callbacks:
            callback()

    def _max_memory_mb(self, fresh: bool) -> int:
        """The environment's peak memory. The peak only grows, so on a busy environment one
        cgroup read a second is enough; a tail (which the caller reads now) gets a fresh one."""
        now = time.monotonic()
        if self.process is not None and (fresh or now - self._memory_read_at > 1.0):
            self._memory_read_at = now
            self._memory_mb = self.process.max_memory_used_mb()
        return self._memory_mb

    def _write_report(self, invocation: Invocation, request_id: str, duration_ms: float,
                      init_ms: float | None, status: str | None, error_type: str | None) -> None:
        max_memory = self._max_memory_mb(fresh=invocation.lines is not None or status is not None)
        restore_ms = None
        if init_ms is not None and self._restored:
            init_ms, restore_ms = None, init_ms
        lines = (self._lines.end(request_id), self._lines.report(Report(
            request_id, duration_ms, self.target.memory_mb, max_memory, init_ms, restore_ms,
            status, error_type)))
        self.context.logs.append_lines(self.target.log_group, self.log_stream, lines)
        if invocation.lines is not None:
            invocation.lines.extend(line for line in lines if line is not None)

    # output capture -------------------------------------------------------------------------

    def _log(self, line: str | None, invocation: Invocation | None = None) -> None:
        if line is None:  # a platform line below the function's SystemLogLevel
            return
        self.context.logs.append(self.target.log_group, self.log_stream, line)
        if invocation is None:
            invocation = self.current
        if invocation is not None and invocation.lines is not None:
            invocation.lines.append(line)

    def _drain_for_tail(self, invocation: Invocation) -> None:
        """Read what the runtime printed before answering, when the caller wants it in a tail.

        Otherwise there is no need: the runtime wrote its output before its answer, so the pipe
        was ready when the answer's socket was, the loop runs its reader in the same turn, and
        the END/REPORT lines, written a step later, still follow it in the stream. Skipping the
        read saves a system call on every warm invoke.
        """
        if invocation.lines is not None:
            self._read_output()

    def _read_output(self) -> None:
        if self._out_fd < 0:
            return
        if self._output.read(self._out_fd, READ_BUDGET_BYTES):
            self._loop.remove_reader(self._out_fd)


def _runtime_listener() -> tuple[socket.socket, int]:
    """A listening loopback socket on a free port, for one environment's Runtime API.

    Made here rather than by ``create_server(host, port)``, which resolves the host name first
    (uvloop: on its thread pool), ~0.1-0.2 ms of every cold start and a thread wake-up.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock, sock.getsockname()[1]


def _normalise_error(request: Request) -> tuple[bytes, str]:
    """The error body as the caller will see it, and its type.

    awslambdaric sends no ``Lambda-Runtime-Function-Error-Type`` header (HOST.md), so the type
    comes from the body when the body says it.
    """
    header_type = request.headers.get("lambda-runtime-function-error-type")
    body = request.body
    try:
        parsed = json.loads(body) if body else None
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        error_type = parsed.get("errorType") or header_type or FunctionErrorType.UNKNOWN
        return body, str(error_type)
    error_type = header_type or FunctionErrorType.UNKNOWN
    message = body.decode("utf-8", "replace") if body else "Unknown error"
    return error_payload(error_type, message), error_type


def _tail(lines: list[str]) -> str:
    text = ("\n".join(lines) + "\n").encode()
    return base64.b64encode(text[-TAIL_BYTES:]).decode()
