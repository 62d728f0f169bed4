"""Provisioned concurrency through boto3: environments initialised before the first invoke,
kept warm, re-created, spilled over, re-provisioned after a restart; and bad input."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from support import LaminaProcess, create, function_zip, invoke, wait_ready

CODE = function_zip("versioned", extra={"mark.txt": "provisioned"})


def published(lam: Any) -> str:
    name = create(lam, CODE)
    lam.publish_version(FunctionName=name)
    return name


def wait_status(lam: Any, name: str, qualifier: str, status: str = "READY",
                timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        config = lam.get_provisioned_concurrency_config(FunctionName=name, Qualifier=qualifier)
        if config["Status"] == status:
            return config
        assert time.monotonic() < deadline, config
        time.sleep(0.05)


def test_ready_before_the_first_invoke(lam: Any) -> None:
    name = published(lam)
    put = lam.put_provisioned_concurrency_config(FunctionName=name, Qualifier="1",
                                                 ProvisionedConcurrentExecutions=2)
    assert put["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert put["RequestedProvisionedConcurrentExecutions"] == 2
    assert put["Status"] in ("IN_PROGRESS", "READY")
    started = time.monotonic()
    ready = wait_status(lam, name, "1")
    print(f"provisioned: 2 environments READY {1000 * (time.monotonic() - started):.0f} ms "
          "after the Put answered")
    assert ready["AvailableProvisionedConcurrentExecutions"] == 2
    assert ready["AllocatedProvisionedConcurrentExecutions"] == 2
    response, body = invoke(lam, name, Qualifier="1", LogType="Tail")
    assert body["init"] == "provisioned-concurrency" and body["version"] == "1"
    log = base64.b64decode(response["LogResult"]).decode()
    assert "REPORT RequestId" in log and "Init Duration" not in log
    # $LATEST is untouched: its environments are on demand.
    assert invoke(lam, name)[1]["init"] == "on-demand"
    listed = lam.list_provisioned_concurrency_configs(FunctionName=name)
    assert [c["FunctionArn"].rsplit(":", 1)[-1] for c in
            listed["ProvisionedConcurrencyConfigs"]] == ["1"]


def test_traffic_beyond_provisioned_spills_over_on_demand(lam: Any) -> None:
    name = published(lam)
    lam.put_provisioned_concurrency_config(FunctionName=name, Qualifier="1",
                                           ProvisionedConcurrentExecutions=1)
    wait_status(lam, name, "1")
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda _: invoke(lam, name, {"sleep": 0.5}, Qualifier="1")[1],
                                range(3)))
    kinds = sorted(body["init"] for body in results)
    assert kinds == ["on-demand", "on-demand", "provisioned-concurrency"], kinds


def test_a_dead_provisioned_environment_is_recreated(lam: Any) -> None:
    name = published(lam)
    lam.put_provisioned_concurrency_config(FunctionName=name, Qualifier="1",
                                           ProvisionedConcurrentExecutions=1)
    wait_status(lam, name, "1")
    first = invoke(lam, name, Qualifier="1")[1]["stream"]
    response, _ = invoke(lam, name, {"die": True}, Qualifier="1")
    assert response.get("FunctionError") == "Unhandled"
    deadline = time.monotonic() + 30
    while True:  # READY again once the replacement finished Init
        config = lam.get_provisioned_concurrency_config(FunctionName=name, Qualifier="1")
        body = None
        if config["Status"] == "READY":
            body = invoke(lam, name, Qualifier="1")[1]
            if body["stream"] != first:
                break
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert body["init"] == "provisioned-concurrency"


def test_alias_config_and_delete(lam: Any) -> None:
    name = published(lam)
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    lam.put_provisioned_concurrency_config(FunctionName=name, Qualifier="live",
                                           ProvisionedConcurrentExecutions=1)
    wait_status(lam, name, "live")
    assert invoke(lam, name, Qualifier="live")[1]["init"] == "provisioned-concurrency"
    with pytest.raises(lam.exceptions.ResourceConflictException):  # one source per version
        lam.put_provisioned_concurrency_config(FunctionName=name, Qualifier="1",
                                               ProvisionedConcurrentExecutions=1)
    lam.delete_provisioned_concurrency_config(FunctionName=name, Qualifier="live")
    with pytest.raises(lam.exceptions.ProvisionedConcurrencyConfigNotFoundException):
        lam.get_provisioned_concurrency_config(FunctionName=name, Qualifier="live")
    assert lam.list_provisioned_concurrency_configs(
        FunctionName=name)["ProvisionedConcurrencyConfigs"] == []


def test_bad_configs_change_nothing(lam: Any) -> None:
    name = published(lam)
    lam.create_alias(FunctionName=name, Name="latest", FunctionVersion="$LATEST")
    cases = [
        ("$LATEST", 1, lam.exceptions.InvalidParameterValueException),
        ("latest", 1, lam.exceptions.InvalidParameterValueException),  # alias of $LATEST
        ("7", 1, lam.exceptions.ResourceNotFoundException),
        ("nope", 1, lam.exceptions.ResourceNotFoundException),
    ]
    for qualifier, count, error in cases:
        with pytest.raises(error):
            lam.put_provisioned_concurrency_config(FunctionName=name, Qualifier=qualifier,
                                                   ProvisionedConcurrentExecutions=count)
    with pytest.raises(lam.exceptions.ProvisionedConcurrencyConfigNotFoundException):
        lam.get_provisioned_concurrency_config(FunctionName=name, Qualifier="1")
    # Provisioned environments count against the function's reserved concurrency.
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=2)
    with pytest.raises(lam.exceptions.InvalidParameterValueException):
        lam.put_provisioned_concurrency_config(FunctionName=name, Qualifier="1",
                                               ProvisionedConcurrentExecutions=3)
    assert lam.list_provisioned_concurrency_configs(
        FunctionName=name)["ProvisionedConcurrencyConfigs"] == []


@pytest.fixture
def own_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LaminaProcess]:
    process = LaminaProcess(tmp_path_factory.mktemp("provisioned") / "data")
    yield process.start()
    process.stop()


def test_provisioned_again_after_a_restart(own_server: LaminaProcess) -> None:
    lam = own_server.client()
    name = published(lam)
    lam.put_provisioned_concurrency_config(FunctionName=name, Qualifier="1",
                                           ProvisionedConcurrentExecutions=1)
    wait_status(lam, name, "1")
    own_server.stop()
    own_server.start()
    lam = own_server.client()
    wait_ready(lam, name)
    wait_status(lam, name, "1")
    assert invoke(lam, name, Qualifier="1")[1]["init"] == "provisioned-concurrency"


def test_reservation_may_not_shrink_below_provisioned_concurrency(lam: Any) -> None:
    name = create(lam, function_zip("hello"))
    version = lam.publish_version(FunctionName=name)["Version"]
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=3)
    lam.put_provisioned_concurrency_config(FunctionName=name, Qualifier=version,
                                           ProvisionedConcurrentExecutions=2)
    with pytest.raises(lam.exceptions.InvalidParameterValueException):
        lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=1)
    assert lam.get_function_concurrency(FunctionName=name)["ReservedConcurrentExecutions"] == 3
    lam.delete_provisioned_concurrency_config(FunctionName=name, Qualifier=version)


def test_provisioned_environments_whose_init_keeps_failing_report_failed(lam: Any) -> None:
    name = create(lam, function_zip("broken_import"))
    version = lam.publish_version(FunctionName=name)["Version"]
    lam.put_provisioned_concurrency_config(FunctionName=name, Qualifier=version,
                                           ProvisionedConcurrentExecutions=1)
    deadline = time.monotonic() + 20
    config: dict[str, Any] = {}
    while time.monotonic() < deadline:
        config = lam.get_provisioned_concurrency_config(FunctionName=name, Qualifier=version)
        if config["Status"] == "FAILED":
            break
        time.sleep(0.2)
    assert config["Status"] == "FAILED", config
    assert "Runtime.ImportModuleError" in config["StatusReason"]
    lam.delete_provisioned_concurrency_config(FunctionName=name, Qualifier=version)
