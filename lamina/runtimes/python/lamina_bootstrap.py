"""lamina's Python runtime client: the code that runs a function inside an environment.

It speaks the Lambda Runtime API (2018-06-01) at ``http://$AWS_LAMBDA_RUNTIME_API``,
imports the user's handler and runs invocations, so that functions written
for AWS Lambda's python3.11 runtime run unchanged. Behaviour visible to user
code (error types and messages, the context object, log formats, result
encoding) follows AWS's runtime client, ``awslambdaric`` 4.2; the transport
is lamina's own, built for the warm path.

How it is run
    * Mounted read-only at ``/var/runtime/python`` inside a sandbox that has no
      virtualenv: standard library only, nothing of ``lamina`` is importable.
      That directory is on the function's ``sys.path``, so the runtime is one
      file (plus ``snapshot_restore_py``, AWS's public name): every extra module
      would be one more name that could shadow a module of the function.
    * Pre-imported by a template process, then :func:`main` is called in a
      fork of it. Importing this module therefore only defines things; all
      work (reading the environment, touching stdio and logging, connecting)
      happens in :func:`main`, which re-reads everything each time it runs.
    * Standalone: ``python lamina_bootstrap.py [handler]`` (then ``_HANDLER``
      may be replaced by the argument, as with AWS's ``python -m awslambdaric``).
    * SnapStart templates may call :func:`preload` before they fork:
      it runs the Init step (the handler import) once; each later :func:`main`
      in a fork reuses that outcome instead of importing again.

Environment read by :func:`main`
    ``_HANDLER``, ``AWS_LAMBDA_RUNTIME_API``, ``LAMBDA_TASK_ROOT`` (default: cwd),
    ``AWS_LAMBDA_FUNCTION_NAME``, ``AWS_LAMBDA_FUNCTION_VERSION``,
    ``AWS_LAMBDA_FUNCTION_MEMORY_SIZE``, ``AWS_LAMBDA_LOG_GROUP_NAME``,
    ``AWS_LAMBDA_LOG_STREAM_NAME``, ``AWS_LAMBDA_LOG_FORMAT`` (Text|JSON),
    ``AWS_LAMBDA_LOG_LEVEL``, ``AWS_LAMBDA_INITIALIZATION_TYPE``.

Wire behaviour (one TCP connection, keep-alive, ``TCP_NODELAY``)
    1. ``GET /runtime/invocation/next`` (no timeout: it long-polls).
    2. After the handler: ``POST /runtime/invocation/{id}/response`` (or
       ``/error``) *and* the next ``GET .../next`` in a single write, then read
       the 202 and then the next event (they may arrive in one segment).
    Init failures go to ``POST /runtime/init/error`` and end the process with
    status 1. A 5xx answer to a post, a failed ``next`` or a lost connection
    ends it with status 1 too (the spec: 500 means the runtime must exit).

Deliberate differences from awslambdaric (documented choices)
    * Results are encoded with the stdlib ``json`` (awslambdaric uses
      ``simplejson``): identical output for JSON types and ``Decimal`` (written
      as its exact digits), but a ``namedtuple`` becomes an array, not an object.
    * The platform reads stdout/stderr line by line, so a logging record always
      ends with a newline (awslambdaric's stdout sink omits it after a traceback)
      and a formatting error in a log call is reported by ``logging`` instead of
      raising into the handler.
    * No X-Ray error-cause header; the invocation error carries
      ``Lambda-Runtime-Function-Error-Type`` (awslambdaric sends it only on
      init errors).
    * The long ``LAMBDA_WARNING`` paragraph about AWS runtime updates is not
      printed before an init error.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import socket
import sys
import time
import traceback

# typing costs ~4 ms at a cold start and nothing else here imports it: annotations
# are strings (PEP 563), so the names are only needed by type checkers.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    Handler = Callable[[Any, "LambdaContext"], Any]
    ErrorResult = dict[str, Any]

_NEXT_PATH = "/2018-06-01/runtime/invocation/next"
_INVOCATION_PATH = "/2018-06-01/runtime/invocation/"
_INIT_ERROR_PATH = "/2018-06-01/runtime/init/error"
_RESTORE_NEXT_PATH = "/2018-06-01/runtime/restore/next"
_RESTORE_ERROR_PATH = "/2018-06-01/runtime/restore/error"
_ERROR_TYPE_HEADER = "Lambda-Runtime-Function-Error-Type"

# AWS's error types for faults of the runtime itself (awslambdaric's names).
MARSHAL_ERROR = "Runtime.MarshalError"
UNMARSHAL_ERROR = "Runtime.UnmarshalError"
USER_CODE_SYNTAX_ERROR = "Runtime.UserCodeSyntaxError"
HANDLER_NOT_FOUND = "Runtime.HandlerNotFound"
IMPORT_MODULE_ERROR = "Runtime.ImportModuleError"
BUILT_IN_MODULE_CONFLICT = "Runtime.BuiltInModuleConflict"
MALFORMED_HANDLER_NAME = "Runtime.MalformedHandlerName"
BEFORE_SNAPSHOT_ERROR = "Runtime.BeforeSnapshotError"
AFTER_RESTORE_ERROR = "Runtime.AfterRestoreError"
CONTEXT_UNMARSHAL_ERROR = "Runtime.LambdaContextUnmarshalError"

# Text error reports are one record: lines joined by CR, indentation made of
# no-break spaces, so that a line-oriented reader keeps them together.
_ERROR_LINE_SEPARATOR = "\r"
_ERROR_INDENT = "\u00a0"
_JSON_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"

# LogRecord attributes that are not "extra" fields in the JSON log format.
_RESERVED_RECORD_FIELDS = frozenset(
    (
        "name",
        "msg",
        "args",
        "levelname",
        "levelno",
        "pathname",
        "filename",
        "module",
        "exc_info",
        "exc_text",
        "stack_info",
        "lineno",
        "funcName",
        "created",
        "msecs",
        "relativeCreated",
        "thread",
        "threadName",
        "processName",
        "process",
        "taskName",
        "aws_request_id",
        "tenant_id",
        "_frame_type",
    )
)

_THIS_FILE = os.path.abspath(__file__)


class RuntimeAPIError(Exception):
    """The Runtime API connection broke or answered so that this runtime must exit."""


# --------------------------------------------------------------------------- HTTP


class _Connection:
    """A minimal HTTP/1.1 client on one keep-alive socket.

    Only what the Runtime API needs: requests are pre-built byte strings sent
    with one ``sendall`` (so a response post and the next ``GET`` can share a
    write), responses are parsed from a local buffer that may already hold the
    next response. ``http.client`` costs ~3x more per exchange and cannot
    pipeline.
    """

    __slots__ = ("_address", "_buf", "_sock", "host")

    def __init__(self, address: str) -> None:
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise RuntimeAPIError(f"AWS_LAMBDA_RUNTIME_API is not host:port: {address!r}")
        self._address = (host.strip("[]"), int(port))
        self.host = address
        self._sock: socket.socket | None = None
        self._buf = bytearray()

    def _connect(self) -> socket.socket:
        # A numeric address connects directly: ``create_connection`` would go through
        # ``getaddrinfo``, whose IDNA encoding of the host imports ``encodings.idna`` (and its
        # regular expressions) in every fresh environment: ~3 ms of a cold start, measured.
        host, port = self._address
        try:
            if _is_ip_literal(host):
                family = socket.AF_INET6 if ":" in host else socket.AF_INET
                sock = socket.socket(family, socket.SOCK_STREAM)
                try:
                    sock.connect((host, port))
                except OSError:
                    sock.close()
                    raise
            else:
                sock = socket.create_connection(self._address)
        except OSError as e:
            raise RuntimeAPIError(f"cannot connect to the Runtime API at {self.host}: {e}") from e
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock = sock
        self._buf.clear()
        return sock

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def send(self, data: bytes) -> None:
        sock = self._sock or self._connect()
        try:
            sock.sendall(data)
        except OSError as e:
            raise RuntimeAPIError(f"lost the Runtime API connection: {e}") from e

    def _recv(self, size: int) -> None:
        sock = self._sock
        if sock is None:
            raise RuntimeAPIError("read on a closed Runtime API connection")
        try:
            chunk = sock.recv(size)
        except OSError as e:
            raise RuntimeAPIError(f"lost the Runtime API connection: {e}") from e
        if not chunk:
            raise RuntimeAPIError("the Runtime API closed the connection")
        self._buf += chunk

    def read(self) -> tuple[int, dict[str, str], bytes]:
        """Read one response: ``(status, headers with lower-case names, body)``."""
        buf = self._buf
        while True:
            end = buf.find(b"\r\n\r\n")
            while end < 0:
                if len(buf) > 1 << 20:
                    raise RuntimeAPIError("response headers larger than 1 MiB")
                self._recv(65536)
                end = buf.find(b"\r\n\r\n")
            lines = buf[:end].decode("latin-1").split("\r\n")
            try:
                status = int(lines[0][9:12])
            except ValueError:
                raise RuntimeAPIError(f"bad status line {lines[0]!r}") from None
            headers: dict[str, str] = {}
            for line in lines[1:]:  # no space may precede the colon (RFC 9112)
                name, _, value = line.partition(":")
                headers[name.lower()] = value.strip()
            start = end + 4
            if status >= 200:
                break
            del buf[:start]  # an interim 1xx response: the real one follows
        length = headers.get("content-length")
        if length is not None:
            stop = start + int(length)
            while len(buf) < stop:
                self._recv(max(stop - len(buf), 65536))
            body = bytes(buf[start:stop])
            del buf[:stop]
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            del buf[:start]
            body = self._read_chunked()
        else:
            body = b""  # we only talk to servers that frame their bodies
            del buf[:start]
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, headers, body

    def _read_chunked(self) -> bytes:
        """Decode a chunked body (defensive: Runtime API servers send Content-Length)."""
        buf = self._buf
        parts: list[bytes] = []
        while True:
            eol = buf.find(b"\r\n")
            while eol < 0:
                self._recv(65536)
                eol = buf.find(b"\r\n")
            size = int(bytes(buf[:eol]).split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                del buf[: eol + 2]
                # Trailers, then an empty line.
                while True:
                    eol = buf.find(b"\r\n")
                    while eol < 0:
                        self._recv(65536)
                        eol = buf.find(b"\r\n")
                    del buf[: eol + 2]
                    if eol == 0:
                        return b"".join(parts)
            stop = eol + 2 + size + 2
            while len(buf) < stop:
                self._recv(max(stop - len(buf), 65536))
            parts.append(bytes(buf[eol + 2 : stop - 2]))
            del buf[:stop]

    @property
    def is_open(self) -> bool:
        return self._sock is not None


def _request(method: str, path: str, host: str, body: bytes = b"", headers: str = "") -> bytes:
    """Serialize one request; ``headers`` is pre-formatted ``Name: value\\r\\n`` lines."""
    if method == "GET":
        return f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{headers}\r\n".encode()
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n{headers}Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


# ------------------------------------------------------------------------ context


class CognitoIdentity:
    """``context.identity`` (both fields ``None`` unless the invoke carried one)."""

    __slots__ = ("cognito_identity_id", "cognito_identity_pool_id")

    def __init__(self, identity_id: str | None = None, pool_id: str | None = None) -> None:
        self.cognito_identity_id = identity_id
        self.cognito_identity_pool_id = pool_id

    def __repr__(self) -> str:
        return (
            f"CognitoIdentity([cognito_identity_id={self.cognito_identity_id},"
            f"cognito_identity_pool_id={self.cognito_identity_pool_id}])"
        )


class Client:
    """``context.client_context.client`` (the mobile SDK's client description)."""

    __slots__ = (
        "app_package_name",
        "app_title",
        "app_version_code",
        "app_version_name",
        "installation_id",
    )

    def __init__(self, data: dict[str, Any]) -> None:
        self.installation_id = data.get("installation_id")
        self.app_title = data.get("app_title")
        self.app_version_name = data.get("app_version_name")
        self.app_version_code = data.get("app_version_code")
        self.app_package_name = data.get("app_package_name")

    def __repr__(self) -> str:
        return (
            f"Client([installation_id={self.installation_id},app_title={self.app_title},"
            f"app_version_name={self.app_version_name},app_version_code={self.app_version_code},"
            f"app_package_name={self.app_package_name}])"
        )


class ClientContext:
    """``context.client_context``: the invoke's ``X-Amz-Client-Context``, parsed."""

    __slots__ = ("client", "custom", "env")

    def __init__(self, data: dict[str, Any]) -> None:
        client = data.get("client")
        self.custom = data.get("custom")
        self.env = data.get("env")
        self.client = Client(client) if isinstance(client, dict) else client

    def __repr__(self) -> str:
        return f"ClientContext([custom={self.custom},env={self.env},client={self.client}])"


class LambdaContext:
    """The handler's second argument, with AWS's attribute names and types.

    ``memory_limit_in_mb`` is a *string*, as AWS's Python runtime gives it (it
    copies ``AWS_LAMBDA_FUNCTION_MEMORY_SIZE`` verbatim); code written for AWS
    already calls ``int()`` on it.
    """

    # Per-environment values, set on the class by main(); per-invoke ones in __init__.
    _function_name: str | None = None
    _function_version: str | None = None
    _memory_limit_in_mb: str | None = None
    _log_group_name: str | None = None
    _log_stream_name: str | None = None

    def __init__(
        self,
        aws_request_id: str,
        invoked_function_arn: str | None,
        deadline_ms: int,
        client_context: ClientContext | None = None,
        identity: CognitoIdentity | None = None,
        tenant_id: str | None = None,
        w3c: dict[str, str] | None = None,
    ) -> None:
        cls = type(self)
        self.aws_request_id = aws_request_id
        self.log_group_name = cls._log_group_name
        self.log_stream_name = cls._log_stream_name
        self.function_name = cls._function_name
        self.memory_limit_in_mb = cls._memory_limit_in_mb
        self.function_version = cls._function_version
        self.invoked_function_arn = invoked_function_arn
        self.tenant_id = tenant_id
        self.client_context = client_context
        self.identity = identity if identity is not None else CognitoIdentity()
        self._epoch_deadline_time_in_ms = deadline_ms
        self._w3c = w3c

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the function's timeout (never negative)."""
        remaining = self._epoch_deadline_time_in_ms - int(time.time() * 1000)
        return remaining if remaining > 0 else 0

    def w3c(self) -> dict[str, str]:
        """W3C trace-context fields (traceparent, tracestate, baggage) of the invoke."""
        return dict(self._w3c) if self._w3c else {}

    def log(self, msg: object) -> None:
        """Write ``msg`` to the function's log as is (AWS's ``context.log``)."""
        sys.stdout.write(str(msg))

    def __repr__(self) -> str:
        return (
            f"LambdaContext([aws_request_id={self.aws_request_id},"
            f"log_group_name={self.log_group_name},log_stream_name={self.log_stream_name},"
            f"function_name={self.function_name},memory_limit_in_mb={self.memory_limit_in_mb},"
            f"function_version={self.function_version},"
            f"invoked_function_arn={self.invoked_function_arn},"
            f"client_context={self.client_context},identity={self.identity},"
            f"tenant_id={self.tenant_id}])"
        )


class _FaultError(Exception):
    """A failure of the runtime's own making, reported with an AWS ``Runtime.*`` type."""

    def __init__(self, error_type: str, message: str, trace: list[str] | None = None) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.trace = trace


_W3C_FIELDS = ("traceparent", "tracestate", "baggage")


def _parse_json_header(value: str, name: str) -> Any:
    try:
        return json.loads(value)
    except Exception as e:
        raise _FaultError(CONTEXT_UNMARSHAL_ERROR, f"Unable to parse {name} JSON: {e}") from None


def _make_context(headers: dict[str, str], request_id: str) -> LambdaContext:
    """Build the context from the ``/next`` headers (JSON headers parsed as AWS does)."""
    deadline = headers.get("lambda-runtime-deadline-ms")
    client_context = identity = w3c = None
    raw = headers.get("lambda-runtime-client-context")
    if raw:
        data = _parse_json_header(raw, "Client Context")
        if isinstance(data, dict):
            trace_ctx = data.pop("w3c", None)
            if isinstance(trace_ctx, dict):
                w3c = {k: v for k in _W3C_FIELDS if isinstance(v := trace_ctx.get(k), str)}
            client_context = ClientContext(data)
    raw = headers.get("lambda-runtime-cognito-identity")
    if raw:
        data = _parse_json_header(raw, "Cognito Identity")
        if isinstance(data, dict):
            identity = CognitoIdentity(
                data.get("cognitoIdentityId"), data.get("cognitoIdentityPoolId")
            )
    return LambdaContext(
        request_id,
        headers.get("lambda-runtime-invoked-function-arn"),
        int(deadline) if deadline and deadline.isdigit() else 0,
        client_context,
        identity,
        headers.get("lambda-runtime-aws-tenant-id"),
        w3c,
    )


# ----------------------------------------------------------------------- marshal


class _Marshaller:
    """Encodes results as AWS's Python runtime does, with the stdlib encoder.

    ``Decimal`` values are written as their exact digits (``Decimal("1.10")`` →
    ``1.10``; NaN → ``NaN``), which the stdlib cannot emit from ``default``: the
    hook returns a unique placeholder string that is swapped for the digits
    afterwards. The placeholder holds a per-process random nonce and NULs, and
    the swap only runs when a Decimal was seen, so ordinary results cost nothing.

    The C encoder is built once and called directly: ``JSONEncoder.encode``
    rebuilds it on every call, a third of the cost of encoding a small result.
    Settings match awslambdaric's on python3.11: ASCII output, NaN allowed.
    """

    __slots__ = ("_encode_fallback", "_iterencode", "_markers", "_nonce", "_raw")

    def __init__(self) -> None:
        self._nonce = os.urandom(8).hex()
        self._raw: list[str] = []
        self._markers: dict[int, Any] = {}
        self._encode_fallback = json.JSONEncoder(allow_nan=True, default=self._default).encode
        self._iterencode: Callable[[Any, int], list[str]] | None = None
        make = json.encoder.c_make_encoder
        if make is not None:
            # (markers, default, encoder, indent, key_sep, item_sep, sort_keys, skipkeys, allow_nan)
            self._iterencode = make(
                self._markers,
                self._default,
                json.encoder.encode_basestring_ascii,
                None,
                ": ",
                ", ",
                False,
                False,
                True,
            )

    def _default(self, obj: Any) -> Any:
        decimal = sys.modules.get("decimal")
        if decimal is not None and isinstance(obj, decimal.Decimal):
            if obj.is_nan():
                return float("nan")
            self._raw.append(str(obj))
            return f"\x00{self._nonce}:{len(self._raw) - 1}\x00"
        raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")

    def encode(self, obj: Any) -> str:
        """JSON text of ``obj``; raises on what AWS's runtime cannot marshal either."""
        try:
            if self._iterencode is not None:
                text = "".join(self._iterencode(obj, 0))
            else:
                text = self._encode_fallback(obj)
        except BaseException:
            self._markers.clear()  # the C encoder leaves entries behind on errors
            raise
        finally:
            raw, self._raw = self._raw, []
        for i, digits in enumerate(raw):
            text = text.replace(f'"\\u0000{self._nonce}:{i}\\u0000"', digits, 1)
        return text


def _make_decoder() -> Callable[[bytes], Any]:
    """``json.loads`` for UTF-8 bodies without its per-call encoding sniffing.

    Anything unusual (a BOM, UTF-16, invalid JSON) goes through ``json.loads``
    so errors read exactly as AWS's.
    """
    decode = json.JSONDecoder().decode
    loads = json.loads

    def loads_utf8(body: bytes) -> Any:
        try:
            return decode(body.decode())
        except Exception:
            return loads(body)

    return loads_utf8


# ------------------------------------------------------------------------ logging


class _RequestIdFilter(logging.Filter):
    """Stamps every record reaching our handler with the current request id."""

    def __init__(self) -> None:
        super().__init__()
        self.request_id = ""
        self.tenant_id: str | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        record.aws_request_id = self.request_id
        record.tenant_id = self.tenant_id
        return True


class _StdoutHandler(logging.Handler):
    """Writes formatted records to ``sys.stdout`` (looked up each time, as users swap it)."""

    lamina = True  # marks our handler so a second main() in one process replaces it
    log_format = ""  # "Text" or "JSON": which formatter it has

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stdout.write(self.format(record))
        except Exception:
            self.handleError(record)


class _TextFormatter(logging.Formatter):
    """``[LEVEL]\\t<ISO8601 UTC>.<ms>Z\\t<requestId>\\t<message>\\n`` (AWS's Text format)."""

    def __init__(self) -> None:
        super().__init__(
            "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s\n",
            "%Y-%m-%dT%H:%M:%S",
        )

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        # A traceback is appended after the newline without one of its own.
        return text if text.endswith("\n") else text + "\n"


class _JsonFormatter(logging.Formatter):
    """AWS's JSON log format: one object per record, in AWS's key order.

    ``timestamp`` has second precision (as AWS's Python runtime writes it),
    levels are folded to the standard five, a ``dict`` message stays an object,
    exceptions add ``stackTrace``/``errorType``/``errorMessage``/``location`` and
    ``extra=`` attributes become fields.
    """

    def __init__(self) -> None:
        super().__init__(datefmt=_JSON_TIME_FORMAT)
        self._encode = json.JSONEncoder(ensure_ascii=False, default=str).encode

    def format(self, record: logging.LogRecord) -> str:
        levelno = min(50, max(0, record.levelno)) // 10 * 10
        record.levelno = levelno
        record.levelname = logging.getLevelName(levelno)
        msg = record.msg
        out: dict[str, Any] = {
            "timestamp": self.formatTime(record, self.datefmt),
            "level": record.levelname,
            "message": msg if isinstance(msg, dict) and not record.args else record.getMessage(),
            "logger": record.name,
        }
        exc = record.exc_info
        if exc and exc[0] is not None:
            out["stackTrace"] = traceback.format_tb(exc[2])
            out["errorType"] = exc[0].__name__
            out["errorMessage"] = str(exc[1])
        out["requestId"] = getattr(record, "aws_request_id", None)
        if exc and exc[0] is not None:
            out["location"] = f"{record.pathname}:{record.funcName}:{record.lineno}"
        tenant = getattr(record, "tenant_id", None)
        if tenant is not None:
            out["tenantId"] = tenant
        for key, value in record.__dict__.items():
            if key not in _RESERVED_RECORD_FIELDS and key not in out:
                out[key] = value
        return self._encode({k: v for k, v in out.items() if v is not None}) + "\n"


def _setup_logging(log_format: str, log_level: str) -> _RequestIdFilter:
    """Give the root logger AWS's handler; returns the filter that carries the request id.

    A handler of the same format set up earlier in this process image (by the template,
    :func:`prepare_template`) is kept, with its filter reset: building a new one in every
    fork would copy the pages of the old one's objects anyway, to drop them.
    """
    logging.Formatter.converter = time.gmtime  # AWS's runtime makes every formatter UTC
    root = logging.getLogger()
    ours = [h for h in root.handlers if getattr(h, "lamina", False)]
    if len(ours) == 1 and getattr(ours[0], "log_format", None) == log_format \
            and len(ours[0].filters) == 1 and isinstance(ours[0].filters[0], _RequestIdFilter):
        request_filter = ours[0].filters[0]
        request_filter.request_id = ""
        request_filter.tenant_id = None
    else:
        for old in ours:
            root.removeHandler(old)
        handler = _StdoutHandler()
        handler.log_format = log_format
        handler.setFormatter(_JsonFormatter() if log_format == "JSON" else _TextFormatter())
        request_filter = _RequestIdFilter()
        handler.addFilter(request_filter)
        root.addHandler(handler)
    level = log_level.upper()
    if level == "TRACE":  # Lambda's level names; Python has no TRACE
        level = "DEBUG"
    if level in logging.getLevelNamesMapping():
        root.setLevel(level)
    return request_filter


def _setup_stdio() -> None:
    """Make stdout/stderr line-buffered so every printed line reaches the pipe at once.

    The platform reads fd 1/2 line by line and must see a function's lines
    before its result; the loop also flushes both before each post.
    """
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            try:  # noqa: SIM105 (contextlib is not otherwise imported)
                reconfigure(line_buffering=True)
            except Exception:
                pass


def _flush_stdio() -> None:
    # Per invoke: a bare try costs nothing in 3.11, contextlib.suppress builds an object.
    for stream in (sys.stdout, sys.stderr):
        try:  # noqa: SIM105
            stream.flush()
        except Exception:  # a user-installed stream may be broken; never fail the invoke
            pass


def _log_error(error: ErrorResult, log_format: str) -> None:
    """Print an error report the way AWS's runtime does before posting it."""
    if log_format == "JSON":
        record = {
            "timestamp": time.strftime(_JSON_TIME_FORMAT, time.gmtime()),
            "level": "ERROR",
            **error,
        }
        sys.stdout.write(json.dumps(record) + "\n")
        return
    description = "[ERROR]"
    if error["errorType"]:
        description += " " + error["errorType"]
    if error["errorMessage"]:
        description += (":" if error["errorType"] else "") + " " + error["errorMessage"]
    lines = [description, "Traceback (most recent call last):"]
    for element in error["stackTrace"]:
        if element == "":
            lines.append("")
            continue
        for line in element.splitlines():
            stripped = line.lstrip(" ")
            lines.append(_ERROR_INDENT * (len(line) - len(stripped)) + stripped)
    sys.stdout.write(_ERROR_LINE_SEPARATOR.join(lines) + "\n")


# ---------------------------------------------------------------------- handler


def _error_result(
    message: str, error_type: str, trace: list[str] | None, request_id: str = ""
) -> ErrorResult:
    return {
        "errorMessage": message or "",
        "errorType": error_type or "",
        "requestId": request_id,
        "stackTrace": trace or [],
    }


def _user_frames(tb: Any) -> list[str]:
    """``traceback.format_list`` of a traceback without this file's leading frames."""
    while tb is not None and os.path.abspath(tb.tb_frame.f_code.co_filename) == _THIS_FILE:
        tb = tb.tb_next
    return traceback.format_list(traceback.extract_tb(tb)) if tb is not None else []


def _exception_result(exc: BaseException, request_id: str = "") -> ErrorResult:
    try:
        message = str(exc)
    except Exception:
        message = f"<unprintable {type(exc).__name__} object>"
    return _error_result(message, type(exc).__name__, _user_frames(exc.__traceback__), request_id)


def _is_ip_literal(host: str) -> bool:
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
            return True
        except OSError:
            continue
    return False


def _load_handler(spec: str) -> tuple[Handler | None, ErrorResult | None]:
    """Import ``module.function`` (or ``dir/sub/module.function``) as AWS's runtime does."""
    try:
        module_name, function_name = spec.rsplit(".", 1)
    except ValueError as e:
        return None, _error_result(f"Bad handler '{spec}': {e}", MALFORMED_HANDLER_NAME, None)
    try:
        if module_name.split(".")[0] in sys.builtin_module_names:
            return None, _error_result(
                f"Cannot use built-in module {module_name} as a handler module",
                BUILT_IN_MODULE_CONFLICT,
                None,
            )
        module = importlib.import_module(module_name.replace("/", "."))
    except ImportError as e:
        return None, _error_result(
            f"Unable to import module '{module_name}': {e}", IMPORT_MODULE_ERROR, None
        )
    except SyntaxError as e:
        trace = [f'  File "{e.filename}" Line {e.lineno}\n    {e.text}']
        return None, _error_result(
            f"Syntax error in module '{module_name}': {e}", USER_CODE_SYNTAX_ERROR, trace
        )
    except Exception as e:
        return None, _exception_result(e)
    try:
        return getattr(module, function_name), None
    except AttributeError:
        return None, _error_result(
            f"Handler '{function_name}' missing on module '{module_name}'",
            HANDLER_NOT_FOUND,
            None,
        )


def _import_snapshot_hooks() -> str:
    """Import our ``snapshot_restore_py`` from beside this file, unless it is imported
    already; returns that directory."""
    here = os.path.dirname(_THIS_FILE)
    if "snapshot_restore_py" not in sys.modules:
        sys.path.insert(0, here)
        try:
            importlib.import_module("snapshot_restore_py")
        except ImportError:
            pass
        finally:
            sys.path.remove(here)
    return here


def _prepare_import_path(task_root: str) -> None:
    """Put the task root first on ``sys.path`` and keep ``/var/runtime/python`` reachable.

    Importing our ``snapshot_restore_py`` before any user code makes it the
    module every later ``import snapshot_restore_py`` gets, even when the
    function vendored AWS's copy.
    """
    here = _import_snapshot_hooks()
    if here not in sys.path:
        sys.path.append(here)
    if not sys.path or sys.path[0] != task_root:
        if task_root in sys.path:
            sys.path.remove(task_root)
        sys.path.insert(0, task_root)


_preloaded: tuple[str, Handler | None, ErrorResult | None] | None = None


def preload(handler: str | None = None, task_root: str | None = None) -> ErrorResult | None:
    """Run the Init step (import the handler) in a template, before any fork.

    Logging is set up first, as :func:`main` does before an Init, so the
    module code's log records and an init error's report reach stdout in
    the function's log format. The outcome is kept and reused by :func:`main`
    when it is called (in a fork) for the same handler: a failure is then
    posted to ``/runtime/init/error`` by the environment, as if it had just
    happened. Returns the init error (AWS's error shape) or ``None``. The
    template runs ``snapshot_restore_py.run_before_snapshot()`` itself
    afterwards; each fork's :func:`main` then runs the after-restore hooks
    when ``AWS_LAMBDA_INITIALIZATION_TYPE`` is ``snap-start``.
    """
    global _preloaded
    env = os.environ
    spec = handler if handler is not None else env.get("_HANDLER", "")
    log_format = "JSON" if env.get("AWS_LAMBDA_LOG_FORMAT", "").upper() == "JSON" else "Text"
    _setup_stdio()
    _setup_logging(log_format, env.get("AWS_LAMBDA_LOG_LEVEL", ""))
    _prepare_import_path(task_root or env.get("LAMBDA_TASK_ROOT") or os.getcwd())
    function, error = _load_handler(spec)
    if error is not None:
        _log_error(error, log_format)
        _flush_stdio()
    _preloaded = (spec, function, error)
    return error


def prepare_fork() -> None:
    """In a fork of a SnapStart snapshot, before it is given an environment: set up ahead
    what :func:`main` sets up first (stdio, the logging handler, the context class, JSON
    coders) and :func:`rehearse` the invoke loop. :func:`main` does it again, cheaply: the
    memory it writes, shared with the snapshot until then, has been copied here, off the
    environment's cold start.
    """
    env = os.environ
    log_format = "JSON" if env.get("AWS_LAMBDA_LOG_FORMAT", "").upper() == "JSON" else "Text"
    _setup_stdio()
    _setup_logging(log_format, env.get("AWS_LAMBDA_LOG_LEVEL", ""))
    _configure_context_class()
    rehearse()


def prepare_template(rounds: int = 16) -> None:
    """In a template, before it freezes its heap and forks: what every environment would
    otherwise do first, done once and shared copy-on-write by all of them.

    * ``snapshot_restore_py`` is imported (:func:`main` imports it before user code): an
      import in each fork costs the import system's first pass there (and a compile when the
      runtime directory has no ``.pyc``, which a read-only mount cannot get);
    * the logging handler of the default Text format is installed: :func:`main` keeps it
      when the function's format and level are the defaults (:func:`_setup_logging`);
    * the invoke loop runs ``rounds`` times (:func:`rehearse`): CPython 3.11 specialises
      bytecode in place after a few calls, and code specialised in the template is not
      written (so not copied) by every environment's first invocations.
    """
    _import_snapshot_hooks()
    _setup_logging("Text", "")
    for _ in range(rounds):
        rehearse(imports=False)


# The rehearsal's fake Runtime API answers: one event, then the 202 of its response post.
_REHEARSAL_BODY = b'{"rehearsal": true}'
_REHEARSAL_EVENT = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    b"Lambda-Runtime-Aws-Request-Id: 00000000-0000-4000-8000-000000000000\r\n"
    b"Lambda-Runtime-Deadline-Ms: 4102444800000\r\n"
    b"Lambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:us-east-1:000000000000:function:r\r\n"
    b"Lambda-Runtime-Trace-Id: Root=1-00000000-000000000000000000000000;Sampled=0\r\n"
    + f"Content-Length: {len(_REHEARSAL_BODY)}\r\n\r\n".encode() + _REHEARSAL_BODY
    + b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: 15"
    b'\r\n\r\n{"status":"OK"}'
)


def _rehearsal_handler(event: Any, context: LambdaContext) -> Any:
    return {"ok": bool(event), "left": context.get_remaining_time_in_millis() > 0}


def rehearse(imports: bool = True) -> None:
    """Run the invoke loop once against a local socket pair and a do-nothing handler, and
    (``imports``) import a throwaway handler module from a fresh directory in ``/tmp``.

    A process forked from a template shares every page with it; the first write to a page
    copies it, and the first run of a code path writes many (reference counts, the type
    attribute cache, specialised bytecode). Spares (processes forked ahead of demand) call
    this while they wait, so that an environment's handler import and first invocation find
    those pages already their own. It leaves nothing behind: no module, no file, no
    environment variable, no handler; :func:`main` sets up everything it uses afresh.
    """
    if imports:
        _rehearse_import()
    trace = os.environ.get("_X_AMZN_TRACE_ID")
    ours, theirs = socket.socketpair()
    try:
        theirs.sendall(_REHEARSAL_EVENT)
        theirs.shutdown(socket.SHUT_WR)  # after the 202, the loop reads end-of-file and stops
        conn = _Connection("127.0.0.1:9")
        conn._sock = ours
        runtime = _Runtime(conn, "Text", _RequestIdFilter())
        try:  # noqa: SIM105 (contextlib is not otherwise imported)
            runtime.loop(_rehearsal_handler)
        except RuntimeAPIError:
            pass
    finally:
        ours.close()
        theirs.close()
        if trace is None:
            os.environ.pop("_X_AMZN_TRACE_ID", None)
        else:
            os.environ["_X_AMZN_TRACE_ID"] = trace


def _rehearse_import() -> None:
    """Import a handler the way :func:`main` does (a new path entry, its finder, the source
    read and compiled, the bytecode cache tried), from a directory made and removed here.
    Skipped where ``/tmp`` is not writable (the template's read-only root)."""
    token = os.urandom(6).hex()
    directory = f"/tmp/.lamina-rehearsal-{token}"
    try:
        os.mkdir(directory, 0o700)
    except OSError:
        return
    name = f"_lamina_rehearsal_{token}"
    source = os.path.join(directory, name + ".py")
    cache = os.path.join(directory, "__pycache__")
    try:
        with open(source, "w") as f:
            f.write("def handler(event, context):\n    return event\n")
        sys.path.insert(0, directory)
        _load_handler(name + ".handler")
    except OSError:
        pass
    finally:
        if directory in sys.path:
            sys.path.remove(directory)
        sys.path_importer_cache.pop(directory, None)
        sys.modules.pop(name, None)
        if os.path.isdir(cache):
            for entry in os.listdir(cache):
                os.unlink(os.path.join(cache, entry))
            os.rmdir(cache)
        if os.path.exists(source):
            os.unlink(source)
        os.rmdir(directory)


# -------------------------------------------------------------------------- main


class _Runtime:
    """One environment's runtime loop over one connection."""

    def __init__(self, conn: _Connection, log_format: str, request_filter: _RequestIdFilter):
        self.conn = conn
        self.log_format = log_format
        self.request_filter = request_filter
        self.marshaller = _Marshaller()
        self.next_request = _request("GET", _NEXT_PATH, conn.host)

    def post_init_error(self, error: ErrorResult, error_type: str | None = None) -> None:
        """POST ``/runtime/init/error``; the caller exits afterwards whatever the answer."""
        header = f"{_ERROR_TYPE_HEADER}: {_header_value(error_type or error['errorType'])}\r\n"
        body = json.dumps(error).encode()
        self.conn.send(
            _request(
                "POST",
                _INIT_ERROR_PATH,
                self.conn.host,
                body,
                "Content-Type: application/json\r\n" + header,
            )
        )
        self.conn.read()

    def restore(self, restored: bool = False) -> int | None:
        """AWS's SnapStart protocol, for a runtime with ``snap-start`` init.

        Standalone: runs the before-snapshot hooks, waits on
        ``/runtime/restore/next`` and runs the after-restore hooks. ``restored``
        (a fork of a lamina snapshot, whose Init and before-snapshot hooks ran
        in the snapshot process): the after-restore hooks only. A failing hook
        is reported (``/runtime/init/error`` or ``/runtime/restore/error``) and
        the runtime exits as AWS's does: 64 and 65.
        """
        import snapshot_restore_py as hooks  # imported before user code, so already loaded

        try:
            if not restored:
                _run_before_snapshot(hooks)
                self.conn.send(_request("GET", _RESTORE_NEXT_PATH, self.conn.host))
                status, _, _ = self.conn.read()
                if status != 200:
                    raise RuntimeAPIError(f"/runtime/restore/next answered {status}")
        except RuntimeAPIError:
            raise
        except Exception as e:
            error = _exception_result(e)
            _log_error(error, self.log_format)
            self.post_init_error(error, BEFORE_SNAPSHOT_ERROR)
            return 64
        try:
            _run_after_restore(hooks)
        except Exception as e:
            error = _exception_result(e)
            _log_error(error, self.log_format)
            header = f"{_ERROR_TYPE_HEADER}: {AFTER_RESTORE_ERROR}\r\n"
            self.conn.send(
                _request(
                    "POST",
                    _RESTORE_ERROR_PATH,
                    self.conn.host,
                    json.dumps(error).encode(),
                    "Content-Type: application/json\r\n" + header,
                )
            )
            self.conn.read()
            return 65
        return None

    def loop(self, handler: Handler) -> int:
        """Serve invocations until the connection breaks; returns the exit status."""
        conn = self.conn
        host = conn.host
        next_request = self.next_request
        request_filter = self.request_filter
        encode = self.marshaller.encode
        environ = os.environ
        make_context = _make_context
        stdout_flush = _flush_stdio
        loads = _make_decoder()
        conn.send(next_request)
        while True:
            status, headers, body = conn.read()
            if status != 200:
                raise RuntimeAPIError(f"/runtime/invocation/next answered {status}")
            request_id = headers.get("lambda-runtime-aws-request-id", "")
            request_filter.request_id = request_id
            request_filter.tenant_id = headers.get("lambda-runtime-aws-tenant-id")
            trace_id = headers.get("lambda-runtime-trace-id")
            if trace_id is not None:
                environ["_X_AMZN_TRACE_ID"] = trace_id
            elif "_X_AMZN_TRACE_ID" in environ:
                del environ["_X_AMZN_TRACE_ID"]

            error: ErrorResult | None = None
            try:
                context = make_context(headers, request_id)
                if headers.get("content-type", "application/json") == "application/json":
                    event = _unmarshal(loads, body)
                else:
                    event = body
                result = handler(event, context)
                if type(result) is bytes:
                    payload, content_type = result, "application/unknown"
                else:
                    payload, content_type = _marshal(encode, result), "application/json"
            except _FaultError as e:
                error = _error_result(e.message, e.error_type, e.trace, request_id)
            except Exception as e:
                error = _exception_result(e, request_id)

            if error is None:
                head = (
                    f"POST {_INVOCATION_PATH}{request_id}/response HTTP/1.1\r\nHost: {host}\r\n"
                    f"Content-Type: {content_type}\r\nContent-Length: {len(payload)}\r\n\r\n"
                )
            else:
                _log_error(error, self.log_format)
                payload = json.dumps(error).encode()
                head = (
                    f"POST {_INVOCATION_PATH}{request_id}/error HTTP/1.1\r\nHost: {host}\r\n"
                    f"Content-Type: application/json\r\n"
                    f"{_ERROR_TYPE_HEADER}: {_header_value(error['errorType'])}\r\n"
                    f"Content-Length: {len(payload)}\r\n\r\n"
                )
            stdout_flush()
            # The post and the next long poll in one write: one syscall, one wake-up.
            conn.send(b"".join((head.encode(), payload, next_request)))
            status, _, _ = conn.read()
            if status >= 500:
                raise RuntimeAPIError(f"the Runtime API answered {status} to a post")
            if status != 202:
                # 4xx: the platform refused this result (stale id, too large...);
                # the invocation is over for us either way, carry on.
                sys.stderr.write(f"lamina runtime: post for {request_id} answered {status}\n")
            if not conn.is_open:  # the server closed after the 202: poll anew
                conn.send(next_request)


def _unmarshal(loads: Callable[[bytes], Any], body: bytes) -> Any:
    try:
        return loads(body)
    except Exception as e:
        raise _FaultError(UNMARSHAL_ERROR, f"Unable to unmarshal input: {e}") from None


def _marshal(encode: Callable[[Any], str], result: Any) -> bytes:
    try:
        return encode(result).encode()
    except Exception as e:
        raise _FaultError(MARSHAL_ERROR, f"Unable to marshal response: {e}") from None


def _header_value(value: str) -> str:
    """A header-safe copy of ``value`` (no CR/LF, ASCII only)."""
    if value.isascii() and "\r" not in value and "\n" not in value:
        return value
    return value.encode("ascii", "backslashreplace").decode().replace("\r", "").replace("\n", "")


def _run_before_snapshot(hooks: Any) -> None:
    run = getattr(hooks, "run_before_snapshot", None)
    if run is not None:
        run()
        return
    registry = hooks.get_before_snapshot()  # AWS's own module: drive its registry
    while registry:
        func, args, kwargs = registry.pop()
        func(*args, **kwargs)


def _run_after_restore(hooks: Any) -> None:
    run = getattr(hooks, "run_after_restore", None)
    if run is not None:
        run()
        return
    for func, args, kwargs in hooks.get_after_restore():
        func(*args, **kwargs)


def _configure_context_class() -> None:
    env = os.environ.get
    LambdaContext._function_name = env("AWS_LAMBDA_FUNCTION_NAME")
    LambdaContext._function_version = env("AWS_LAMBDA_FUNCTION_VERSION")
    LambdaContext._memory_limit_in_mb = env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
    LambdaContext._log_group_name = env("AWS_LAMBDA_LOG_GROUP_NAME")
    LambdaContext._log_stream_name = env("AWS_LAMBDA_LOG_STREAM_NAME")


def _exit_status(exc: SystemExit) -> int:
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    sys.stderr.write(f"{code}\n")
    return 1


def main(handler: str | None = None) -> int:
    """Run this environment's runtime: Init, then invocations until the end.

    Returns the process exit status (the caller exits with it). A
    ``SystemExit`` raised by user code ends the runtime with its status, as it
    would end AWS's. ``handler`` overrides ``_HANDLER`` (standalone use).
    """
    try:
        return _main(handler)
    except SystemExit as e:
        return _exit_status(e)
    except RuntimeAPIError as e:
        sys.stderr.write(f"lamina runtime: {e}\n")
        return 1
    finally:
        _flush_stdio()


def _main(handler: str | None) -> int:
    env = os.environ
    spec = handler if handler is not None else env.get("_HANDLER", "")
    api = env.get("AWS_LAMBDA_RUNTIME_API")
    if not api:
        sys.stderr.write("lamina runtime: AWS_LAMBDA_RUNTIME_API is not set\n")
        return 1
    log_format = "JSON" if env.get("AWS_LAMBDA_LOG_FORMAT", "").upper() == "JSON" else "Text"
    _setup_stdio()
    request_filter = _setup_logging(log_format, env.get("AWS_LAMBDA_LOG_LEVEL", ""))
    _configure_context_class()
    runtime = _Runtime(_Connection(api), log_format, request_filter)

    preloaded = _preloaded
    if preloaded is not None and preloaded[0] == spec:
        function, error = preloaded[1], preloaded[2]
    else:
        _prepare_import_path(env.get("LAMBDA_TASK_ROOT") or os.getcwd())
        function, error = _load_handler(spec)
        preloaded = None
    if error is not None or function is None:
        error = error or _error_result("handler is None", HANDLER_NOT_FOUND, None)
        if preloaded is None:  # preload() reported it already
            _log_error(error, log_format)
            _flush_stdio()
        runtime.post_init_error(error)
        return 1
    if env.get("AWS_LAMBDA_INITIALIZATION_TYPE") == "snap-start":
        status = runtime.restore(restored=preloaded is not None)
        if status is not None:
            return status
    return runtime.loop(function)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else None))
