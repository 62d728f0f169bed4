"""External extensions from a layer, through the Extensions API, with Lambda's lifecycle."""

from __future__ import annotations

import time
from typing import Any

import pytest
from support import create, function_zip, invoke, unique, wait_ready

from lamina.cli import client
from lamina.settings import load


@pytest.fixture(scope="module")
def extension_layer(lam: Any) -> str:
    published = lam.publish_layer_version(LayerName=unique("recorder"),
                                          Content={"ZipFile": function_zip("extension_layer")},
                                          CompatibleRuntimes=["python3.11"])
    return published["LayerVersionArn"]


def logs(server: Any, name: str, needle: str, timeout: float = 10) -> list[str]:
    settings = load({"data_dir": str(server.data_dir)})
    deadline = time.monotonic() + timeout
    while True:
        lines = [e["message"] for e in
                 client.signed_get(settings, f"/_lamina/logs/{name}?start=0")["events"]]
        if any(needle in line for line in lines) or time.monotonic() > deadline:
            return lines


def test_extension_registers_during_init_and_sees_every_invoke(
        server: Any, lam: Any, extension_layer: str) -> None:
    name = create(lam, function_zip("hello"), Layers=[extension_layer])
    response, body = invoke(lam, name)
    assert body == {"hello": "world"}
    request_id = response["ResponseMetadata"]["RequestId"]
    lines = logs(server, name, f"recorder saw {request_id}")
    assert any(line.startswith(f"recorder registered for {name} handler=app.handler "
                               "sees_handler_env=False") for line in lines)
    seen = next(i for i, line in enumerate(lines) if f"recorder saw {request_id}" in line)
    report = next(i for i, line in enumerate(lines) if line.startswith("REPORT"))
    assert seen < report
    second = invoke(lam, name)[0]["ResponseMetadata"]["RequestId"]
    assert any(f"recorder saw {second}" in line for line in logs(server, name, second))


def test_caller_gets_the_answer_while_the_extension_still_works(
        server: Any, lam: Any, extension_layer: str) -> None:
    name = create(lam, function_zip("hello"), Layers=[extension_layer], Timeout=10,
                  Environment={"Variables": {"RECORDER_DELAY": "0.8"}})
    invoke(lam, name)  # cold start out of the way
    time.sleep(1)
    started = time.monotonic()
    response, _ = invoke(lam, name)
    assert time.monotonic() - started < 0.7
    request_id = response["ResponseMetadata"]["RequestId"]
    lines = logs(server, name, f"REPORT RequestId: {request_id}")
    report = next(line for line in lines if line.startswith(f"REPORT RequestId: {request_id}"))
    duration = float(report.split("Duration: ")[1].split(" ms")[0])
    assert duration >= 700  # the extension's post-processing counts, as on AWS


def test_shutdown_event_reaches_the_extension(server: Any, lam: Any, extension_layer: str) -> None:
    name = create(lam, function_zip("hello"), Layers=[extension_layer])
    invoke(lam, name)
    lam.update_function_configuration(FunctionName=name, Description="retire the environment")
    wait_ready(lam, name)
    invoke(lam, name)
    assert any("recorder shutdown SPINDOWN" in line
               for line in logs(server, name, "recorder shutdown"))


def test_extension_init_error_fails_the_invoke(lam: Any, extension_layer: str) -> None:
    name = create(lam, function_zip("hello"), Layers=[extension_layer],
                  Environment={"Variables": {"RECORDER_INIT_ERROR": "1"}})
    response, body = invoke(lam, name)
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Extension.Refused"
