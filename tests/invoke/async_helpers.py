"""Helpers of the async invocation tests: a collector the recorder function reports to, and
reading lamina's own signed paths.

The recorder (``tests/functions/async_recorder``) POSTs every event it receives to the
collector, an HTTP server on the host's loopback that lives in the test process: what it holds
survives a SIGKILL of the server, which logs flushed a moment too late would not.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from support import LaminaProcess, create, function_zip

RECORDER = function_zip("async_recorder")
RETRY_BASE_S = 0.3  # the quick server's LAMINA_ASYNC_RETRY_BASE_SECONDS


class Collector:
    """Every event the recorder functions received, in arrival order."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self._changed = threading.Condition()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                with collector._changed:
                    collector.records.append(json.loads(body))
                    collector._changed.notify_all()
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/"

    def of(self, function: str) -> list[dict[str, Any]]:
        with self._changed:
            return [r for r in self.records if r["function"] == function]

    def wait(self, function: str, count: int = 1, timeout: float = 20.0,
             where: Callable[[dict[str, Any]], bool] = lambda r: True) -> list[dict[str, Any]]:
        """At least ``count`` records of ``function`` (matching ``where``), or fail."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [r for r in self.records if r["function"] == function and where(r)]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{function}: {len(found)} of {count} records after "
                                         f"{timeout}s: {found[-3:]}")
                self._changed.wait(left)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def recorder(lam: Any, collector: Collector, **config: Any) -> str:
    """A new recorder function reporting to ``collector``."""
    return create(lam, RECORDER, Timeout=30,
                  Environment={"Variables": {"RECORD_URL": collector.url}}, **config)


def arn_of(lam: Any, name: str) -> str:
    return lam.get_function_configuration(FunctionName=name)["FunctionArn"]


def signed_get(server: LaminaProcess, path: str) -> Any:
    from lamina.cli import client
    from lamina.settings import load

    return client.signed_get(load({"data_dir": str(server.data_dir)}, environ={}), path)


def queue_stats(server: LaminaProcess, function: str) -> dict[str, Any]:
    """The function's entry in ``/_lamina/async`` (empty once its queue is)."""
    document = signed_get(server, f"/_lamina/async?function={function}")
    return document["functions"].get(function, {})


def wait_drained(server: LaminaProcess, function: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while queue_stats(server, function):
        if time.monotonic() > deadline:
            raise AssertionError(f"{function}'s queue did not drain: "
                                 f"{queue_stats(server, function)}")
        time.sleep(0.05)


def log_lines(server: LaminaProcess, function: str) -> list[str]:
    document = signed_get(server, f"/_lamina/logs/{function}?start=0")
    return [event["message"] for event in document["events"]]
