"""The Node.js bootstrap, run as a real `node` process against the test Runtime API server."""

from __future__ import annotations

import base64
import json
import re
import textwrap
import time

import pytest
from runtime_harness import FUNCTION_ARN, StartRuntime

NEXT = "GET /2018-06-01/runtime/invocation/next"
TEXT_LOG = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)\t([^\t]*)\t([A-Z]+)\t(.*)$")


def src(text: str) -> str:
    return textwrap.dedent(text).lstrip()


def text_record(line: str) -> tuple[str, str, str]:
    """(request id, level, message) of an AWS Text-format console line."""
    match = TEXT_LOG.match(line)
    assert match, f"not a Text log line: {line!r}"
    return match[2], match[3], match[4]


CONTEXT_HANDLER = """
    ({
        event,
        functionName: context.functionName,
        functionVersion: context.functionVersion,
        invokedFunctionArn: context.invokedFunctionArn,
        memoryLimitInMB: context.memoryLimitInMB,
        awsRequestId: context.awsRequestId,
        logGroupName: context.logGroupName,
        logStreamName: context.logStreamName,
        identity: context.identity ?? null,
        clientContext: context.clientContext ?? null,
        remaining: context.getRemainingTimeInMillis(),
        waits: context.callbackWaitsForEmptyEventLoop,
        trace: process.env._X_AMZN_TRACE_ID,
        cwd: process.cwd(),
    })
"""


def test_async_commonjs_handler_and_context(start_node: StartRuntime) -> None:
    runtime = start_node(
        {"index.js": f"exports.handler = async (event, context) => {CONTEXT_HANDLER};\n"}
    )
    deadline = int(time.time() * 1000) + 5000
    out = runtime.invoke(
        {"a": [1, "é"]},
        request_id="req-1",
        deadline_ms=deadline,
        headers={"Lambda-Runtime-Trace-Id": "Root=1-abc"},
    )
    assert out.kind == "response"
    body = out.json()
    assert body["event"] == {"a": [1, "é"]}
    assert body["functionName"] == "fn"
    assert body["functionVersion"] == "$LATEST"
    assert body["invokedFunctionArn"] == FUNCTION_ARN
    assert body["memoryLimitInMB"] == "128"  # a string, as AWS's runtime gives it
    assert body["awsRequestId"] == "req-1"
    assert body["logGroupName"] == "/aws/lambda/fn"
    assert body["identity"] is None and body["clientContext"] is None
    assert 4000 < body["remaining"] <= 5000
    assert body["waits"] is True
    assert body["trace"] == "Root=1-abc"
    identity = {"cognitoIdentityId": "id-1", "cognitoIdentityPoolId": "pool-1"}
    out = runtime.invoke(
        {},
        headers={
            "Lambda-Runtime-Cognito-Identity": json.dumps(identity),
            "Lambda-Runtime-Client-Context": json.dumps({"custom": {"k": 1}}),
            "Lambda-Runtime-Trace-Id": None,
        },
    )
    assert out.json()["identity"] == identity
    assert out.json()["clientContext"] == {"custom": {"k": 1}}
    assert "trace" not in out.json()  # the variable is removed when an invoke has none


@pytest.mark.parametrize(
    ("files", "handler"),
    [
        ({"index.mjs": "export const handler = async (e) => ['mjs', e];\n"}, "index.handler"),
        (
            {
                "package.json": '{"type": "module"}',
                "index.js": "export const handler = async (e) => ['esm-js', e];\n",
            },
            "index.handler",
        ),
        ({"index.cjs": "module.exports.handler = async (e) => ['cjs', e];\n"}, "index.handler"),
        (
            {"src/lib/app.js": "exports.run = async (e) => ['nested', e];\n"},
            "src/lib/app.run",
        ),
        (
            {"index.js": "exports.api = { v1: { handler: async (e) => ['path', e] } };\n"},
            "index.api.v1.handler",
        ),
    ],
    ids=["mjs", "type-module-js", "cjs", "dir-path", "nested-export"],
)
def test_module_resolution(start_node: StartRuntime, files: dict[str, str], handler: str) -> None:
    runtime = start_node(files, handler=handler)
    out = runtime.invoke(1)
    assert out.kind == "response", out.body
    assert out.json()[1] == 1


def test_callback_waits_for_empty_event_loop(start_node: StartRuntime) -> None:
    runtime = start_node(
        {
            "index.js": src("""
                let log = [];
                exports.handler = (event, context, callback) => {
                    log = [];
                    context.callbackWaitsForEmptyEventLoop = event.wait;
                    setTimeout(() => log.push("timer"), 300);
                    callback(null, { log });
                };
            """)
        }
    )
    started = time.monotonic()
    out = runtime.invoke({"wait": True})
    assert time.monotonic() - started >= 0.29  # posted only once the timer had run
    assert out.json() == {"log": ["timer"]}
    out = runtime.invoke({"wait": False})
    assert out.json() == {"log": []}  # posted at once, before the timer


def test_legacy_context_methods_and_sync_handlers(start_node: StartRuntime) -> None:
    runtime = start_node(
        {
            "index.js": src("""
                exports.handler = (event, context, callback) => {
                    switch (event.kind) {
                        case "succeed": context.succeed({ via: "succeed" }); break;
                        case "done": context.done(null, "via done"); break;
                        case "fail": context.fail(new TypeError("via fail")); break;
                        case "fail-empty": context.fail(); break;
                        case "callback-string": callback("just a string"); break;
                        case "twice": context.succeed(1); context.succeed(2); break;
                        case "sync-return": return 42;  // not a promise: AWS answers null
                        case "undefined": return Promise.resolve(undefined);
                    }
                };
            """)
        }
    )
    assert runtime.invoke({"kind": "succeed"}).json() == {"via": "succeed"}
    assert runtime.invoke({"kind": "done"}).json() == "via done"
    out = runtime.invoke({"kind": "fail"})
    assert out.kind == "error"
    assert (out.json()["errorType"], out.json()["errorMessage"]) == ("TypeError", "via fail")
    out = runtime.invoke({"kind": "fail-empty"})
    assert out.json() == {"errorType": "string", "errorMessage": "handled", "trace": []}
    out = runtime.invoke({"kind": "callback-string"})
    assert out.json() == {"errorType": "string", "errorMessage": "just a string", "trace": []}
    assert runtime.invoke({"kind": "twice"}).json() == 1
    assert runtime.invoke({"kind": "sync-return"}).body == b"null"
    assert runtime.invoke({"kind": "undefined"}).body == b"null"


def test_handler_errors(start_node: StartRuntime) -> None:
    runtime = start_node(
        {
            "index.mjs": src("""
                class OrderError extends Error {
                    constructor(msg) { super(msg); this.name = "OrderError"; }
                }
                export const handler = async (event) => {
                    if (event.kind === "custom") throw new OrderError("no stock");
                    if (event.kind === "circular") { const a = {}; a.a = a; return a; }
                    throw new Error("boom");
                };
            """)
        }
    )
    out = runtime.invoke({}, request_id="req-e")
    assert out.kind == "error"
    assert out.headers["lambda-runtime-function-error-type"] == "Error"
    body = out.json()
    assert list(body) == ["errorType", "errorMessage", "trace"]
    assert body["errorType"] == "Error" and body["errorMessage"] == "boom"
    assert body["trace"][0] == "Error: boom"
    assert "index.mjs:" in body["trace"][1]
    # AWS's "Invoke Error" report, on one line.
    request_id, level, message = text_record(runtime.lines()[-1])
    assert (request_id, level) == ("req-e", "ERROR")
    assert message.startswith('Invoke Error \t{"errorType":"Error","errorMessage":"boom"')
    out = runtime.invoke({"kind": "custom"})
    assert (out.json()["errorType"], out.json()["errorMessage"]) == ("OrderError", "no stock")
    out = runtime.invoke({"kind": "circular"})
    assert out.json()["errorMessage"] == "Unable to stringify response body"


INIT_ERRORS = [
    (
        {"other.js": ""},
        "index.handler",
        "Runtime.ImportModuleError",
        "Error: Cannot find module 'index'\nRequire stack:\n- ",
    ),
    (
        {"index.js": "require('left-pad');\nexports.handler = async () => 1;\n"},
        "index.handler",
        "Runtime.ImportModuleError",
        "Error: Cannot find module 'left-pad'\nRequire stack:\n- ",
    ),
    (
        {"index.js": "exports.handler = async () => 1;\n"},
        "index.nope",
        "Runtime.HandlerNotFound",
        "index.nope is undefined or not exported",
    ),
    (
        {"index.js": "exports.handler = 5;\n"},
        "index.handler",
        "Runtime.HandlerNotFound",
        "index.handler is not a function",
    ),
    (
        {"index.js": "exports.handler = async () => {;\n"},
        "index.handler",
        "Runtime.UserCodeSyntaxError",
        "SyntaxError: ",
    ),
    ({"index.js": ""}, "index", "Runtime.MalformedHandlerName", "Bad handler"),
    (
        {"index.mjs": "throw new RangeError('bad config');\n"},
        "index.handler",
        "RangeError",
        "bad config",
    ),
]


@pytest.mark.parametrize(("files", "handler", "error_type", "message"), INIT_ERRORS)
def test_init_errors(
    start_node: StartRuntime, files: dict[str, str], handler: str, error_type: str, message: str
) -> None:
    runtime = start_node(files, handler=handler)
    request = runtime.server.wait_init_error()
    assert runtime.wait() == 129
    assert request.headers["lambda-runtime-function-error-type"] == error_type
    body = json.loads(request.body)
    assert body["errorType"] == error_type
    assert body["errorMessage"].startswith(message)
    assert isinstance(body["trace"], list)
    request_id, level, line = text_record(runtime.lines()[0])
    assert (request_id, level) == ("undefined", "ERROR")
    assert line.startswith(f'Uncaught Exception \t{{"errorType":"{error_type}"')


def test_unhandled_rejection_during_invoke(start_node: StartRuntime) -> None:
    runtime = start_node(
        {
            "index.js": src("""
                exports.handler = async (event) => {
                    if (event.kind === "reject") Promise.reject(new Error("forgotten"));
                    await new Promise((r) => setTimeout(r, 200));
                    return "finished";
                };
            """)
        }
    )
    out = runtime.invoke({"kind": "reject"})
    assert out.kind == "error"
    assert out.json()["errorType"] == "Runtime.UnhandledPromiseRejection"
    assert out.json()["errorMessage"] == "Error: forgotten"
    assert runtime.wait() == 128


def test_unhandled_rejection_at_init(start_node: StartRuntime) -> None:
    runtime = start_node(
        {"index.js": "Promise.reject(new Error('no db'));\nexports.handler = async () => 1;\n"}
    )
    request = runtime.server.wait_init_error()
    assert runtime.wait() == 128
    body = json.loads(request.body)
    assert body["errorType"] == "Runtime.UnhandledPromiseRejection"
    assert body["errorMessage"] == "Error: no db"


def test_exits_when_the_connection_is_lost(start_node: StartRuntime) -> None:
    runtime = start_node({"index.mjs": "export const handler = async (e) => e;\n"})
    assert runtime.invoke(1).json() == 1

    async def drop() -> None:
        for waiter in list(runtime.server.waiters):
            assert waiter.transport is not None
            waiter.transport.close()

    runtime.server.call(drop())
    assert runtime.wait() == 1
    assert "lamina runtime:" in runtime.output()


def test_uncaught_exception_during_invoke(start_node: StartRuntime) -> None:
    runtime = start_node(
        {
            "index.js": src("""
                exports.handler = async () => {
                    setTimeout(() => { throw new Error("late"); }, 10);
                    await new Promise((r) => setTimeout(r, 200));
                    return "finished";
                };
            """)
        }
    )
    out = runtime.invoke({})
    assert (out.kind, out.json()["errorMessage"]) == ("error", "late")
    assert runtime.wait() == 129


def test_console_lines_reach_the_pipe_before_the_result(start_node: StartRuntime) -> None:
    runtime = start_node(
        {
            "index.js": src("""
                console.log("at init");
                exports.handler = async (event) => {
                    for (let i = 0; i < event.n; i++) console.log("line", i);
                    console.info("obj %j", { a: 1 });
                    console.warn("two\\nlines");
                    console.error(new Error("shown"));
                    console.debug("dbg");
                    process.stdout.write("raw stdout\\n");
                    return "done";
                };
            """)
        },
        AWS_LAMBDA_LOG_LEVEL="info",
    )
    out = runtime.invoke({"n": 200}, request_id="req-log")
    assert out.json() == "done"
    lines = runtime.lines()  # read without waiting: already in the pipe
    assert text_record(lines[0]) == ("undefined", "INFO", "at init")
    assert [text_record(line) for line in lines[1:201]] == [
        ("req-log", "INFO", f"line {i}") for i in range(200)
    ]
    assert text_record(lines[201]) == ("req-log", "INFO", 'obj {"a":1}')
    assert text_record(lines[202]) == ("req-log", "WARN", "two\rlines")
    request_id, level, message = text_record(lines[203])
    assert (request_id, level) == ("req-log", "ERROR")
    assert message.startswith("Error: shown\r    at ")
    assert lines[204] == "raw stdout"
    assert not any("dbg" in line for line in lines)


def test_json_log_format(start_node: StartRuntime) -> None:
    runtime = start_node(
        {
            "index.js": src("""
                exports.handler = async () => {
                    console.log("hello");
                    console.warn({ structured: true });
                    console.error("failed:", new TypeError("bad"));
                    throw new Error("boom");
                };
            """)
        },
        AWS_LAMBDA_LOG_FORMAT="JSON",
    )
    out = runtime.invoke({}, request_id="req-json")
    assert out.kind == "error"
    records = [json.loads(line) for line in runtime.lines()]
    assert records[0] == {
        "timestamp": records[0]["timestamp"],
        "level": "INFO",
        "requestId": "req-json",
        "message": "hello",
    }
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", records[0]["timestamp"])
    assert records[1]["message"] == {"structured": True}
    assert records[1]["level"] == "WARN"
    assert records[2]["errorType"] == "TypeError"
    assert records[2]["errorMessage"] == "bad"
    assert records[2]["message"].startswith("failed: TypeError: bad")
    # The Invoke Error report is the error itself, in JSON.
    assert records[3]["level"] == "ERROR"
    assert records[3]["message"]["errorType"] == "Error"
    assert records[3]["message"]["errorMessage"] == "boom"


def test_module_state_persists_across_invokes(start_node: StartRuntime) -> None:
    runtime = start_node(
        {
            "index.js": src("""
                const fs = require("fs"), os = require("os"), path = require("path");
                let count = 0;
                const file = path.join(os.tmpdir(), `lamina-node-test-${process.pid}`);
                exports.handler = async (event) => {
                    count += 1;
                    fs.appendFileSync(file, "x");
                    const data = fs.readFileSync(file, "utf8");
                    if (event.last) fs.unlinkSync(file);
                    return [count, data, process.pid];
                };
            """)
        }
    )
    results = [runtime.invoke({}).json() for _ in range(2)] + [runtime.invoke({"last": 1}).json()]
    assert [r[:2] for r in results] == [[1, "x"], [2, "xx"], [3, "xxx"]]
    assert len({r[2] for r in results}) == 1
    assert runtime.server.state.connections == 1


def test_wire_post_and_next_share_one_write(start_node: StartRuntime) -> None:
    runtime = start_node({"index.mjs": "export const handler = async (e) => e;\n"})
    for rid in "abc":
        runtime.invoke(1, request_id=rid)
    batches = runtime.server.state.batches
    assert batches[0] == [NEXT]
    for rid in "abc":
        assert [f"POST /2018-06-01/runtime/invocation/{rid}/response", NEXT] in batches


def test_exits_when_a_post_gets_500(start_node: StartRuntime) -> None:
    runtime = start_node({"index.mjs": "export const handler = async (e) => e;\n"})
    assert runtime.invoke(1).json() == 1
    runtime.server.post_status = 500
    runtime.invoke(2)
    assert runtime.wait() == 1


def test_streaming_response(start_node: StartRuntime) -> None:
    runtime = start_node(
        {
            "index.mjs": src("""
                const stream_ = async (event, stream, context) => {
                    if (event.http) {
                        stream = awslambda.HttpResponseStream.from(stream, { statusCode: 201 });
                    } else {
                        stream.setContentType("text/plain");
                    }
                    stream.write("hello ");
                    await new Promise((r) => setTimeout(r, 20));
                    if (event.fail) throw new Error("mid-stream");
                    stream.write(context.awsRequestId);
                    stream.end();
                };
                export const handler = awslambda.streamifyResponse(stream_);
            """)
        }
    )
    out = runtime.invoke({}, request_id="req-s")
    assert out.kind == "response", (out, runtime.output())
    assert out.headers["lambda-runtime-function-response-mode"] == "streaming"
    assert out.headers["content-type"] == "text/plain"
    assert out.body == b"hello req-s"
    out = runtime.invoke({"http": True}, request_id="req-h")
    assert out.headers["content-type"] == "application/vnd.awslambda.http-integration-response"
    assert out.body == b'{"statusCode":201}' + b"\0" * 8 + b"hello req-h"
    out = runtime.invoke({"fail": True})
    assert out.body == b"hello "
    assert out.headers["lambda-runtime-function-error-type"] == "Error"
    error = json.loads(base64.b64decode(out.headers["lambda-runtime-function-error-body"]))
    assert error["errorMessage"] == "mid-stream"
    assert runtime.invoke({}, request_id="again").body == b"hello again"


def test_large_payloads(start_node: StartRuntime) -> None:
    runtime = start_node(
        {
            "index.js": "exports.handler = async (e) => "
            "({ n: e.s.length, back: e.s.slice(0, 3) + 'x'.repeat(e.r) });\n"
        }
    )
    started = time.monotonic()
    out = runtime.invoke({"s": "é" * 2_500_000, "r": 5_000_000})
    assert out.json()["n"] == 2_500_000
    assert len(out.json()["back"]) == 5_000_003
    assert time.monotonic() - started < 10
