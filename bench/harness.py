"""What every benchmark row needs: a real ``lamina serve`` to measure, a keep-alive load
generator outside the server process (wrk), pre-signed requests, and CPU and memory readings
from /proc.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import botocore.auth
import botocore.awsrequest
import botocore.config
import botocore.credentials

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "bench" / ".cache"
HELLO = "def handler(event, context):\n    return {\"ok\": True}\n"
SLEEPER = ("import time\n\ndef handler(event, context):\n"
           "    time.sleep(event.get('seconds', 1))\n    return {'slept': True}\n")


def zip_source(source: str, name: str = "app.py") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(name, source)
    return buffer.getvalue()


@dataclass
class Lamina:
    """A ``lamina serve`` subprocess with a data dir of its own."""

    env: dict[str, str] = field(default_factory=dict)
    data_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="lamina-bench-")))
    process: subprocess.Popen[bytes] | None = None
    endpoint: str = ""

    def start(self) -> Lamina:
        environ = {**os.environ, "LAMINA_PORT": "0", "LAMINA_DATA_DIR": str(self.data_dir / "d"),
                   "LAMINA_LOG_LEVEL": "WARNING", **self.env}
        log = open(self.data_dir / "server.log", "wb")  # noqa: SIM115 - lives with the process
        self.process = subprocess.Popen([sys.executable, "-m", "lamina", "serve"], env=environ,
                                        stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        server_file = self.data_dir / "d" / "server.json"
        deadline = time.monotonic() + 60
        while not server_file.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((self.data_dir / "server.log").read_text())
            time.sleep(0.05)
        self.endpoint = json.loads(server_file.read_text())["endpoint"]
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def credentials(self) -> tuple[str, str]:
        return read_credentials(self.data_dir / "d")

    def client(self, service: str = "lambda") -> Any:
        return client(self.endpoint, *self.credentials(), service)

    def deploy(self, name: str, package: bytes, **config: Any) -> None:
        create_function(self.client(), name, package, **config)

    def signed(self, path: str, body: bytes = b"{}", method: str = "POST") -> dict[str, str]:
        return signed_headers(self.endpoint, *self.credentials(), path, body, method)

    def stats(self) -> dict[str, Any]:
        path = "/_lamina/stats"
        request = urllib.request.Request(self.endpoint + path, method="GET",
                                         headers=self.signed(path, b"", "GET"))
        with urllib.request.urlopen(request, timeout=10) as response:
            return dict(json.loads(response.read()))

    def settle(self, timeout: float = 60.0) -> None:
        """Wait until the server has made its spares (and, half a second more, the cgroup
        slots that follow them): a server that just started, or just handed spares out, makes
        them anew in the background, and a row measured meanwhile measures that too."""
        deadline = time.monotonic() + timeout
        while True:
            stats = self.stats()
            if stats["spares_parked"] >= stats["spares_target"] or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        time.sleep(0.5)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process = None
        shutil.rmtree(self.data_dir, ignore_errors=True)


@contextlib.contextmanager
def lamina(**env: str) -> Iterator[Lamina]:
    server = Lamina(env=env).start()
    try:
        server.settle()
        yield server
    finally:
        server.stop()


def read_credentials(data_dir: Path) -> tuple[str, str]:
    """The root keys a server made in ``data_dir``."""
    document = json.loads((data_dir / "credentials.json").read_text())
    return document["aws_access_key_id"], document["aws_secret_access_key"]


def client(endpoint: str, key: str, secret: str, service: str = "lambda") -> Any:
    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id=key, aws_secret_access_key=secret,
                        config=botocore.config.Config(retries={"max_attempts": 0},
                                                      read_timeout=300))


def create_function(lam: Any, name: str, package: bytes, **config: Any) -> None:
    """A python3.11 ``app.handler`` function from ``package``, once it is Active."""
    lam.create_function(FunctionName=name, Runtime="python3.11", Handler="app.handler",
                        Role="arn:aws:iam::000000000000:role/lamina-function",
                        Code={"ZipFile": package}, **config)
    wait_settled(lam, name)


def signed_headers(endpoint: str, key: str, secret: str, path: str, body: bytes = b"{}",
                   method: str = "POST") -> dict[str, str]:
    """Headers of a signed request, valid for the 5 minutes of allowed skew."""
    request = botocore.awsrequest.AWSRequest(method=method, url=endpoint + path, data=body)
    botocore.auth.SigV4Auth(botocore.credentials.Credentials(key, secret), "lambda",
                            "us-east-1").add_auth(request)
    return dict(request.headers.items())


def wait_settled(lam: Any, name: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        config = lam.get_function_configuration(FunctionName=name)
        if config.get("State") == "Active" and config.get("LastUpdateStatus") == "Successful":
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name} never settled: {config}")
        time.sleep(0.005)


# load generation --------------------------------------------------------------------------

@dataclass
class LoadResult:
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    cpu_us_per_request: float | None = None


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


def wrk(url: str, *, connections: int, threads: int, seconds: float,
        method: str = "GET", path: str = "/", body: str = "",
        headers: dict[str, str] | None = None, cpu_pid: int | None = None) -> LoadResult:
    """Run wrk with a fixed request; optionally count ``cpu_pid``'s CPU time per request."""
    script = [f'wrk.method = "{method}"', f"wrk.path = {json.dumps(path)}",
              f"wrk.body = {json.dumps(body)}"]
    script += [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}"
               for k, v in (headers or {}).items()]
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write("\n".join(script) + "\n")
    before = cpu_seconds(cpu_pid) if cpu_pid else 0.0
    done = subprocess.run(["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s",
                           "--latency", "-s", handle.name, url], capture_output=True, text=True,
                          check=True)
    after = cpu_seconds(cpu_pid) if cpu_pid else 0.0
    os.unlink(handle.name)
    out = done.stdout
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    errors = 0
    if match := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        errors += int(match.group(1))
    if match := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                          out):
        errors += sum(int(g) for g in match.groups())
    percentiles = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+\w+)$", out, re.MULTILINE))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    cpu = (after - before) * 1e6 / requests if cpu_pid and requests else None
    return LoadResult(requests, rps, _ms(percentiles["50"]), _ms(percentiles["99"]), errors,
                      cpu)


def cpu_seconds(pid: int) -> float:
    """User + system CPU of one process (its threads included, its children not)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pss_kb(pid: int) -> int:
    """A process's proportional set size; 0 for one that has ended meanwhile."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry.name))
    found, stack = [], [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def numpy_pandas_dir() -> Path:
    """numpy and pandas from PyPI, installed once into the bench cache for the SnapStart row.

    Compiled to unchecked-hash ``.pyc`` files: lamina unpacks a package with one fixed mtime,
    which makes timestamp-checked ``.pyc`` files stale, and a read-only ``/var/task`` would
    then compile every module at every import, an unfair baseline.
    """
    target = CACHE / "numpy-pandas"
    done = target / ".compiled"
    if not done.exists():
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-warn-conflicts",
                        "--target", str(target), "numpy", "pandas"], check=True)
        subprocess.run([sys.executable, "-m", "compileall", "-f", "-q", "-j", "0",
                        "--invalidation-mode", "unchecked-hash", str(target)],
                       check=True, stdout=subprocess.DEVNULL)
        done.write_text("ok\n")
    return target


def zip_with_tree(source: str, tree: Path) -> bytes:
    """``app.py`` plus a vendored tree at the package's root (tests and scripts left out)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("app.py", source)
        for root, dirs, files in os.walk(tree):
            dirs[:] = [d for d in dirs if d not in ("tests", "bin")]
            for name in files:
                path = Path(root, name)
                if name != ".compiled":
                    archive.write(path, path.relative_to(tree).as_posix())
    return buffer.getvalue()


def awslambdaric_dir() -> Path:
    """awslambdaric from PyPI, installed once into the bench cache (never into lamina's venv)."""
    target = CACHE / "awslambdaric"
    if not (target / "awslambdaric").exists():
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--target",
                        str(target), "awslambdaric"], check=True)
    return target
