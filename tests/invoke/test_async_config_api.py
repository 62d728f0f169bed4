"""Put/Get/Update/Delete/ListFunctionEventInvokeConfig(s) through boto3, and the checks on
destinations and dead-letter targets."""

from __future__ import annotations

import datetime
from typing import Any

import botocore.exceptions
import pytest
from support import ROLE, create, function_zip

HELLO = function_zip("hello")


@pytest.fixture(scope="module")
def pair(lam: Any) -> tuple[str, str]:
    """A function and another one to use as its destination."""
    return create(lam, HELLO), create(lam, HELLO)


def _arn(lam: Any, name: str) -> str:
    return lam.get_function_configuration(FunctionName=name)["FunctionArn"]


def _code(failure: pytest.ExceptionInfo[botocore.exceptions.ClientError]) -> tuple[str, int]:
    error = failure.value.response
    return error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"]


def test_put_get_update_list_delete(lam: Any) -> None:
    name, destination = create(lam, HELLO), create(lam, HELLO)
    target = _arn(lam, destination)
    put = lam.put_function_event_invoke_config(
        FunctionName=name, MaximumRetryAttempts=1, MaximumEventAgeInSeconds=3600,
        DestinationConfig={"OnFailure": {"Destination": target}})
    assert put["FunctionArn"] == f"{_arn(lam, name)}:$LATEST"
    assert put["MaximumRetryAttempts"] == 1
    assert put["MaximumEventAgeInSeconds"] == 3600
    assert put["DestinationConfig"] == {"OnSuccess": {}, "OnFailure": {"Destination": target}}
    assert isinstance(put["LastModified"], datetime.datetime)
    got = lam.get_function_event_invoke_config(FunctionName=name)
    assert {k: got[k] for k in put if k != "ResponseMetadata"} == \
        {k: put[k] for k in put if k != "ResponseMetadata"}

    updated = lam.update_function_event_invoke_config(
        FunctionName=name, DestinationConfig={"OnSuccess": {"Destination": target}})
    assert updated["MaximumRetryAttempts"] == 1  # kept
    assert updated["DestinationConfig"] == {"OnSuccess": {"Destination": target},
                                            "OnFailure": {"Destination": target}}
    assert updated["LastModified"] >= put["LastModified"]

    replaced = lam.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=0)
    assert "MaximumEventAgeInSeconds" not in replaced  # Put replaces the whole config
    assert replaced["DestinationConfig"] == {"OnSuccess": {}, "OnFailure": {}}

    listed = lam.list_function_event_invoke_configs(FunctionName=name)
    assert [c["FunctionArn"] for c in listed["FunctionEventInvokeConfigs"]] == \
        [f"{_arn(lam, name)}:$LATEST"]
    assert "NextMarker" not in listed
    by_qualifier = lam.get_function_event_invoke_config(FunctionName=name, Qualifier="$LATEST")
    assert by_qualifier["MaximumRetryAttempts"] == 0

    assert lam.delete_function_event_invoke_config(
        FunctionName=name)["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(lam.exceptions.ResourceNotFoundException) as failure:
        lam.get_function_event_invoke_config(FunctionName=name)
    assert "doesn't have an EventInvokeConfig" in str(failure.value)
    assert lam.list_function_event_invoke_configs(
        FunctionName=name)["FunctionEventInvokeConfigs"] == []


def test_missing_configs_and_functions_are_not_found(lam: Any, pair: tuple[str, str]) -> None:
    name, _ = pair
    for call in (lam.get_function_event_invoke_config, lam.delete_function_event_invoke_config):
        with pytest.raises(lam.exceptions.ResourceNotFoundException):
            call(FunctionName=name)
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.update_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=1)
    with pytest.raises(lam.exceptions.ResourceNotFoundException) as failure:
        lam.put_function_event_invoke_config(FunctionName="no-such-fn", MaximumRetryAttempts=1)
    assert "Function not found" in str(failure.value)
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.put_function_event_invoke_config(FunctionName=name, Qualifier="42",
                                             MaximumRetryAttempts=1)
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.list_function_event_invoke_configs(FunctionName="no-such-fn")


def test_settings_are_checked(lam: Any, server: Any, pair: tuple[str, str]) -> None:
    name, _ = pair
    unchecked = server.client("lambda", parameter_validation=False)  # the server must check
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as failure:
        lam.put_function_event_invoke_config(FunctionName=name)
    assert "at least one of error handling or destination setting" in str(failure.value)
    for settings in ({"MaximumRetryAttempts": 3}, {"MaximumEventAgeInSeconds": 59},
                     {"MaximumEventAgeInSeconds": 21601}):
        with pytest.raises(botocore.exceptions.ClientError) as failure:
            unchecked.put_function_event_invoke_config(FunctionName=name, **settings)
        assert _code(failure) == ("ValidationException", 400), settings


@pytest.mark.parametrize("destination", [
    "arn:aws:sqs:us-east-1:000000000000:queue",
    "arn:aws:lambda:us-east-1:000000000000:function:no-such-destination",
    "arn:aws:lambda:eu-west-1:000000000000:function:{dest}",
    "arn:aws:lambda:us-east-1:111111111111:function:{dest}",
    "arn:aws:lambda:us-east-1:000000000000:function:{dest}:7",
])
def test_destinations_must_be_existing_functions(lam: Any, pair: tuple[str, str],
                                                 destination: str) -> None:
    name, dest = pair
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as failure:
        lam.put_function_event_invoke_config(
            FunctionName=name,
            DestinationConfig={"OnSuccess": {"Destination": destination.format(dest=dest)}})
    assert _code(failure) == ("InvalidParameterValueException", 400)
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_function_event_invoke_config(FunctionName=name)  # nothing was stored


def test_configs_go_with_their_function(lam: Any) -> None:
    name = create(lam, HELLO)
    lam.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=0)
    lam.delete_function(FunctionName=name)
    create(lam, HELLO, name=name)
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_function_event_invoke_config(FunctionName=name)


def test_dead_letter_target_must_be_a_function(lam: Any, pair: tuple[str, str]) -> None:
    name, dest = pair
    with pytest.raises(lam.exceptions.InvalidParameterValueException):
        lam.create_function(FunctionName=f"{name}-dlq", Runtime="python3.11", Role=ROLE,
                            Handler="app.handler", Code={"ZipFile": HELLO},
                            DeadLetterConfig={"TargetArn": "arn:aws:sqs:us-east-1:0:q"})
    with pytest.raises(lam.exceptions.InvalidParameterValueException):
        lam.update_function_configuration(
            FunctionName=name, DeadLetterConfig={"TargetArn": "arn:aws:sns:us-east-1:0:t"})
    updated = lam.update_function_configuration(
        FunctionName=name, DeadLetterConfig={"TargetArn": _arn(lam, dest)})
    assert updated["DeadLetterConfig"] == {"TargetArn": _arn(lam, dest)}
