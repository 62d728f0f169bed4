"""Serialisation: boto3 reads lamina's answers, and raises the right class for its errors."""

from __future__ import annotations

import base64
import datetime
import json
from typing import Any

import pytest
from botocore.awsrequest import HeadersDict
from botocore.exceptions import ClientError
from botocore.parsers import create_parser
from test_protocol_support import Harness

from lamina.api.auth import IncompleteSignature
from lamina.api.model import operation
from lamina.api.serialize import (
    EVENT_STREAM,
    INTERNAL_MESSAGE,
    serialize_error,
    serialize_event,
    serialize_response,
)
from lamina.errors import (
    InvalidSignature,
    ResourceConflict,
    ResourceNotFound,
    ServiceError,
    TooManyRequests,
    UnknownOperation,
    ValidationError,
)


@pytest.fixture
def harness() -> Harness:
    return Harness()


def headers_of(response: Any) -> dict[str, str]:
    return {k.lower(): v for k, v in response.headers}


@pytest.mark.parametrize(("output", "status"), [
    ({"StatusCode": 200, "Payload": b'{"ok": true}', "ExecutedVersion": "$LATEST"}, 200),
    ({"StatusCode": 202}, 202),
    ({"StatusCode": 204}, 204),
])
def test_invoke_status_headers_and_payload(harness: Harness, output: dict[str, Any],
                                           status: int) -> None:
    harness.outputs["Invoke"] = output
    answer = harness.client().invoke(FunctionName="f", Payload=b"{}")
    assert answer["StatusCode"] == status
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == status
    assert answer["Payload"].read() == output.get("Payload", b"")
    if status == 200:
        assert answer["ExecutedVersion"] == "$LATEST"
        assert answer["ResponseMetadata"]["HTTPHeaders"]["content-type"] == "application/json"


def test_invoke_function_error_and_log_tail(harness: Harness) -> None:
    tail = base64.b64encode(b"START RequestId: x\nEND RequestId: x\n").decode()
    harness.outputs["Invoke"] = {
        "StatusCode": 200, "FunctionError": "Unhandled", "LogResult": tail,
        "ExecutedVersion": "3", "Payload": json.dumps({"errorType": "ValueError"}).encode()}
    answer = harness.client().invoke(FunctionName="f", LogType="Tail")
    assert answer["FunctionError"] == "Unhandled"
    assert answer["LogResult"] == tail and answer["ExecutedVersion"] == "3"
    assert json.loads(answer["Payload"].read()) == {"errorType": "ValueError"}


def test_json_output_members_nested_and_unknown(harness: Harness) -> None:
    harness.outputs["GetFunctionConfiguration"] = {
        "FunctionName": "f", "MemorySize": 128, "Timeout": 3, "Architectures": ["x86_64"],
        "Environment": {"Variables": {"K": "V"}}, "LastModified": "2024-01-01T00:00:00.000+0000",
        "Layers": [{"Arn": "arn:aws:lambda:us-east-1:123456789012:layer:l:1", "CodeSize": 10}],
        "InternalSecret": "must not leak", "SnapStart": {"ApplyOn": "None", "Bogus": 1},
    }
    answer = harness.client().get_function_configuration(FunctionName="f")
    assert answer["MemorySize"] == 128 and answer["Environment"]["Variables"] == {"K": "V"}
    assert answer["Layers"][0]["CodeSize"] == 10
    assert answer["SnapStart"] == {"ApplyOn": "None"}
    body = json.loads(harness.last.response.body)
    assert "InternalSecret" not in body and "Bogus" not in body["SnapStart"]


def test_timestamps_in_output(harness: Harness) -> None:
    moment = datetime.datetime(2024, 3, 4, 5, 6, 7, tzinfo=datetime.UTC)
    uuid = "0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b"
    harness.outputs["GetEventSourceMapping"] = {"UUID": uuid, "LastModified": moment,
                                                "StartingPositionTimestamp": 1700000000.5}
    answer = harness.client().get_event_source_mapping(UUID=uuid)
    assert answer["LastModified"] == moment
    assert answer["StartingPositionTimestamp"].timestamp() == 1700000000.5


@pytest.mark.parametrize(("call", "params", "status"), [
    ("create_alias", {"FunctionName": "f", "Name": "live", "FunctionVersion": "1"}, 201),
    ("delete_alias", {"FunctionName": "f", "Name": "live"}, 204),
    ("get_alias", {"FunctionName": "f", "Name": "live"}, 200),
    ("put_provisioned_concurrency_config",
     {"FunctionName": "f", "Qualifier": "1", "ProvisionedConcurrentExecutions": 1}, 202),
])
def test_status_comes_from_the_response_code(harness: Harness, call: str,
                                             params: dict[str, Any], status: int) -> None:
    answer = getattr(harness.client(), call)(**params)
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == status
    if status == 204:
        assert harness.last.response.body == b""


def test_request_id_is_always_present(harness: Harness) -> None:
    answer = harness.client().list_functions()
    assert answer["ResponseMetadata"]["RequestId"]
    response = serialize_response(operation("ListFunctions"), {"Functions": []})
    assert headers_of(response)["x-amzn-requestid"]


# Errors -----------------------------------------------------------------------------------

@pytest.mark.parametrize("error", [
    ResourceNotFound("Function not found: arn:aws:lambda:us-east-1:123456789012:function:f"),
    ResourceConflict("Function already exist: f"),
])
def test_modelled_errors_raise_their_boto3_class(harness: Harness, error: ServiceError) -> None:
    client = harness.client()
    harness.outputs["GetFunction"] = error
    with pytest.raises(getattr(client.exceptions, error.code)) as caught:
        client.get_function(FunctionName="f")
    response = caught.value.response
    assert response["Error"] == {"Code": error.code, "Message": error.message}
    # the body's fields in the casing of the error's shape, as AWS sends them
    message_key = "Message" if error.code == "ResourceNotFoundException" else "message"
    assert response["Type"] == "User" and response[message_key] == error.message
    assert response["ResponseMetadata"]["HTTPStatusCode"] == error.status


def test_throttling_keeps_its_reason_and_retry_hint(harness: Harness) -> None:
    client = harness.client()
    harness.outputs["Invoke"] = TooManyRequests(
        "Rate Exceeded.", Reason="ReservedFunctionConcurrentInvocationLimitExceeded",
        retryAfterSeconds="1")
    with pytest.raises(client.exceptions.TooManyRequestsException) as caught:
        client.invoke(FunctionName="f")
    response = caught.value.response
    assert response["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"
    assert response["retryAfterSeconds"] == "1"
    assert response["ResponseMetadata"]["HTTPHeaders"]["retry-after"] == "1"
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert "retryAfterSeconds" not in json.loads(harness.last.response.body)


@pytest.mark.parametrize("error", [
    ValidationError("1 validation error detected: ..."),
    InvalidSignature("The request signature we calculated does not match..."),
    IncompleteSignature("Authorization header requires 'Credential' parameter."),
    UnknownOperation("Unknown operation"),
])
def test_unmodelled_codes_are_client_errors_with_the_code(harness: Harness,
                                                          error: ServiceError) -> None:
    client = harness.client()
    harness.outputs["ListFunctions"] = error
    with pytest.raises(ClientError) as caught:
        client.list_functions()
    assert type(caught.value) is ClientError
    assert caught.value.response["Error"]["Code"] == error.code
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == error.status


def test_a_crash_is_a_500_service_exception_that_says_nothing(harness: Harness) -> None:
    client = harness.client()
    harness.outputs["ListFunctions"] = KeyError("postgres://admin:hunter2@db/lamina")
    with pytest.raises(client.exceptions.ServiceException) as caught:
        client.list_functions()
    response = caught.value.response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert response["Error"]["Message"] == INTERNAL_MESSAGE
    assert b"hunter2" not in harness.last.response.body


def test_error_wire_form() -> None:
    response = serialize_error(ResourceNotFound("nope"), "rid-1")
    assert response.status == 404
    assert headers_of(response) == {"x-amzn-errortype": "ResourceNotFoundException",
                                    "content-type": "application/json",
                                    "x-amzn-requestid": "rid-1"}
    assert json.loads(response.body) == {"Type": "User", "Message": "nope"}
    conflict = serialize_error(ResourceConflict("busy"), "rid-2")
    assert json.loads(conflict.body) == {"Type": "User", "message": "busy"}


def test_errors_parse_with_botocores_own_rest_json_parser() -> None:
    response = serialize_error(TooManyRequests("Rate Exceeded.", Reason="CallerRateLimitExceeded"))
    parsed = create_parser("rest-json").parse(
        {"status_code": response.status, "headers": HeadersDict(dict(response.headers)),
         "body": response.body}, operation("Invoke").output_shape)
    assert parsed["Error"]["Code"] == "TooManyRequestsException"
    assert parsed["Error"]["Message"] == "Rate Exceeded."


# Response streaming -----------------------------------------------------------------------

def test_invoke_with_response_stream_events_reach_boto3(harness: Harness) -> None:
    harness.outputs["InvokeWithResponseStream"] = {
        "StatusCode": 200, "ExecutedVersion": "$LATEST",
        "EventStream": [("PayloadChunk", {"Payload": b'{"part": 1}'}),
                        ("PayloadChunk", {"Payload": b'{"part": 2}'}),
                        ("InvokeComplete", {"LogResult": "dGFpbA=="})],
    }
    answer = harness.client().invoke_with_response_stream(FunctionName="f")
    assert answer["StatusCode"] == 200 and answer["ExecutedVersion"] == "$LATEST"
    assert answer["ResponseStreamContentType"] == EVENT_STREAM
    events = list(answer["EventStream"])
    assert events == [{"PayloadChunk": {"Payload": b'{"part": 1}'}},
                      {"PayloadChunk": {"Payload": b'{"part": 2}'}},
                      {"InvokeComplete": {"LogResult": "dGFpbA=="}}]


def test_a_single_event_frame_decodes_with_botocore() -> None:
    from botocore.eventstream import EventStreamBuffer

    stream = operation("InvokeWithResponseStream").output_shape.members["EventStream"]
    frame = serialize_event(stream, "InvokeComplete", {"ErrorCode": "Unhandled"})
    buffer = EventStreamBuffer()
    buffer.add_data(frame)
    (message,) = list(buffer)
    assert message.headers[":event-type"] == "InvokeComplete"
    assert json.loads(message.payload) == {"ErrorCode": "Unhandled"}
