"""Shared fixtures: one real ``lamina serve`` on a free loopback port for the session, boto3."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import LaminaProcess


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LaminaProcess]:
    data_dir = tmp_path_factory.mktemp("lamina") / "data"
    process = LaminaProcess(data_dir).start()
    yield process
    process.stop()


@pytest.fixture(scope="session")
def lam(server: LaminaProcess) -> Any:
    return server.client("lambda")


@pytest.fixture(scope="session")
def awslambdaric_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The official Python runtime interface client, installed from PyPI at test time."""
    target = tmp_path_factory.mktemp("awslambdaric")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--target", str(target),
                    "awslambdaric"], check=True, timeout=600)
    for cache in target.rglob("__pycache__"):
        shutil.rmtree(cache, ignore_errors=True)
    return target


@pytest.fixture(scope="session")
def boto3_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """boto3 for functions that call lamina's API, installed from PyPI at test time; botocore's
    data is cut down to the services lamina serves (lambda, iam, sts) to keep zips small."""
    target = tmp_path_factory.mktemp("boto3")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--target", str(target),
                    "boto3"], check=True, timeout=600)
    for cache in target.rglob("__pycache__"):
        shutil.rmtree(cache, ignore_errors=True)
    for entry in (target / "botocore" / "data").iterdir():
        if entry.is_dir() and entry.name not in ("lambda", "iam", "sts"):
            shutil.rmtree(entry)
    return target


@pytest.fixture
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="lamina-test-") as directory:
        yield Path(directory)
