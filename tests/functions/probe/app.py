"""One function, many behaviours: the tests pick one with event["action"]."""

import json
import logging
import os
import signal
import sys
import time

COUNTER = {"invocations": 0}
STARTED = time.time()
logger = logging.getLogger()
logger.setLevel(logging.INFO)


def handler(event, context):
    COUNTER["invocations"] += 1
    action = event.get("action", "echo")
    return ACTIONS[action](event, context)


def echo(event, context):
    return {"event": event, "invocations": COUNTER["invocations"], "pid": os.getpid(),
            "stream": os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME")}


def describe(event, context):
    return {
        "function_name": context.function_name,
        "function_version": context.function_version,
        "invoked_function_arn": context.invoked_function_arn,
        "memory_limit_in_mb": context.memory_limit_in_mb,
        "aws_request_id": context.aws_request_id,
        "log_group_name": context.log_group_name,
        "log_stream_name": context.log_stream_name,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "client_context": getattr(context.client_context, "custom", None)
        if context.client_context else None,
        "environ": dict(os.environ),
        "cwd": os.getcwd(),
        "uid": os.getuid(),
        "pid": os.getpid(),
        "sys_path": sys.path,
    }


def fail(event, context):
    raise ValueError(event.get("message", "boom"))


def sleep(event, context):
    time.sleep(event.get("seconds", 1))
    return {"slept": event.get("seconds", 1),
            "stream": os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME")}


def crash(event, context):
    sys.stdout.flush()
    os._exit(event.get("code", 3))


def kill_self(event, context):
    os.kill(os.getpid(), signal.SIGKILL)


def allocate(event, context):
    blocks = [bytearray(1024 * 1024) for _ in range(event["mb"])]
    for block in blocks:
        block[::4096] = b"x" * len(block[::4096])
    return {"allocated_mb": len(blocks)}


def big_response(event, context):
    return "x" * event["bytes"]


def log_lines(event, context):
    print("line from print")
    print("line to stderr", file=sys.stderr)
    logger.info("line from logging")
    return {"logged": True}


def state(event, context):
    path = "/tmp/lamina-state"
    previous = open(path).read() if os.path.exists(path) else ""
    with open(path, "a") as handle:
        handle.write("x")
    return {"invocations": COUNTER["invocations"], "tmp": previous,
            "stream": os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME")}


def write_file(event, context):
    try:
        with open(event["path"], "w") as handle:
            handle.write(event.get("content", "x"))
        return {"ok": True}
    except OSError as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}


def read_path(event, context):
    path = event["path"]
    try:
        if os.path.isdir(path):
            return {"ok": True, "entries": sorted(os.listdir(path))}
        with open(path, "rb") as handle:
            return {"ok": True, "size": len(handle.read())}
    except OSError as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}


def processes(event, context):
    pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
    return {"pids": pids, "pid": os.getpid()}


def fork_bomb(event, context):
    children, failures = [], 0
    for _ in range(event.get("count", 2000)):
        try:
            pid = os.fork()
        except OSError:
            failures += 1
            break
        if pid == 0:
            time.sleep(30)
            os._exit(0)
        children.append(pid)
    for pid in children:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    return {"forked": len(children), "failed": failures}


def fill_tmp(event, context):
    written = 0
    chunk = b"\0" * (1024 * 1024)
    try:
        with open("/tmp/fill", "wb") as handle:
            for _ in range(event["mb"]):
                handle.write(chunk)
                written += 1
            handle.flush()
        return {"ok": True, "written_mb": written}
    except OSError as exc:
        return {"ok": False, "written_mb": written, "error": str(exc)}
    finally:
        if os.path.exists("/tmp/fill"):
            os.unlink("/tmp/fill")


def flood(event, context):
    line = "y" * 200
    for _ in range(event.get("lines", 100000)):
        print(line)
    return {"flooded": True}


def json_result(event, context):
    return json.loads(event["json"])


ACTIONS = {name: fn for name, fn in globals().items()
           if callable(fn) and name not in ("handler",) and not name.startswith("_")
           and fn.__module__ == __name__}
