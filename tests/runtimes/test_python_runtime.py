"""The Python bootstrap, run as a real process against the test Runtime API server."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest
from runtime_harness import (
    FUNCTION_ARN,
    PYTHON_BOOTSTRAP,
    RuntimeAPIServer,
    StartRuntime,
    base_env,
    write_tree,
)

from lamina.engine.runtime_turn import parse_turn

NEXT = "GET /2018-06-01/runtime/invocation/next"
TEXT_LOG = re.compile(r"^\[(\w+)\]\t(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)\t([\w-]*)\t(.*)$")


def text_record(line: str) -> tuple[str, str, str]:
    """(level, request id, message) of an AWS Text-format logging line."""
    match = TEXT_LOG.match(line)
    assert match, f"not a Text log line: {line!r}"
    return match[1], match[3], match[4]


def src(text: str) -> str:
    return textwrap.dedent(text).lstrip()


# ------------------------------------------------------------------ results


def test_result_context_and_environment(start_python: StartRuntime) -> None:
    runtime = start_python(
        {
            "app.py": src("""
                import os

                def handler(event, context):
                    return {
                        "event": event,
                        "function_name": context.function_name,
                        "function_version": context.function_version,
                        "invoked_function_arn": context.invoked_function_arn,
                        "memory_limit_in_mb": context.memory_limit_in_mb,
                        "aws_request_id": context.aws_request_id,
                        "log_group_name": context.log_group_name,
                        "log_stream_name": context.log_stream_name,
                        "identity": [context.identity.cognito_identity_id,
                                     context.identity.cognito_identity_pool_id],
                        "client_context": context.client_context,
                        "remaining": context.get_remaining_time_in_millis(),
                        "trace": os.environ.get("_X_AMZN_TRACE_ID"),
                        "cwd": os.getcwd(),
                    }
            """)
        }
    )
    deadline = int(time.time() * 1000) + 5000
    out = runtime.invoke(
        {"a": [1, 2.5, "é"]},
        request_id="req-1",
        deadline_ms=deadline,
        headers={"Lambda-Runtime-Trace-Id": "Root=1-5759e988-bd862e3fe1be46a994272793"},
    )
    assert out.kind == "response"
    assert out.headers["content-type"] == "application/json"
    body = out.json()
    assert body["event"] == {"a": [1, 2.5, "é"]}
    assert body["function_name"] == "fn"
    assert body["function_version"] == "$LATEST"
    assert body["invoked_function_arn"] == FUNCTION_ARN
    # A string, exactly as AWS's runtime copies AWS_LAMBDA_FUNCTION_MEMORY_SIZE.
    assert body["memory_limit_in_mb"] == "128"
    assert body["aws_request_id"] == "req-1"
    assert body["log_group_name"] == "/aws/lambda/fn"
    assert body["log_stream_name"].startswith("2026/01/01/[$LATEST]")
    assert body["identity"] == [None, None]
    assert body["client_context"] is None
    assert 4000 < body["remaining"] <= 5000
    assert body["trace"] == "Root=1-5759e988-bd862e3fe1be46a994272793"
    # Result bytes are exactly what json.dumps writes (ASCII, ", " separators).
    assert b'"event": {"a": [1, 2.5, "\\u00e9"]}' in out.body


def test_trace_id_is_replaced_and_removed(start_python: StartRuntime) -> None:
    runtime = start_python(
        {"app.py": "import os\ndef handler(e, c):\n    return os.environ.get('_X_AMZN_TRACE_ID')\n"}
    )
    assert runtime.invoke(headers={"Lambda-Runtime-Trace-Id": "Root=A"}).json() == "Root=A"
    assert runtime.invoke(headers={"Lambda-Runtime-Trace-Id": "Root=B"}).json() == "Root=B"
    assert runtime.invoke(headers={"Lambda-Runtime-Trace-Id": None}).json() is None


def test_client_context_and_identity(start_python: StartRuntime) -> None:
    runtime = start_python(
        {
            "app.py": src("""
                def handler(event, context):
                    cc = context.client_context
                    return {
                        "custom": cc.custom, "env": cc.env,
                        "installation_id": cc.client.installation_id,
                        "app_title": cc.client.app_title,
                        "w3c": context.w3c(),
                        "identity": context.identity.cognito_identity_id,
                        "pool": context.identity.cognito_identity_pool_id,
                    }
            """)
        }
    )
    client_context = {
        "client": {"installation_id": "i-1", "app_title": "t"},
        "custom": {"k": "v"},
        "env": {"locale": "en"},
        "w3c": {"traceparent": "00-abc-def-01", "other": "dropped"},
    }
    identity = {"cognitoIdentityId": "id-1", "cognitoIdentityPoolId": "pool-1"}
    out = runtime.invoke(
        {},
        headers={
            "Lambda-Runtime-Client-Context": json.dumps(client_context),
            "Lambda-Runtime-Cognito-Identity": json.dumps(identity),
        },
    )
    assert out.json() == {
        "custom": {"k": "v"},
        "env": {"locale": "en"},
        "installation_id": "i-1",
        "app_title": "t",
        "w3c": {"traceparent": "00-abc-def-01"},
        "identity": "id-1",
        "pool": "pool-1",
    }
    bad = runtime.invoke({}, headers={"Lambda-Runtime-Client-Context": "{nope"})
    assert bad.kind == "error"
    assert bad.json()["errorType"] == "Runtime.LambdaContextUnmarshalError"
    assert bad.json()["errorMessage"].startswith("Unable to parse Client Context JSON: ")


def test_result_encoding(start_python: StartRuntime) -> None:
    runtime = start_python(
        {
            "app.py": src("""
                from decimal import Decimal

                def handler(event, context):
                    kind = event["kind"]
                    if kind == "decimal":
                        return {"price": Decimal("1.10"), "big": Decimal("12345678901234567890.5"),
                                "nan": Decimal("NaN"), "list": [Decimal("-0"), 1.5]}
                    if kind == "bytes":
                        return b"\\x00raw"
                    if kind == "str":
                        return "hello"
                    if kind == "none":
                        return None
                    if kind == "nan":
                        return float("nan")
                    if kind == "unicode":
                        return {"s": "日本"}
            """)
        }
    )
    out = runtime.invoke({"kind": "decimal"})
    assert out.body == (
        b'{"price": 1.10, "big": 12345678901234567890.5, "nan": NaN, "list": [-0, 1.5]}'
    )
    out = runtime.invoke({"kind": "bytes"})
    assert (out.body, out.headers["content-type"]) == (b"\x00raw", "application/unknown")
    assert runtime.invoke({"kind": "str"}).body == b'"hello"'
    assert runtime.invoke({"kind": "none"}).body == b"null"
    assert runtime.invoke({"kind": "nan"}).body == b"NaN"
    assert runtime.invoke({"kind": "unicode"}).body == b'{"s": "\\u65e5\\u672c"}'


def test_large_payloads(start_python: StartRuntime) -> None:
    runtime = start_python(
        {
            "app.py": "def handler(e, c):\n"
            "    return {'n': len(e['s']), 'back': e['s'][:3] + 'x' * e['r']}\n"
        }
    )
    started = time.monotonic()
    out = runtime.invoke({"s": "é" * 2_500_000, "r": 5_000_000})
    assert out.json()["n"] == 2_500_000
    assert len(out.json()["back"]) == 5_000_003
    assert time.monotonic() - started < 10


def test_event_that_is_not_json(start_python: StartRuntime) -> None:
    runtime = start_python({"app.py": "def handler(e, c):\n    return repr(e)\n"})
    out = runtime.invoke(raw=b"\x01\x02", headers={"Content-Type": "application/octet-stream"})
    assert out.json() == "b'\\x01\\x02'"
    out = runtime.invoke(raw=b"{nope")
    assert out.kind == "error"
    assert out.json()["errorType"] == "Runtime.UnmarshalError"
    assert out.json()["errorMessage"].startswith("Unable to unmarshal input: Expecting")
    assert runtime.invoke(raw='{"s": "é"}'.encode()).json() == "{'s': 'é'}"


# ------------------------------------------------------------------- errors


def test_handler_exception(start_python: StartRuntime, tmp_path: Path) -> None:
    runtime = start_python(
        {
            "app.py": src("""
                import helper

                def handler(event, context):
                    print("before the error")
                    helper.fail(event["n"])
            """),
            "helper.py": src("""
                def fail(n):
                    raise ValueError(f"bad value {n}")
            """),
        }
    )
    out = runtime.invoke({"n": 7}, request_id="req-err")
    assert out.kind == "error"
    assert out.headers["lambda-runtime-function-error-type"] == "ValueError"
    task = tmp_path / "task"
    assert json.loads(out.body) == {
        "errorMessage": "bad value 7",
        "errorType": "ValueError",
        "requestId": "req-err",
        "stackTrace": [
            f'  File "{task}/app.py", line 5, in handler\n    helper.fail(event["n"])\n',
            f'  File "{task}/helper.py", line 2, in fail\n'
            '    raise ValueError(f"bad value {n}")\n',
        ],
    }
    assert list(json.loads(out.body)) == ["errorMessage", "errorType", "requestId", "stackTrace"]
    lines = runtime.lines()
    assert lines[0] == "before the error"
    # AWS's text report: one line, CR-separated, indentation as no-break spaces.
    report = lines[1].split("\r")
    assert report[:2] == ["[ERROR] ValueError: bad value 7", "Traceback (most recent call last):"]
    assert report[2] == f'\u00a0\u00a0File "{task}/app.py", line 5, in handler'
    assert report[3] == '\u00a0\u00a0\u00a0\u00a0helper.fail(event["n"])'
    # The environment stays usable.
    assert runtime.invoke({"n": 1}).kind == "error"


def test_marshal_error(start_python: StartRuntime) -> None:
    runtime = start_python({"app.py": "def handler(e, c):\n    return {'s': {1, 2}}\n"})
    out = runtime.invoke({}, request_id="req-m")
    assert out.kind == "error"
    assert out.headers["lambda-runtime-function-error-type"] == "Runtime.MarshalError"
    assert out.json() == {
        "errorMessage": "Unable to marshal response: Object of type set is not JSON serializable",
        "errorType": "Runtime.MarshalError",
        "requestId": "req-m",
        "stackTrace": [],
    }


INIT_ERRORS = [
    (
        {"app.py": "import not_there\ndef handler(e, c):\n    pass\n"},
        "app.handler",
        "Runtime.ImportModuleError",
        "Unable to import module 'app': No module named 'not_there'",
    ),
    (
        {"other.py": ""},
        "app.handler",
        "Runtime.ImportModuleError",
        "Unable to import module 'app': No module named 'app'",
    ),
    (
        {"app.py": "def handler(e, c):\n    pass\n"},
        "app.nope",
        "Runtime.HandlerNotFound",
        "Handler 'nope' missing on module 'app'",
    ),
    (
        {"app.py": "def handler(e, c):\n    pass\n"},
        "app",
        "Runtime.MalformedHandlerName",
        "Bad handler 'app': not enough values to unpack (expected 2, got 1)",
    ),
    (
        {"app.py": ""},
        "sys.handler",
        "Runtime.BuiltInModuleConflict",
        "Cannot use built-in module sys as a handler module",
    ),
    (
        {"app.py": "x = 1\ndef handler(e, c)\n    pass\n"},
        "app.handler",
        "Runtime.UserCodeSyntaxError",
        "Syntax error in module 'app': expected ':' (app.py, line 2)",
    ),
    (
        {"app.py": "raise RuntimeError('no config')\n"},
        "app.handler",
        "RuntimeError",
        "no config",
    ),
]


@pytest.mark.parametrize(("files", "handler", "error_type", "message"), INIT_ERRORS)
def test_init_errors(
    start_python: StartRuntime, files: dict[str, str], handler: str, error_type: str, message: str
) -> None:
    runtime = start_python(files, handler=handler)
    request = runtime.server.wait_init_error()
    assert runtime.wait() == 1
    assert request.headers["lambda-runtime-function-error-type"] == error_type
    body = json.loads(request.body)
    assert body["errorType"] == error_type
    assert body["errorMessage"] == message
    assert body["requestId"] == ""
    assert isinstance(body["stackTrace"], list)
    if error_type == "Runtime.UserCodeSyntaxError":
        (frame,) = body["stackTrace"]
        assert frame.startswith('  File "') and frame.endswith(
            'app.py" Line 2\n    def handler(e, c)\n'
        )
    if error_type == "RuntimeError":
        assert body["stackTrace"][-1].endswith(
            "app.py\", line 1, in <module>\n    raise RuntimeError('no config')\n"
        )
        assert not any("lamina_bootstrap" in frame for frame in body["stackTrace"])
    # The report is printed before the post, as AWS's runtime does.
    assert runtime.output().startswith(f"[ERROR] {error_type}: {message}\rTraceback")


# --------------------------------------------------------------------- logs


def test_print_and_logging_reach_the_pipe_before_the_result(start_python: StartRuntime) -> None:
    runtime = start_python(
        {
            "app.py": src("""
                import logging, sys
                logger = logging.getLogger()
                logger.setLevel(logging.INFO)
                print("at init")

                def handler(event, context):
                    for i in range(event["n"]):
                        print("line", i)
                    print("partial", end="")
                    print(" end")
                    sys.stderr.write("to stderr\\n")
                    logger.info("info %s", context.aws_request_id)
                    logging.getLogger("child").warning("two\\nlines")
                    logger.debug("hidden")
                    try:
                        1 / 0
                    except ZeroDivisionError:
                        logger.exception("failed")
                    return "done"
            """)
        }
    )
    out = runtime.invoke({"n": 200}, request_id="req-log")
    assert out.json() == "done"
    # Everything was in the pipe when the response arrived: read without waiting.
    lines = runtime.lines()
    assert lines[0] == "at init"
    assert lines[1:201] == [f"line {i}" for i in range(200)]
    assert lines[201:203] == ["partial end", "to stderr"]
    assert text_record(lines[203]) == ("INFO", "req-log", "info req-log")
    stamp = TEXT_LOG.match(lines[203])[2]  # type: ignore[index]
    logged = time.mktime(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
    assert abs(time.time() - logged) < 60  # UTC
    # awslambdaric writes a multi-line message as is: its lines follow the record.
    assert text_record(lines[204]) == ("WARNING", "req-log", "two")
    assert lines[205] == "lines"
    assert text_record(lines[206]) == ("ERROR", "req-log", "failed")
    assert lines[207] == "Traceback (most recent call last):"
    assert lines[-1] == "ZeroDivisionError: division by zero"
    assert not any("hidden" in line for line in lines)


def test_log_level_from_environment(start_python: StartRuntime) -> None:
    runtime = start_python(
        {"app.py": "import logging\ndef handler(e, c):\n    logging.debug('dbg')\n    return 1\n"},
        AWS_LAMBDA_LOG_LEVEL="debug",
    )
    runtime.invoke({}, request_id="r")
    assert text_record(runtime.lines()[0]) == ("DEBUG", "r", "dbg")


def test_json_log_format(start_python: StartRuntime) -> None:
    runtime = start_python(
        {
            "app.py": src("""
                import logging
                log = logging.getLogger("app")

                def handler(event, context):
                    print("plain print")
                    log.info("hello %s", "world")
                    log.warning({"structured": True})
                    log.info("with extra", extra={"order": 42})
                    try:
                        raise KeyError("k")
                    except KeyError:
                        log.exception("oops")
                    raise ValueError("boom")
            """)
        },
        AWS_LAMBDA_LOG_FORMAT="JSON",
        AWS_LAMBDA_LOG_LEVEL="INFO",
    )
    out = runtime.invoke({}, request_id="req-json")
    assert out.kind == "error"
    lines = runtime.lines()
    assert lines[0] == "plain print"
    records = [json.loads(line) for line in lines[1:]]
    assert records[0] == {
        "timestamp": records[0]["timestamp"],
        "level": "INFO",
        "message": "hello world",
        "logger": "app",
        "requestId": "req-json",
    }
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", records[0]["timestamp"])
    assert list(records[0]) == ["timestamp", "level", "message", "logger", "requestId"]
    assert records[1]["message"] == {"structured": True}
    assert records[1]["level"] == "WARNING"
    assert records[2]["order"] == 42
    assert records[3]["errorType"] == "KeyError"
    assert records[3]["errorMessage"] == "'k'"
    assert records[3]["stackTrace"][0].startswith('  File "')
    assert records[3]["location"].endswith("app.py:handler:12")
    # The error report itself, in JSON.
    assert records[4]["level"] == "ERROR"
    assert records[4]["errorType"] == "ValueError"
    assert records[4]["requestId"] == "req-json"
    assert list(records[4]) == [
        "timestamp",
        "level",
        "errorMessage",
        "errorType",
        "requestId",
        "stackTrace",
    ]


# --------------------------------------------------------- warm reuse, paths


def test_module_state_and_tmp_persist_across_invokes(start_python: StartRuntime) -> None:
    runtime = start_python(
        {
            "app.py": src("""
                import os, tempfile
                COUNT = 0
                PATH = os.path.join(tempfile.gettempdir(), f"lamina-test-{os.getpid()}")

                def handler(event, context):
                    global COUNT
                    COUNT += 1
                    with open(PATH, "a") as f:
                        f.write("x")
                    with open(PATH) as f:
                        data = f.read()
                    if event.get("last"):
                        os.remove(PATH)
                    return [COUNT, data, os.getpid()]
            """)
        }
    )
    results = [runtime.invoke({}).json() for _ in range(3)] + [runtime.invoke({"last": 1}).json()]
    assert [r[:2] for r in results] == [[1, "x"], [2, "xx"], [3, "xxx"], [4, "xxxx"]]
    assert len({r[2] for r in results}) == 1
    assert runtime.server.state.connections == 1


@pytest.mark.parametrize("handler", ["pkg.sub.app.handler", "pkg/sub/app.handler"])
def test_handler_in_sub_package(start_python: StartRuntime, handler: str) -> None:
    runtime = start_python(
        {
            "pkg/__init__.py": "",
            "pkg/sub/__init__.py": "",
            "pkg/sub/app.py": "from . import util\ndef handler(e, c):\n    return util.VALUE\n",
            "pkg/sub/util.py": "VALUE = 'nested'\n",
        },
        handler=handler,
    )
    assert runtime.invoke({}).json() == "nested"


def test_snapshot_restore_hooks_are_importable(start_python: StartRuntime) -> None:
    runtime = start_python(
        {
            "app.py": src("""
                from snapshot_restore_py import register_after_restore, register_before_snapshot
                CALLS = []

                @register_before_snapshot
                def before():
                    CALLS.append("before")

                register_after_restore(CALLS.append, "after")

                def handler(event, context):
                    return CALLS
            """)
        },
        AWS_LAMBDA_INITIALIZATION_TYPE="snap-start",
    )
    # Standalone with snap-start: AWS's protocol (hooks around /runtime/restore/next).
    assert runtime.invoke({}).json() == ["before", "after"]
    paths = [r.path for r in runtime.server.state.requests]
    assert paths[0] == "/2018-06-01/runtime/restore/next"


@pytest.mark.parametrize(
    ("hook", "status", "error_type"),
    [
        ("register_before_snapshot", 64, "Runtime.BeforeSnapshotError"),
        ("register_after_restore", 65, "Runtime.AfterRestoreError"),
    ],
)
def test_snapshot_hook_failures(
    start_python: StartRuntime, hook: str, status: int, error_type: str
) -> None:
    runtime = start_python(
        {
            "app.py": src(f"""
                import snapshot_restore_py

                def broken():
                    raise OSError("cannot reconnect")

                snapshot_restore_py.{hook}(broken)

                def handler(event, context):
                    return "unreachable"
            """)
        },
        AWS_LAMBDA_INITIALIZATION_TYPE="snap-start",
    )
    assert runtime.wait() == status
    state = runtime.server.state
    (request,) = state.init_errors if status == 64 else state.restore_errors
    assert request.headers["lambda-runtime-function-error-type"] == error_type
    body = json.loads(request.body)
    assert (body["errorType"], body["errorMessage"]) == ("OSError", "cannot reconnect")
    assert body["stackTrace"][-1].endswith('raise OSError("cannot reconnect")\n')


def test_snapshot_restore_module_runs_hooks_in_aws_order() -> None:
    sys.path.insert(0, str(PYTHON_BOOTSTRAP.parent))
    try:
        import snapshot_restore_py as hooks
    finally:
        sys.path.pop(0)
    calls: list[object] = []
    hooks.register_before_snapshot(calls.append, "b1")
    decorated = hooks.register_before_snapshot(lambda: calls.append("b2"))
    hooks.register_after_restore(calls.append, "a1")
    hooks.register_after_restore(lambda x, y=0: calls.append((x, y)), 1, y=2)
    assert callable(decorated)
    hooks.run_before_snapshot()
    hooks.run_before_snapshot()  # consumed: runs once
    hooks.run_after_restore()
    hooks.run_after_restore()  # every restore runs them all
    assert calls == ["b2", "b1", "a1", (1, 2), "a1", (1, 2)]
    assert hooks.get_before_snapshot() == []
    hooks.get_after_restore().clear()


# --------------------------------------------------------------------- wire


def test_wire_post_and_next_share_one_write(start_python: StartRuntime) -> None:
    runtime = start_python({"app.py": "def handler(e, c):\n    return e\n"})
    runtime.invoke(1, request_id="a")
    runtime.invoke(2, request_id="b")
    runtime.invoke(3, request_id="c")
    batches = runtime.server.state.batches
    assert batches[0] == [NEXT]
    for rid in "abc":
        assert [f"POST /2018-06-01/runtime/invocation/{rid}/response", NEXT] in batches
    post = runtime.server.state.requests[1]
    assert post.headers["content-type"] == "application/json"
    assert post.headers["content-length"] == "1"
    assert runtime.server.state.connections == 1


def test_the_servers_fast_path_recognises_every_turn(start_python: StartRuntime) -> None:
    """lamina's Runtime API takes the post-and-next pair without its parser when it is in the
    bootstrap's own form (engine/runtime_turn.py): a change here must not silently lose it."""
    runtime = start_python({"app.py": src("""
        def handler(event, context):
            return event["value"].encode() if event["raw"] else event["value"]
    """)})
    ids = [str(uuid.uuid4()) for _ in range(4)]
    events = [{"raw": False, "value": {"a": 1}}, {"raw": True, "value": "bytes"},
              {"raw": False, "value": "x" * 10_000}, {"raw": False, "value": None}]
    for request_id, event in zip(ids, events, strict=True):
        runtime.invoke(event, request_id=request_id)
    turns = [parse_turn(read, 6 * 1024 * 1024) for read in runtime.server.state.reads[1:]]
    bodies = [b'{"a": 1}', b"bytes", json.dumps("x" * 10_000).encode(), b"null"]
    assert turns == list(zip(ids, bodies, strict=True))


def test_exits_when_a_post_gets_500(start_python: StartRuntime) -> None:
    runtime = start_python({"app.py": "def handler(e, c):\n    return e\n"})
    assert runtime.invoke(1).json() == 1
    runtime.server.post_status = 500
    runtime.invoke(2)
    assert runtime.wait() == 1


def test_exits_when_the_connection_is_lost(start_python: StartRuntime) -> None:
    runtime = start_python({"app.py": "def handler(e, c):\n    return e\n"})
    assert runtime.invoke(1).json() == 1

    async def drop() -> None:
        for waiter in list(runtime.server.waiters):
            assert waiter.transport is not None
            waiter.transport.close()

    runtime.server.call(drop())
    assert runtime.wait() == 1
    assert "lamina runtime:" in runtime.output()


def test_sys_exit_in_handler_ends_the_runtime(start_python: StartRuntime) -> None:
    runtime = start_python({"app.py": "import sys\ndef handler(e, c):\n    sys.exit(3)\n"})
    runtime.server.submit({})  # never answered: the process ends
    assert runtime.wait() == 3


def test_preload_then_main_in_a_fork(tmp_path: Path) -> None:
    """The template path: import + preload once, then main() in a forked child."""
    task = write_tree(
        tmp_path / "task",
        {
            "app.py": "import os\nPARENT = os.getpid()\ndef handler(e, c):\n"
            "    return [PARENT != os.getpid(), e]\n"
        },
    )
    server = RuntimeAPIServer()
    script = src(f"""
        import os, sys
        sys.path.insert(0, {str(PYTHON_BOOTSTRAP.parent)!r})
        import lamina_bootstrap
        assert lamina_bootstrap.preload("app.handler", {str(task)!r}) is None
        pid = os.fork()
        if pid == 0:
            os._exit(lamina_bootstrap.main())
        _, status = os.waitpid(pid, 0)
        sys.exit(os.waitstatus_to_exitcode(status))
    """)
    env = base_env("app.handler", task, AWS_LAMBDA_RUNTIME_API=server.address)
    proc = subprocess.Popen(
        [sys.executable, "-S", "-c", script],
        cwd=task,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert server.invoke("hi").json() == [True, "hi"]
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the parent and the forked child
        proc.wait()
        server.close()


def test_runs_without_lamina_or_site_packages() -> None:
    """The file must import with the standard library only and do nothing on import."""
    code = (
        f"import sys; sys.path.insert(0, {str(PYTHON_BOOTSTRAP.parent)!r}); "
        "before = set(sys.modules); import lamina_bootstrap; "
        "assert not any(m.startswith('lamina.') or m == 'lamina' for m in sys.modules); "
        "assert 'snapshot_restore_py' not in sys.modules; print('ok')"
    )
    result = subprocess.run(
        [sys.executable, "-S", "-I", "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout == "ok\n"


def test_exits_without_a_runtime_api_address(tmp_path: Path) -> None:
    """A bootstrap without AWS_LAMBDA_RUNTIME_API says so and exits 1."""
    task = write_tree(tmp_path / "task", {"app.py": ""})
    env = base_env("app.handler", task)
    result = subprocess.run(
        [sys.executable, "-S", str(PYTHON_BOOTSTRAP)], cwd=task, env=env, capture_output=True
    )
    assert result.returncode == 1
    assert b"AWS_LAMBDA_RUNTIME_API" in result.stderr
