"""The server as a process: start-up, credentials, signatures, shutdown, restarts and crashes."""

from __future__ import annotations

import datetime
import json
import os
import signal
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import boto3
import botocore.auth
import botocore.awsrequest
import botocore.credentials
import botocore.exceptions
import pytest
from support import (
    DEFAULT_ROLE,
    ROLE,
    LaminaProcess,
    create,
    function_zip,
    invoke,
    unique,
    wait_ready,
)

HELLO = function_zip("hello")


def descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: set[int] = set()
    stack = [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def test_health_credentials_file_and_banner(tmp_path: Path) -> None:
    process = LaminaProcess(tmp_path / "data").start()
    try:
        with urllib.request.urlopen(process.endpoint + "/_lamina/health", timeout=5) as answer:
            assert answer.status == 200
        credentials = tmp_path / "data" / "credentials.json"
        assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
        key, secret = process.credentials()
        assert key.startswith("AKIA")
        assert secret in process.server_log()  # printed once, on the start that made it
    finally:
        assert process.stop() == 0
    process.log_path.unlink()
    again = LaminaProcess(tmp_path / "data").start()
    try:
        assert secret not in again.server_log()
        assert again.credentials() == (key, secret)
    finally:
        again.stop()


def test_root_credentials_from_the_environment(tmp_path: Path) -> None:
    process = LaminaProcess(tmp_path / "data", extra_env={
        "LAMINA_ROOT_ACCESS_KEY_ID": "AKIAEXAMPLEEXAMPLE01",
        "LAMINA_ROOT_SECRET_ACCESS_KEY": "secret-from-env"}).start()
    try:
        client = boto3.client("lambda", endpoint_url=process.endpoint, region_name="us-east-1",
                              aws_access_key_id="AKIAEXAMPLEEXAMPLE01",
                              aws_secret_access_key="secret-from-env")
        assert client.list_functions()["Functions"] == []
    finally:
        process.stop()


def test_sigterm_stops_cleanly_and_leaves_no_process(tmp_path: Path) -> None:
    process = LaminaProcess(tmp_path / "data").start()
    lam = process.client()
    name = create(lam, function_zip("probe"), Timeout=30)
    invoke(lam, name, {"action": "echo"})
    assert process.process is not None
    pid = process.process.pid
    family = descendants(pid)
    assert family, "the template and an environment should be running"
    assert process.stop(signal.SIGTERM) == 0
    time.sleep(0.5)
    assert [p for p in family if alive(p)] == []


def test_sigkill_of_the_server_takes_its_environments_along(tmp_path: Path) -> None:
    process = LaminaProcess(tmp_path / "data").start()
    lam = process.client()
    name = create(lam, function_zip("probe"), Timeout=30)
    invoke(lam, name, {"action": "echo"})
    assert process.process is not None
    family = descendants(process.process.pid)
    process.stop(signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and [p for p in family if alive(p)]:
        time.sleep(0.1)
    assert [p for p in family if alive(p)] == []


def test_restart_serves_the_same_functions(tmp_path: Path) -> None:
    process = LaminaProcess(tmp_path / "data").start()
    name = create(process.client(), HELLO)
    process.stop()
    process = LaminaProcess(tmp_path / "data").start()
    try:
        _, body = invoke(process.client(), name, {"name": "again"})
        assert body == {"hello": "again"}
    finally:
        process.stop()


def test_kill_9_loses_nothing_acknowledged(tmp_path: Path) -> None:
    process = LaminaProcess(tmp_path / "data").start()
    lam = process.client()
    acknowledged = []
    for _ in range(8):
        name = unique("durable")
        lam.create_function(FunctionName=name, Runtime="python3.11", Handler="app.handler",
                            Role=DEFAULT_ROLE, Code={"ZipFile": HELLO})
        acknowledged.append(name)
    wait_ready(lam, acknowledged[0])
    lam.update_function_configuration(FunctionName=acknowledged[0], Description="updated")
    process.stop(signal.SIGKILL)
    process = LaminaProcess(tmp_path / "data").start()
    try:
        lam = process.client()
        for name in acknowledged:
            config = lam.get_function_configuration(FunctionName=name)
            assert config["State"] in ("Pending", "Active")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            states = {lam.get_function_configuration(FunctionName=n)["State"]
                      for n in acknowledged}
            if states == {"Active"}:
                break
            time.sleep(0.1)
        assert states == {"Active"}
        assert invoke(lam, acknowledged[-1])[1] == {"hello": "world"}
        assert lam.get_function_configuration(
            FunctionName=acknowledged[0])["Description"] == "updated"
    finally:
        process.stop()


def _signed(server: Any, key: str, secret: str, when: datetime.datetime | None = None,
            path: str = "/2015-03-31/functions") -> urllib.request.Request:
    request = botocore.awsrequest.AWSRequest(method="GET", url=server.endpoint + path)
    signer = botocore.auth.SigV4Auth(botocore.credentials.Credentials(key, secret), "lambda",
                                     "us-east-1")
    if when is None:
        signer.add_auth(request)
    else:
        request.context["timestamp"] = when.strftime("%Y%m%dT%H%M%SZ")
        request.headers["X-Amz-Date"] = request.context["timestamp"]
        canonical = signer.canonical_request(request)
        string_to_sign = signer.string_to_sign(request, canonical)
        signature = signer.signature(string_to_sign, request)
        signed_headers = signer.signed_headers(signer.headers_to_sign(request))
        scope = f"{key}/{when:%Y%m%d}/us-east-1/lambda/aws4_request"
        request.headers["Authorization"] = (f"AWS4-HMAC-SHA256 Credential={scope}, "
                                            f"SignedHeaders={signed_headers}, "
                                            f"Signature={signature}")
    return urllib.request.Request(request.url, headers=dict(request.headers.items()))


def _error(request: urllib.request.Request) -> tuple[int, str, str]:
    with pytest.raises(urllib.error.HTTPError) as failure:
        urllib.request.urlopen(request, timeout=10)
    body = json.loads(failure.value.read() or b"{}")
    return (failure.value.code, failure.value.headers.get("x-amzn-ErrorType", ""),
            body.get("message", body.get("Message", "")))


def test_signature_failures_get_aws_errors(server: Any) -> None:
    key, secret = server.credentials()
    status, kind, _ = _error(urllib.request.Request(server.endpoint + "/2015-03-31/functions"))
    assert status == 403 and kind.startswith("MissingAuthenticationTokenException")
    status, kind, _ = _error(_signed(server, "AKIAUNKNOWNUNKNOWN00", secret))
    assert status == 403 and kind.startswith("UnrecognizedClientException")
    status, kind, _ = _error(_signed(server, key, secret + "wrong"))
    assert status == 403 and kind.startswith("InvalidSignatureException")
    stale = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=10)
    status, kind, message = _error(_signed(server, key, secret, when=stale))
    assert status == 403 and kind.startswith("InvalidSignatureException")
    assert "Signature expired" in message
    with urllib.request.urlopen(_signed(server, key, secret), timeout=10) as answer:
        assert answer.status == 200


def test_boto3_raises_the_signature_errors(server: Any) -> None:
    key, _ = server.credentials()
    wrong = boto3.client("lambda", endpoint_url=server.endpoint, region_name="us-east-1",
                         aws_access_key_id=key, aws_secret_access_key="not-the-secret")
    with pytest.raises(botocore.exceptions.ClientError) as failure:
        wrong.list_functions()
    assert failure.value.response["Error"]["Code"] == "InvalidSignatureException"


def test_aws_cli_smoke(server: Any, tmp_path: Path) -> None:
    key, secret = server.credentials()
    env = {**os.environ, "AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret,
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": str(tmp_path / "none"),
           "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}
    package = tmp_path / "hello.zip"
    package.write_bytes(HELLO)
    name = unique("cli")

    def aws(*args: str) -> dict[str, Any]:
        done = subprocess.run([sys.executable, "-m", "awscli", "--endpoint-url", server.endpoint,
                               "--output", "json", "lambda", *args], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout) if done.stdout.strip() else {}

    created = aws("create-function", "--function-name", name, "--runtime", "python3.11",
                  "--handler", "app.handler", "--role", ROLE,
                  "--zip-file", f"fileb://{package}")
    assert created["FunctionName"] == name
    aws("wait", "function-active-v2", "--function-name", name)
    listed = aws("list-functions")
    assert name in [f["FunctionName"] for f in listed["Functions"]]
    # The awscli package on PyPI is the CLI v1, which takes the payload as text (v2 needs
    # --cli-binary-format raw-in-base64-out, as the README shows).
    result = aws("invoke", "--function-name", name, "--payload", '{"name": "cli"}',
                 "--log-type", "Tail", "out.json")
    assert result["StatusCode"] == 200
    assert json.loads((tmp_path / "out.json").read_text()) == {"hello": "cli"}
    aws("delete-function", "--function-name", name)
