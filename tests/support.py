"""Helpers for black-box tests: a real ``lamina serve`` subprocess and function packages.

Tests that must restart or kill a server start their own ``LaminaProcess``; the rest share the
session's server (see ``conftest.py``). Functions are built from the small source trees in
``tests/functions/``.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
import uuid
import zipfile
from pathlib import Path
from typing import Any

import boto3
import botocore.config

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS = Path(__file__).resolve().parent / "functions"
ROLE_NAME = "lamina-test"
ROLE = f"arn:aws:iam::000000000000:role/{ROLE_NAME}"
DEFAULT_ROLE = "arn:aws:iam::000000000000:role/lamina-function"  # predefined by every lamina
LAMBDA_TRUST = json.dumps({"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
    "Action": "sts:AssumeRole"}]})


class LaminaProcess:
    """A ``lamina serve`` subprocess with its own data dir."""

    def __init__(self, data_dir: Path, extra_env: dict[str, str] | None = None,
                 args: list[str] | None = None) -> None:
        self.data_dir = data_dir
        self.extra_env = extra_env or {}
        self.args = args or []
        self.process: subprocess.Popen[bytes] | None = None
        self.endpoint = ""
        self.output = b""
        self.log_path = data_dir.parent / f"{data_dir.name}-server.log"

    def start(self, timeout: float = 60.0) -> LaminaProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        server_file = self.data_dir / "server.json"
        server_file.unlink(missing_ok=True)
        env = {**os.environ, "LAMINA_PORT": "0", "LAMINA_DATA_DIR": str(self.data_dir),
               "LAMINA_IDLE_TIMEOUT": "120", **self.extra_env}
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "lamina", "serve", *self.args], env=env, cwd=ROOT,
            stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"lamina serve exited {self.process.returncode}:\n"
                                   f"{self.log_path.read_text()[-4000:]}")
            if server_file.exists():
                try:
                    self.endpoint = json.loads(server_file.read_text())["endpoint"]
                    ensure_role(self.client("iam"), ROLE_NAME)
                    return self
                except (ValueError, KeyError):
                    pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"lamina serve did not become ready:\n{self.log_path.read_text()}")

    def credentials(self) -> tuple[str, str]:
        env = {**os.environ, **self.extra_env}
        if env.get("LAMINA_ROOT_ACCESS_KEY_ID") and env.get("LAMINA_ROOT_SECRET_ACCESS_KEY"):
            return env["LAMINA_ROOT_ACCESS_KEY_ID"], env["LAMINA_ROOT_SECRET_ACCESS_KEY"]
        document = json.loads((self.data_dir / "credentials.json").read_text())
        return document["aws_access_key_id"], document["aws_secret_access_key"]

    def client(self, service: str = "lambda", **config: Any) -> Any:
        key, secret = self.credentials()
        return boto3.client(
            service, endpoint_url=self.endpoint, region_name="us-east-1",
            aws_access_key_id=key, aws_secret_access_key=secret,
            config=botocore.config.Config(retries={"max_attempts": 0}, read_timeout=120,
                                          **config))

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        code = self.process.returncode
        self.process = None
        return code

    def server_log(self) -> str:
        return self.log_path.read_text(errors="replace")


def ensure_role(iam: Any, name: str, trust: str = LAMBDA_TRUST,
                policies: tuple[str, ...] = ()) -> str:
    """An execution role that Lambda may assume (the tests' functions name ``ROLE``)."""
    try:
        arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust)["Role"]["Arn"]
    except iam.exceptions.EntityAlreadyExistsException:
        return str(iam.get_role(RoleName=name)["Role"]["Arn"])
    for policy in policies:
        iam.attach_role_policy(RoleName=name, PolicyArn=policy)
    return str(arn)


def zip_directory(source: Path | None, extra: dict[str, str | bytes] | None = None,
                  modes: dict[str, int] | None = None, stored: bool = False) -> bytes:
    """A zip of ``source`` (may be None) plus ``extra`` files; ``modes`` sets unix modes."""
    buffer = io.BytesIO()
    modes = modes or {}
    method = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(buffer, "w", method) as archive:
        if source is not None:
            for path in sorted(source.rglob("*")):
                if path.is_file() and "__pycache__" not in path.parts:
                    name = path.relative_to(source).as_posix()
                    info = zipfile.ZipInfo(name)
                    mode = modes.get(name, path.stat().st_mode & 0o777)
                    info.external_attr = (0o100000 | mode) << 16
                    info.compress_type = method
                    archive.writestr(info, path.read_bytes())
        for name, content in (extra or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (0o100000 | modes.get(name, 0o644)) << 16
            info.compress_type = method
            archive.writestr(info, content)
    return buffer.getvalue()


def function_zip(name: str, **kwargs: Any) -> bytes:
    return zip_directory(FUNCTIONS / name, **kwargs)


def unique(prefix: str = "fn") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def wait_ready(lam: Any, name: str, timeout: float = 30.0) -> dict[str, Any]:
    """Poll until a create or update has settled (faster than boto3's 1-second waiters)."""
    deadline = time.monotonic() + timeout
    while True:
        config = lam.get_function_configuration(FunctionName=name)
        if config.get("State") == "Active" and config.get("LastUpdateStatus") == "Successful":
            return config
        if config.get("State") == "Failed" or time.monotonic() > deadline:
            raise AssertionError(f"{name} did not settle: {config}")
        time.sleep(0.02)


def create(lam: Any, code: bytes, *, name: str | None = None, runtime: str = "python3.11",
           handler: str = "app.handler", wait: bool = True, **config: Any) -> str:
    name = name or unique()
    config.setdefault("Role", ROLE)
    lam.create_function(FunctionName=name, Runtime=runtime, Handler=handler,
                        Code={"ZipFile": code}, **config)
    if wait:
        wait_ready(lam, name)
    return name


def invoke(lam: Any, name: str, payload: Any = None, **kwargs: Any) -> tuple[dict[str, Any], Any]:
    """Invoke synchronously; returns (response, decoded JSON payload or raw bytes)."""
    body = json.dumps(payload if payload is not None else {}).encode()
    response = lam.invoke(FunctionName=name, Payload=body, **kwargs)
    raw = response["Payload"].read()
    try:
        return response, json.loads(raw)
    except ValueError:
        return response, raw


def error_code(failure: Any) -> str:
    """The AWS error code of a ``ClientError``, or of pytest's ``ExceptionInfo`` around one."""
    error = getattr(failure, "value", failure)
    return str(error.response["Error"]["Code"])
