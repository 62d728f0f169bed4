"""The Python bootstrap as a template runs it: ``prepare_template`` once, then, in each fork,
``rehearse`` (a spare waiting) and ``main``. What the environment sees must not change."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from runtime_harness import PYTHON_BOOTSTRAP, RuntimeProcess, base_env, write_tree

TEMPLATE = textwrap.dedent(f"""
    import os, sys
    sys.path.insert(0, {str(PYTHON_BOOTSTRAP.parent)!r})
    import lamina_bootstrap
    lamina_bootstrap.prepare_template()
    pid = os.fork()
    if pid == 0:
        lamina_bootstrap.rehearse()
        os._exit(lamina_bootstrap.main())
    _, status = os.waitpid(pid, 0)
    sys.exit(os.waitstatus_to_exitcode(status))
""")

APP = textwrap.dedent("""
    import logging, os, sys

    def handler(event, context):
        logging.getLogger("app").warning("from the handler")
        return {
            "trace": os.environ.get("_X_AMZN_TRACE_ID"),
            "handlers": len(logging.getLogger().handlers),
            "request_id": context.aws_request_id,
            "function_name": context.function_name,
            "modules": sorted(m for m in sys.modules if "rehears" in m or m == "app_rehearsal"),
        }
""")


@pytest.fixture
def forked(tmp_path: Path) -> Iterator[Callable[..., RuntimeProcess]]:
    started: list[RuntimeProcess] = []

    def start(**env: str) -> RuntimeProcess:
        task = write_tree(tmp_path / "task", {"app.py": APP})
        process = RuntimeProcess([sys.executable, "-S", "-c", TEMPLATE], task,
                                 base_env("app.handler", task, **env))
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


def test_an_environment_after_prepare_and_rehearsal_is_as_fresh(
        forked: Callable[..., RuntimeProcess]) -> None:
    runtime = forked()
    out = runtime.invoke({"a": 1}, request_id="req-1",
                         headers={"Lambda-Runtime-Trace-Id": None}).json()
    assert out == {"trace": None, "handlers": 1, "request_id": "req-1",
                   "function_name": "fn", "modules": []}
    traced = runtime.invoke({}, request_id="req-2").json()
    assert traced["trace"].startswith("Root=1-")
    record = [line for line in runtime.lines() if "from the handler" in line]
    assert record and record[0].startswith("[WARNING]\t") and "\treq-1\t" in record[0]


def test_the_template_handler_gives_way_to_the_json_format(
        forked: Callable[..., RuntimeProcess]) -> None:
    runtime = forked(AWS_LAMBDA_LOG_FORMAT="JSON", AWS_LAMBDA_LOG_LEVEL="INFO")
    assert runtime.invoke({}, request_id="req-j").json()["handlers"] == 1
    records = [json.loads(line) for line in runtime.lines() if line.startswith("{")]
    record = next(r for r in records if r.get("message") == "from the handler")
    assert record["level"].startswith("WARN")
    assert record["requestId"] == "req-j"


def test_rehearse_leaves_nothing_behind() -> None:
    code = textwrap.dedent(f"""
        import os, sys, logging
        sys.path.insert(0, {str(PYTHON_BOOTSTRAP.parent)!r})
        import lamina_bootstrap
        lamina_bootstrap.prepare_template()
        def state():
            return (set(sys.modules), dict(os.environ), list(logging.getLogger().handlers),
                    len(os.listdir("/proc/self/fd")), list(sys.path),
                    set(sys.path_importer_cache),
                    [n for n in os.listdir("/tmp") if "lamina-rehearsal" in n])
        before = state()
        lamina_bootstrap.rehearse()
        after = state()
        assert before == after, (before, after)
        print("ok")
    """)
    result = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True,
                            check=False)
    assert result.stdout == "ok\n", result.stderr
