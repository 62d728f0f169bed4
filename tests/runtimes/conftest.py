"""Fixtures that start a runtime bootstrap as a subprocess bound to its own test server.

The server and process helpers live in ``runtime_harness`` (a uniquely named module:
``conftest`` is a name several test folders share).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from runtime_harness import (
    NODE,
    NODE_BOOTSTRAP,
    PYTHON_BOOTSTRAP,
    RuntimeProcess,
    StartRuntime,
    base_env,
    write_tree,
)


@pytest.fixture
def start_python(tmp_path: Path) -> Iterator[StartRuntime]:
    """Start the Python bootstrap standalone on ``files`` (``-S``: no site-packages)."""
    started: list[RuntimeProcess] = []

    def start(files: dict[str, str], handler: str = "app.handler", **env: str) -> RuntimeProcess:
        task = write_tree(tmp_path / "task", files)
        argv = [sys.executable, "-S", str(PYTHON_BOOTSTRAP)]
        process = RuntimeProcess(argv, task, base_env(handler, task, **env))
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


@pytest.fixture
def start_node(tmp_path: Path) -> Iterator[StartRuntime]:
    """Start the Node bootstrap on ``files`` with cwd = the task root."""
    if not os.path.exists(NODE):
        pytest.skip("node is not installed")
    started: list[RuntimeProcess] = []

    def start(files: dict[str, str], handler: str = "index.handler", **env: str) -> RuntimeProcess:
        task = write_tree(tmp_path / "task", files)
        process = RuntimeProcess([NODE, str(NODE_BOOTSTRAP)], task, base_env(handler, task, **env))
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()
