"""The rest of the configuration surface through boto3: tags, Description, Architectures,
TracingConfig, EphemeralStorage, LoggingConfig."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from support import create, function_zip, invoke, unique, wait_ready

PROBE = function_zip("probe")
ARN = "arn:aws:lambda:us-east-1:000000000000:function:"


def test_tags_on_create_tag_untag_list(lam: Any) -> None:
    name = create(lam, PROBE, Tags={"team": "core", "env": "test"})
    arn = f"{ARN}{name}"
    assert lam.list_tags(Resource=arn)["Tags"] == {"team": "core", "env": "test"}
    assert lam.get_function(FunctionName=name)["Tags"] == {"team": "core", "env": "test"}
    assert lam.tag_resource(Resource=arn, Tags={"env": "prod", "owner": "me"})[
        "ResponseMetadata"]["HTTPStatusCode"] == 204
    lam.untag_resource(Resource=arn, TagKeys=["team", "not-there"])
    assert lam.list_tags(Resource=arn)["Tags"] == {"env": "prod", "owner": "me"}
    with pytest.raises(lam.exceptions.InvalidParameterValueException):
        lam.tag_resource(Resource=arn, Tags={f"k{i}": "v" for i in range(49)})
    with pytest.raises(lam.exceptions.InvalidParameterValueException):
        lam.tag_resource(Resource=arn, Tags={"aws:reserved": "v"})
    with pytest.raises(lam.exceptions.InvalidParameterValueException):
        lam.tag_resource(Resource=f"{arn}:1", Tags={"a": "b"})
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.list_tags(Resource=f"{ARN}{unique('ghost')}")
    assert lam.list_tags(Resource=arn)["Tags"] == {"env": "prod", "owner": "me"}
    with pytest.raises(lam.exceptions.InvalidParameterValueException):
        create(lam, PROBE, Tags={"aws:x": "y"})


def test_description_tracing_and_architectures(lam: Any) -> None:
    name = create(lam, PROBE, Description="a probe", TracingConfig={"Mode": "Active"},
                  Architectures=["x86_64"])
    config = lam.get_function_configuration(FunctionName=name)
    assert config["Description"] == "a probe"
    assert config["TracingConfig"] == {"Mode": "Active"}
    assert config["Architectures"] == ["x86_64"]
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as failure:
        create(lam, PROBE, Architectures=["arm64"])
    assert "arm64" in failure.value.response["Error"]["Message"]
    with pytest.raises(lam.exceptions.InvalidParameterValueException):
        lam.update_function_code(FunctionName=name, ZipFile=PROBE, Architectures=["arm64"])


def test_ephemeral_storage_is_the_size_of_tmp(lam: Any) -> None:
    name = create(lam, PROBE, MemorySize=1024, Timeout=30, EphemeralStorage={"Size": 1024})
    assert lam.get_function_configuration(FunctionName=name)["EphemeralStorage"] == {
        "Size": 1024}
    _, body = invoke(lam, name, {"action": "fill_tmp", "mb": 600})
    assert body["ok"] is True and body["written_mb"] == 600
    with pytest.raises(lam.exceptions.InvalidParameterValueException):
        lam.update_function_configuration(FunctionName=name, EphemeralStorage={"Size": 20000})


def test_json_log_format_and_levels(lam: Any) -> None:
    name = create(lam, function_zip("log_levels"), LoggingConfig={
        "LogFormat": "JSON", "ApplicationLogLevel": "WARN", "SystemLogLevel": "INFO"})
    config = lam.get_function_configuration(FunctionName=name)["LoggingConfig"]
    assert config == {"LogFormat": "JSON", "ApplicationLogLevel": "WARN",
                      "SystemLogLevel": "INFO", "LogGroup": f"/aws/lambda/{name}"}

    def records() -> list[dict[str, Any]]:
        response, _ = invoke(lam, name, LogType="Tail")
        text = base64.b64decode(response["LogResult"]).decode()
        return [json.loads(line) for line in text.splitlines() if line.startswith("{")]

    logged = records()
    types = {record.get("type") for record in logged}
    assert {"platform.start", "platform.report"} <= types, logged
    report = next(r for r in logged if r.get("type") == "platform.report")
    assert report["record"]["metrics"]["durationMs"] >= 0
    messages = {r["message"]: r["level"] for r in logged if "message" in r}
    assert messages == {"a warning line": "WARNING"}  # INFO is below the application level
    lam.update_function_configuration(FunctionName=name, LoggingConfig={
        "LogFormat": "JSON", "ApplicationLogLevel": "INFO"})
    wait_ready(lam, name)
    messages = {r["message"]: r["level"] for r in records() if "message" in r}
    assert messages == {"an info line": "INFO", "a warning line": "WARNING"}
    with pytest.raises(lam.exceptions.InvalidParameterValueException):
        lam.update_function_configuration(FunctionName=name, LoggingConfig={
            "LogFormat": "Text", "ApplicationLogLevel": "DEBUG"})


def test_system_log_level_warn_keeps_only_failed_phases(lam: Any) -> None:
    name = create(lam, function_zip("probe"), LoggingConfig={
        "LogFormat": "JSON", "SystemLogLevel": "WARN"})

    def platform_types(payload: dict[str, Any]) -> list[str]:
        response, _ = invoke(lam, name, payload, LogType="Tail")
        text = base64.b64decode(response["LogResult"]).decode()
        records = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
        return [r["type"] for r in records if str(r.get("type", "")).startswith("platform.")]

    assert platform_types({"action": "echo"}) == []
    assert platform_types({"action": "crash", "code": 2}) == ["platform.report"]
