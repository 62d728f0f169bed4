"""One function per row of the performance table (issue 4, SPECIFICATION.md): each measures lamina
and, in the same run, its baseline, and returns a ``Row``.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import selectors
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.baselines.first_next import started_awslambdaric
from bench.harness import (
    HELLO,
    ROOT,
    SLEEPER,
    Lamina,
    awslambdaric_dir,
    descendants,
    lamina,
    numpy_pandas_dir,
    percentile,
    pss_kb,
    wait_settled,
    wrk,
    zip_source,
    zip_with_tree,
)

INVOKE = "/2015-03-31/functions/{}/invocations"


@dataclass
class Row:
    figure: str
    goal: str
    measured: str
    baseline: str = "—"
    ratio: str = "—"
    met: bool | None = None  # None: not asserted (quick mode) or not measurable here
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Options:
    quick: bool
    seconds: float  # per load run


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def baseline(module: str, *args: str) -> Iterator[int]:
    """Run ``python -m bench.baselines.<module> PORT ...`` until it says ready."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", f"bench.baselines.{module}", str(port),
                                *args], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        if process.stdout.readline().strip() != "ready":
            raise RuntimeError(f"baseline {module} did not start")
        yield port
    finally:
        for pid in descendants(process.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)
        process.kill()
        process.wait()


@contextlib.contextmanager
def _handler_dir(source: str = HELLO) -> Iterator[str]:
    """A directory holding ``app.py`` for the baselines' awslambdaric, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="lamina-bench-handler-") as directory:
        Path(directory, "app.py").write_text(source)
        yield directory


# rows -----------------------------------------------------------------------------------------

def warm(server: Lamina, options: Options) -> list[Row]:
    """Sequential latency and 32-client throughput of warm invokes, and the server's CPU."""
    server.deploy("hello", zip_source(HELLO))
    path = INVOKE.format("hello")
    url = server.endpoint
    headers = server.signed(path)
    run = {"method": "POST", "path": path, "body": "{}", "headers": headers}
    wrk(url, connections=1, threads=1, seconds=1, **run)  # warm up
    server.settle()
    seq = wrk(url, connections=1, threads=1, seconds=options.seconds, **run)
    wrk(url, connections=32, threads=2, seconds=1, **run)  # 32 environments up
    server.settle()  # and the spares they took made again
    par = wrk(url, connections=32, threads=2, seconds=options.seconds, cpu_pid=server.pid, **run)
    ric_dir = str(awslambdaric_dir())
    with baseline("echo") as port:
        echo = wrk(f"http://127.0.0.1:{port}", connections=1, threads=1,
                   seconds=options.seconds)
    with _handler_dir() as handlers, baseline("ric_relay", "1", handlers, ric_dir) as port:
        ric_seq = wrk(f"http://127.0.0.1:{port}", connections=1, threads=1,
                      seconds=options.seconds, method="POST", body="{}")
    with _handler_dir() as handlers, baseline("ric_relay", "4", handlers, ric_dir) as port:
        ric_par = wrk(f"http://127.0.0.1:{port}", connections=32, threads=2,
                      seconds=options.seconds, method="POST", body="{}")
    assert seq.errors == 0 and par.errors == 0, (seq, par)
    return [
        Row("warm invoke latency, sequential", "p50 ≤ 0.5 ms, p99 ≤ 1.5 ms",
            f"p50 {seq.p50_ms:.2f} ms, p99 {seq.p99_ms:.2f} ms",
            f"echo p50 {echo.p50_ms:.2f} / p99 {echo.p99_ms:.2f}; awslambdaric "
            f"p50 {ric_seq.p50_ms:.2f} / p99 {ric_seq.p99_ms:.2f}",
            f"{ric_seq.p50_ms / seq.p50_ms:.1f}x faster than awslambdaric (p50)",
            seq.p50_ms <= 0.5 and seq.p99_ms <= 1.5,
            {"lamina": seq.__dict__, "echo": echo.__dict__, "awslambdaric": ric_seq.__dict__}),
        Row("warm throughput, 32 clients", "≥ 8,000 invokes/s", f"{par.rps:,.0f} /s",
            f"awslambdaric x4: {ric_par.rps:,.0f} /s", f"{par.rps / ric_par.rps:.1f}x",
            par.rps >= 8000, {"lamina": par.__dict__, "awslambdaric": ric_par.__dict__}),
        Row("server CPU per warm invoke", "≤ 100 µs", f"{par.cpu_us_per_request:.0f} µs", "—",
            "—", (par.cpu_us_per_request or 1e9) <= 100,
            {"cpu_us": par.cpu_us_per_request}),
    ]


def _timed_post(endpoint: str, path: str, headers: dict[str, str]) -> float:
    host = endpoint.split("//")[1]
    connection = http.client.HTTPConnection(host, timeout=60)
    connection.connect()
    started = time.perf_counter()
    connection.request("POST", path, body=b"{}", headers=headers)
    response = connection.getresponse()
    body = response.read()
    elapsed = (time.perf_counter() - started) * 1000
    connection.close()
    if response.status != 200 or b"errorType" in body:
        raise RuntimeError(f"invoke failed: {response.status} {body[:200]!r}")
    return elapsed


def cold_start(server: Lamina, options: Options) -> list[Row]:
    """The invoke that creates a new environment: each sample retires the previous ones."""
    lam = server.client()
    server.deploy("cold", zip_source(HELLO))
    path = INVOKE.format("cold")
    samples = []
    for index in range(20 if options.quick else 100):
        lam.update_function_configuration(FunctionName="cold", Description=f"sample {index}")
        wait_settled(lam, "cold")
        samples.append(_timed_post(server.endpoint, path, server.signed(path)))
    with _handler_dir() as handlers:
        ric = json.loads(subprocess.run(
            [sys.executable, "-m", "bench.baselines.first_next", str(awslambdaric_dir()),
             handlers, "5" if options.quick else "20"], cwd=ROOT, capture_output=True,
            text=True, check=True).stdout)
    p50, p99 = statistics.median(samples), percentile(samples, 0.99)
    return [Row("cold start (invoke that creates an environment)", "p50 ≤ 5 ms, p99 ≤ 15 ms",
                f"p50 {p50:.1f} ms, p99 {p99:.1f} ms",
                f"fresh awslambdaric to first /next: p50 {statistics.median(ric):.0f} ms",
                f"{statistics.median(ric) / p50:.0f}x", p50 <= 5 and p99 <= 15,
                {"lamina_ms": samples, "awslambdaric_ms": ric})]


NUMPY_PANDAS = """import numpy as np
import pandas as pd

FRAME = pd.DataFrame({"a": np.arange(1000)})
FRAME["a"].sum()  # priming, as AWS advises for SnapStart: pandas' first call sets things up


def handler(event, context):
    return {"sum": int(FRAME["a"].sum())}
"""


def snapstart(options: Options) -> list[Row]:
    """The invoke that creates a new environment of a function whose Init imports numpy and
    pandas: a published SnapStart version (a fork of the version's snapshot) against the same
    function's $LATEST (a fresh Init). A server of its own with a short idle timeout: each
    sample waits until the previous environment was reaped, so every sample is a cold start
    of the same version (retiring it, as the cold start row does, would end its snapshot)."""
    package = zip_with_tree(NUMPY_PANDAS, numpy_pandas_dir())
    idle_s = 0.1
    with lamina(LAMINA_IDLE_TIMEOUT=str(idle_s)) as server:
        server.deploy("pandas", package, MemorySize=1024, Timeout=60,
                      SnapStart={"ApplyOn": "PublishedVersions"})
        lam = server.client()
        started = time.perf_counter()
        version = lam.publish_version(FunctionName="pandas")["Version"]
        publish_s = time.perf_counter() - started
        path = INVOKE.format("pandas")
        snap_path = f"{path}?Qualifier={version}"

        def cold(sample_path: str) -> float:
            time.sleep(idle_s + 0.25)  # the previous environment is reaped meanwhile
            return _timed_post(server.endpoint, sample_path, server.signed(sample_path))

        snap = [cold(snap_path) for _ in range(10 if options.quick else 50)]
        plain = [cold(path) for _ in range(3 if options.quick else 10)]
    p50, p99 = statistics.median(snap), percentile(snap, 0.99)
    plain_p50 = statistics.median(plain)
    ratio = plain_p50 / p50
    return [Row("SnapStart cold start, init imports numpy + pandas",
                "≤ 10 ms, ≥ 30x faster than without SnapStart",
                f"p50 {p50:.1f} ms, p99 {p99:.1f} ms",
                f"same function without SnapStart: p50 {plain_p50:.0f} ms",
                f"{ratio:.0f}x", p50 <= 10 and ratio >= 30,
                {"snapstart_ms": snap, "plain_ms": plain, "publish_s": publish_s})]


def scale_out(server: Lamina, options: Options) -> list[Row]:
    """200 parallel 1-second invokes from zero environments, then the idle memory of each."""
    count = 200
    server.deploy("sleeper", zip_source(SLEEPER), Timeout=30)
    path = INVOKE.format("sleeper")
    body = b'{"seconds": 1}'
    finished, failures, started = fire_at_once(server, path, body, count)
    elapsed = max(finished) - started
    time.sleep(0.5)  # let them settle idle
    pids = _environment_pids(server)
    per_env = statistics.median([pss_kb(pid) for pid in pids]) / 1024 if pids else 0.0
    ric_pss = _fresh_awslambdaric_pss()
    return [
        Row("scale-out: 200 parallel 1-s invokes from zero", "all answered within 1.5 s",
            f"{elapsed:.2f} s ({len(failures)} failed)", "—", "—",
            elapsed <= 1.5 and not failures, {"seconds": elapsed, "failures": failures[:5]}),
        Row("memory per idle warm environment (PSS)", "≤ 3 MB",
            f"{per_env:.2f} MB (median of {len(pids)})",
            f"fresh awslambdaric: {ric_pss:.1f} MB", f"{ric_pss / per_env:.0f}x smaller"
            if per_env else "—", 0 < per_env <= 3, {"pss_mb": per_env, "ric_mb": ric_pss}),
    ]


def fire_at_once(server: Lamina, path: str, body: bytes, count: int,
                 timeout: float = 60.0) -> tuple[list[float], list[str], float]:
    """Send ``count`` identical signed POSTs on as many connections at once; returns when each
    was answered (perf_counter), the failures, and when sending began.

    One thread and raw sockets: the request is encoded once and written to every
    pre-connected socket in a loop (~2 ms for 200), then the answers are read as they come. A
    thread per connection (http.client) spread the 200 sends over ~100-150 ms here, each
    waiting for the GIL: that measured the client, not the server.
    """
    headers = server.signed(path, body)
    host = server.endpoint.split("//")[1]
    address = host.rsplit(":", 1)
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items()
                   if name.lower() not in ("content-length", "host"))
    request = (f"POST {path} HTTP/1.1\r\nHost: {host}\r\n{head}"
               f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    sockets = [socket.create_connection((address[0], int(address[1]))) for _ in range(count)]
    selector = selectors.DefaultSelector()
    buffers: dict[socket.socket, bytearray] = {}
    finished: list[float] = []
    failures: list[str] = []
    try:
        for sock in sockets:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        started = time.perf_counter()
        for sock in sockets:
            sock.sendall(request)
        for sock in sockets:
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ)
            buffers[sock] = bytearray()
        deadline = time.monotonic() + timeout
        while buffers and time.monotonic() < deadline:
            for key, _ in selector.select(1.0):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                chunk = sock.recv(65536)
                buffer = buffers[sock]
                buffer += chunk
                answer = _complete_response(buffer)
                if answer is None and chunk:
                    continue
                finished.append(time.perf_counter())
                selector.unregister(sock)
                del buffers[sock]
                status, payload = answer or (0, b"connection closed")
                if status != 200 or b"errorType" in payload:
                    failures.append(f"{status} {payload[:120]!r}")
        failures += ["no answer"] * len(buffers)
    finally:
        selector.close()
        for sock in sockets:
            sock.close()
    return finished, failures, started


def _complete_response(buffer: bytearray) -> tuple[int, bytes] | None:
    """(status, body) once ``buffer`` holds a whole response with a Content-Length."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = bytes(buffer[:end]).decode("latin-1").split("\r\n")
    length = 0
    for line in head[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    if len(buffer) < end + 4 + length:
        return None
    return int(head[0].split()[1]), bytes(buffer[end + 4:end + 4 + length])


def _environment_pids(server: Lamina) -> list[int]:
    """Processes of environments: descendants of the server that sit in one of lamina's
    per-environment cgroup slots (the template stays in the server's cgroup), except parked
    spares, which wait in the slot they will use under their own name."""
    pids = []
    for pid in descendants(server.pid):
        with contextlib.suppress(OSError):
            if re.search(r"/lamina/[^/\n]+/s\d+", Path(f"/proc/{pid}/cgroup").read_text()) \
                    and Path(f"/proc/{pid}/comm").read_text().strip() != "lamina-spare":
                pids.append(pid)
    return pids


def _fresh_awslambdaric_pss() -> float:
    with _handler_dir() as handlers, \
            started_awslambdaric(str(awslambdaric_dir()), handlers) as (pid, _):
        time.sleep(0.2)
        return pss_kb(pid) / 1024


def density(options: Options) -> list[Row]:
    """5,000 idle warm environments held by provisioned concurrency; the server stays healthy."""
    count = int(os.environ.get("LAMINA_BENCH_DENSITY", 200 if options.quick else 5000))
    env = {"LAMINA_ACCOUNT_CONCURRENCY": str(count + 200), "LAMINA_MAX_STARTING": "128"}
    with lamina(**env) as server:
        lam = server.client()
        server.deploy("dense", zip_source(HELLO))
        version = lam.publish_version(FunctionName="dense")["Version"]
        lam.put_function_concurrency(FunctionName="dense", ReservedConcurrentExecutions=count)
        started = time.perf_counter()
        lam.put_provisioned_concurrency_config(FunctionName="dense", Qualifier=version,
                                               ProvisionedConcurrentExecutions=count)
        deadline = time.monotonic() + 900
        status = ""
        while time.monotonic() < deadline:
            status = lam.get_provisioned_concurrency_config(FunctionName="dense",
                                                            Qualifier=version)["Status"]
            if status in ("READY", "FAILED"):
                break
            time.sleep(1)
        ready_s = time.perf_counter() - started
        pids = _environment_pids(server)
        health_started = time.perf_counter()
        with contextlib.closing(http.client.HTTPConnection(server.endpoint.split("//")[1])) as c:
            c.request("GET", "/_lamina/health")
            healthy = c.getresponse().status == 200
        health_ms = (time.perf_counter() - health_started) * 1000
        invoked = json.loads(lam.invoke(FunctionName="dense", Qualifier=version,
                                        Payload=b"{}")["Payload"].read()) == {"ok": True}
        total_gb = sum(pss_kb(pid) for pid in pids) / 1024 / 1024
    return [Row(f"density: {count:,} idle warm environments", "5,000, server healthy",
                f"{len(pids):,} alive ({status} in {ready_s:.0f} s), {total_gb:.1f} GB PSS, "
                f"health {health_ms:.1f} ms, invoke {'ok' if invoked else 'FAILED'}", "—", "—",
                len(pids) >= 5000 and healthy and invoked if not options.quick else None,
                {"alive": len(pids), "ready_s": ready_s, "total_pss_gb": total_gb})]
