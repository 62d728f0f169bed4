"""Fixtures of the async invocation tests: a collector for the recorder function, and a server
whose retries come after a fraction of a second instead of a minute."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from async_helpers import RETRY_BASE_S, Collector
from support import LaminaProcess


@pytest.fixture(scope="session")
def collector() -> Iterator[Collector]:
    collector = Collector()
    yield collector
    collector.close()


@pytest.fixture(scope="session")
def quick_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LaminaProcess]:
    """A server with a short retry base (``RETRY_BASE_S``) for the async tests."""
    data_dir = tmp_path_factory.mktemp("lamina-async") / "data"
    process = LaminaProcess(data_dir, {"LAMINA_ASYNC_RETRY_BASE_SECONDS": str(RETRY_BASE_S),
                                       "LAMINA_ASYNC_POLL_SECONDS": "0.2"}).start()
    yield process
    process.stop()


@pytest.fixture(scope="session")
def qlam(quick_server: LaminaProcess) -> Any:
    return quick_server.client("lambda")
