"""Parsing: what boto3 puts in the path, query, headers and body comes back as its params."""

from __future__ import annotations

import base64
import datetime
import json
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError
from hypothesis import given, settings
from hypothesis import strategies as st
from test_protocol_support import Harness, signed_request

from lamina.api.model import operation, resolve
from lamina.api.parse import check_json_payload, parse_request
from lamina.errors import InvalidRequestContent
from lamina.http.types import Request

ROLE = "arn:aws:iam::123456789012:role/lambda-role"
JSON_PREFIX = "Could not parse request body into json: Could not parse payload into json: "


@pytest.fixture
def harness() -> Harness:
    return Harness()


def tamper_body(client: Any, event: str, change: Callable[[bytes], bytes]) -> None:
    """Rewrite the body boto3 serialised, before it is signed, as a hand-made client might."""
    def rewrite(request: Any, **_: Any) -> None:
        request.data = change(request.body or b"")
    client.meta.events.register_first(f"before-sign.lambda.{event}", rewrite)


def test_invoke_headers_qualifier_and_raw_payload(harness: Harness) -> None:
    context = base64.b64encode(json.dumps({"custom": {"k": "v"}}).encode()).decode()
    payload = b'{"bytes": "\xc3\xa9"}'
    harness.client().invoke(
        FunctionName="arn:aws:lambda:us-east-1:123456789012:function:f", Qualifier="$LATEST",
        InvocationType="Event", LogType="Tail", ClientContext=context, Payload=payload)
    params = harness.last.params
    assert params == {
        "FunctionName": "arn:aws:lambda:us-east-1:123456789012:function:f",
        "Qualifier": "$LATEST", "InvocationType": "Event", "LogType": "Tail",
        "ClientContext": context, "Payload": payload,
    }
    assert isinstance(params["Payload"], bytes)


def test_invoke_payload_is_passed_through_untouched(harness: Harness) -> None:
    """The payload is the function's business; Lambda's JSON check belongs to Invoke."""
    harness.client().invoke(FunctionName="f", Payload=b"\x00\xffnot json")
    assert harness.last.params["Payload"] == b"\x00\xffnot json"


def test_invoke_without_payload_has_no_payload_member(harness: Harness) -> None:
    harness.client().invoke(FunctionName="f")
    assert harness.last.params == {"FunctionName": "f"}


def test_blobs_inside_json_arrive_as_bytes(harness: Harness) -> None:
    archive = bytes(range(256)) * 4
    harness.client().create_function(FunctionName="f", Role=ROLE, Code={"ZipFile": archive},
                                     Runtime="python3.11", Handler="app.handler")
    body = json.loads(harness.last.request.body)
    assert body["Code"]["ZipFile"] == base64.b64encode(archive).decode()  # on the wire
    assert harness.last.params["Code"] == {"ZipFile": archive}


def test_nested_structures_lists_maps_and_numbers(harness: Harness) -> None:
    harness.client().create_function(
        FunctionName="f", Role=ROLE, Code={"S3Bucket": "bucket", "S3Key": "k.zip"},
        Runtime="python3.11", Handler="app.handler", MemorySize=256, Timeout=30, Publish=True,
        Environment={"Variables": {"KEY": "1", "B_2": "two"}}, Architectures=["arm64"],
        VpcConfig={"SubnetIds": ["subnet-1", "subnet-2"], "SecurityGroupIds": ["sg-1"]},
        Tags={"team": "core"})
    params = harness.last.params
    assert params["MemorySize"] == 256 and params["Publish"] is True
    assert params["Environment"] == {"Variables": {"KEY": "1", "B_2": "two"}}
    assert params["VpcConfig"]["SubnetIds"] == ["subnet-1", "subnet-2"]
    assert params["Architectures"] == ["arm64"] and params["Tags"] == {"team": "core"}


def test_query_lists_integers_booleans_and_timestamps(harness: Harness) -> None:
    client = harness.client()
    client.untag_resource(Resource="arn:aws:lambda:us-east-1:123456789012:function:f",
                          TagKeys=["a", "b c", "d+e"])
    assert harness.last.params["TagKeys"] == ["a", "b c", "d+e"]
    client.list_functions(MaxItems=7, Marker="m/1=")
    assert harness.last.params == {"MaxItems": 7, "Marker": "m/1="}
    after = datetime.datetime(2024, 5, 6, 7, 8, 9, tzinfo=datetime.UTC)
    client.list_durable_executions_by_function(FunctionName="f", StartedAfter=after,
                                               ReverseOrder=False, Statuses=["RUNNING"])
    assert harness.last.params == {"FunctionName": "f", "StartedAfter": after,
                                   "ReverseOrder": False, "Statuses": ["RUNNING"]}


def test_timestamps_in_json_bodies(harness: Harness) -> None:
    moment = datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    harness.client().create_event_source_mapping(
        FunctionName="f", EventSourceArn="arn:aws:kinesis:us-east-1:123456789012:stream/s",
        StartingPosition="AT_TIMESTAMP", StartingPositionTimestamp=moment)
    assert harness.last.params["StartingPositionTimestamp"] == moment


def test_structure_payload(harness: Harness) -> None:
    arn = ("arn:aws:lambda:us-east-1:123456789012:function:f:$LATEST/durable-execution/"
           "run/one")
    error = {"ErrorMessage": "stopped", "ErrorType": "Manual", "StackTrace": ["a", "b"]}
    harness.client().stop_durable_execution(DurableExecutionArn=arn, Error=error)
    assert harness.last.params == {"DurableExecutionArn": arn, "Error": error}


def test_unknown_members_of_the_json_body_are_ignored(harness: Harness) -> None:
    client = harness.client()
    tamper_body(client, "PublishVersion",
                lambda body: json.dumps({**json.loads(body), "Bogus": {"x": 1}}).encode())
    client.publish_version(FunctionName="f", Description="d")
    assert harness.last.params == {"FunctionName": "f", "Description": "d"}


def test_a_body_member_cannot_override_a_path_label(harness: Harness) -> None:
    client = harness.client()
    tamper_body(client, "PublishVersion",
                lambda body: json.dumps({**json.loads(body), "FunctionName": "other"}).encode())
    client.publish_version(FunctionName="f")
    assert harness.last.params == {"FunctionName": "f"}


@pytest.mark.parametrize(("body", "detail"), [
    (b'{"Description": "d",}', "Unexpected character ('}' (code 125))"),
    (b'{"Description": ', "Unexpected end-of-input"),
    (b"\x87\x00", "Invalid UTF-8 start byte 0x87"),
])
def test_a_body_that_is_not_json_is_invalid_request_content(
        harness: Harness, body: bytes, detail: str) -> None:
    client = harness.client()
    tamper_body(client, "PublishVersion", lambda _: body)
    with pytest.raises(client.exceptions.InvalidRequestContentException) as caught:
        client.publish_version(FunctionName="f")
    message = caught.value.response["Error"]["Message"]
    assert message.startswith(JSON_PREFIX) and detail in message
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


@pytest.mark.parametrize("body", [b"[]", b'"text"', b"12"])
def test_a_json_body_must_be_an_object(harness: Harness, body: bytes) -> None:
    client = harness.client()
    tamper_body(client, "PublishVersion", lambda _: body)
    with pytest.raises(client.exceptions.InvalidRequestContentException) as caught:
        client.publish_version(FunctionName="f")
    assert "PublishVersionRequest" in caught.value.response["Error"]["Message"]


def test_a_value_of_the_wrong_type_is_invalid_request_content(harness: Harness) -> None:
    """boto3 with parameter validation off sends what it is given; AWS's deserializer, and
    so lamina's parser, refuse it before any validation."""
    client = harness.client(parameter_validation=False)
    with pytest.raises(client.exceptions.InvalidRequestContentException) as caught:
        client.create_function(FunctionName="f", Role=ROLE, Code={"S3Bucket": "b"},
                               MemorySize="lots")
    message = caught.value.response["Error"]["Message"]
    assert "Cannot deserialize value of type `java.lang.Integer` from String \"lots\"" in message
    assert 'CreateFunctionRequest["MemorySize"]' in message


@pytest.mark.parametrize(("member", "value"), [
    ("Publish", "yes"), ("Timeout", True), ("Timeout", 2**40), ("Timeout", 1.5),
    ("Layers", "one"), ("Layers", [1]), ("Environment", ["A"]), ("Description", 5),
    ("Code", "zip"), ("Tags", {"k": 1}), ("MemorySize", "128"),
])
def test_type_mismatches_anywhere(harness: Harness, member: str, value: Any) -> None:
    client = harness.client()
    tamper_body(client, "CreateFunction",
                lambda body: json.dumps({**json.loads(body), member: value}).encode())
    with pytest.raises(client.exceptions.InvalidRequestContentException):
        client.create_function(FunctionName="f", Role=ROLE, Code={"S3Bucket": "bucket"})


def test_broken_base64_is_invalid_request_content(harness: Harness) -> None:
    client = harness.client()

    def break_zip(body: bytes) -> bytes:
        document = json.loads(body)
        document["Code"]["ZipFile"] = "not*base64!"
        return json.dumps(document).encode()

    tamper_body(client, "CreateFunction", break_zip)
    with pytest.raises(client.exceptions.InvalidRequestContentException) as caught:
        client.create_function(FunctionName="f", Role=ROLE, Code={"ZipFile": b"zip"})
    assert "Base64" in caught.value.response["Error"]["Message"]


def test_json_null_is_an_absent_member(harness: Harness) -> None:
    client = harness.client()
    tamper_body(client, "PublishVersion",
                lambda body: json.dumps({"Description": None, "RevisionId": None}).encode())
    client.publish_version(FunctionName="f")
    assert harness.last.params == {"FunctionName": "f"}


def test_an_integer_query_value_that_is_not_a_number_is_a_validation_error() -> None:
    request = signed_request("GET", "/2015-03-31/functions", "MaxItems=ten")
    op, labels = resolve(request.method, request.path, request.query_string)
    with pytest.raises(Exception) as caught:
        parse_request(op, labels, request)
    assert caught.value.code == "ValidationException"
    assert "Value 'ten' at 'maxItems'" in str(caught.value)


def test_parse_of_a_hand_made_request() -> None:
    """The same path a curl user takes: no boto3, raw text."""
    request = Request("PUT", "/2015-03-31/functions/f%3Aalias/configuration", "",
                      {"content-type": "application/json"},
                      b'{"Timeout": 9, "Environment": {"Variables": {"K": "V"}}}')
    op, labels = resolve(request.method, request.path)
    assert parse_request(op, labels, request) == {
        "FunctionName": "f:alias", "Timeout": 9, "Environment": {"Variables": {"K": "V"}}}


@pytest.mark.parametrize("payload", [b"{}", b'"text"', b"[1, 2]", b"3.5", b"null"])
def test_check_json_payload_accepts_any_json_value(payload: bytes) -> None:
    check_json_payload(payload)


@pytest.mark.parametrize(("payload", "detail"), [
    (b"\x99\xeb,j", "Invalid UTF-8 start byte 0x99"),
    (b"{oops}", "Unexpected character ('o' (code 111))"),
    (b"not json", "Unexpected character ('n' (code 110))"),
])
def test_check_json_payload_words_failures_as_lambda(payload: bytes, detail: str) -> None:
    with pytest.raises(InvalidRequestContent) as caught:
        check_json_payload(payload)
    assert caught.value.message.startswith(JSON_PREFIX)
    assert detail in caught.value.message


JSON_TEXTS = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12).map(json.dumps)
WHITESPACE = st.text(" \t\n\r", max_size=3)


@settings(max_examples=400, deadline=None)
@given(st.one_of(
    st.binary(max_size=40),
    st.tuples(WHITESPACE, JSON_TEXTS, WHITESPACE, st.sampled_from(["", "x", "}", "1", "{}"]))
    .map(lambda parts: "".join(parts).encode()),
))
def test_check_json_payload_agrees_with_json_loads(payload: bytes) -> None:
    """The fast path (json's C scanner) accepts exactly what ``json.loads`` accepts."""
    try:
        json.loads(payload.decode("utf-8"))
        valid = True
    except (UnicodeDecodeError, ValueError):
        valid = False
    if valid:
        check_json_payload(payload)
    else:
        with pytest.raises(InvalidRequestContent):
            check_json_payload(payload)


def test_parse_is_cheap_for_invoke() -> None:
    import time

    op = operation("Invoke")
    request = Request("POST", "/2015-03-31/functions/f/invocations", "Qualifier=live",
                      {"x-amz-invocation-type": "RequestResponse", "x-amz-log-type": "None",
                       "host": "h"}, b'{"k": 1}')
    labels = {"FunctionName": "f"}
    parse_request(op, labels, request)
    rounds = 20_000
    start = time.perf_counter()
    for _ in range(rounds):
        request._query = None
        parse_request(op, labels, request)
    assert (time.perf_counter() - start) / rounds < 50e-6


def test_client_errors_carry_no_internal_detail(harness: Harness) -> None:
    client = harness.client()
    tamper_body(client, "PublishVersion", lambda _: b"{")
    with pytest.raises(ClientError) as caught:
        client.publish_version(FunctionName="f")
    assert "Traceback" not in caught.value.response["Error"]["Message"]
