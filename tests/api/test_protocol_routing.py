"""Routing: every operation of botocore's model, as boto3 serialises it, finds its way back."""

from __future__ import annotations

import datetime
import time
from typing import Any

import pytest
from botocore.model import Shape
from test_protocol_support import Harness, signed_request

from lamina.api.model import resolve, route_table, service_model
from lamina.api.patterns import compile_java
from lamina.errors import UnknownOperation

MODEL = service_model()
ACCOUNT = "123456789012"
FUNCTION_ARN = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:my-function"

# Sample strings for patterned shapes; the first one that fits a shape's pattern and length
# is used, so this stays a short list rather than one entry per shape.
CANDIDATES = [
    "my-function", "live", "1", FUNCTION_ARN,
    f"arn:aws:iam::{ACCOUNT}:role/lambda-role",
    f"arn:aws:lambda:us-east-1:{ACCOUNT}:layer:my-layer",
    f"arn:aws:lambda:us-east-1:{ACCOUNT}:layer:my-layer:1",
    f"arn:aws:lambda:us-east-1:{ACCOUNT}:code-signing-config:csc-0123456789abcdefa",
    f"arn:aws:lambda:us-east-1:{ACCOUNT}:capacity-provider:my-provider",
    f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:my-function:$LATEST/durable-execution/"
    "run-1/exec-1",
    f"arn:aws:signer:us-east-1:{ACCOUNT}:/signing-profiles/p",
    "lambda:InvokeFunction", "lambda:GetLayerVersion", ACCOUNT, "o-abcdefghij",
    "0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b", "csc-0123456789abcdefa", "sg-123", "subnet-123",
    "/mnt/efs", "bucket-name", "example.com:9092", "us-east-1", "Key", "dGVzdA==",
    "index.handler", "$LATEST", "Exception-name", "AbcdefghijException",
    f"arn:aws:elasticfilesystem:us-east-1:{ACCOUNT}:access-point/fsap-0123456789abcdef0",
    "arn:aws:lambda:us-east-1::runtime:0123456789abcdef",
    f"arn:aws:lambda:us-east-1:{ACCOUNT}:runtime/python3.11-0123456789",
]
SAMPLE_TIME = datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)


def sample(shape: Shape, full: bool, depth: int = 0) -> Any:
    """A value that satisfies ``shape``'s constraints; ``full`` fills optional members too."""
    meta, kind = shape.metadata, shape.type_name
    if kind == "structure":
        names = shape.members if full and depth < 3 else shape.required_members
        return {name: sample(shape.members[name], full, depth + 1) for name in names
                if not shape.members[name].serialization.get("eventstream")}
    if kind == "list":
        return [sample(shape.member, full, depth + 1)] * max(meta.get("min", 1), 1)
    if kind == "map":
        if not full and not meta.get("min"):
            return {}
        return {sample(shape.key, full, depth + 1): sample(shape.value, full, depth + 1)}
    if kind == "string":
        if meta.get("enum"):
            return meta["enum"][0]
        low, high = meta.get("min", 1), meta.get("max", 10_000)
        regex = compile_java(meta["pattern"]) if "pattern" in meta else None
        for text in [*CANDIDATES, "x" * max(low, 1)]:
            if low <= len(text) <= high and (regex is None or regex.fullmatch(text)):
                return text
        raise AssertionError(f"no sample string for {shape.name}: add one to CANDIDATES")
    if kind in ("integer", "long"):
        return max(meta.get("min", 1), 1) if meta.get("max", 2) >= 1 else meta["max"]
    if kind in ("double", "float"):
        return float(meta.get("min", 0.5))
    if kind == "boolean":
        return True
    if kind == "blob":
        return b"blob-bytes\x00\xff"
    if kind == "timestamp":
        return SAMPLE_TIME
    raise AssertionError(f"unexpected shape type {kind}")


@pytest.fixture
def harness() -> Harness:
    return Harness()


@pytest.fixture(scope="module")
def shared() -> tuple[Harness, Any]:
    harness = Harness()
    return harness, harness.client()


@pytest.mark.parametrize("full", [False, True], ids=["required", "all-members"])
@pytest.mark.parametrize("name", MODEL.operation_names)
def test_every_operation_round_trips_from_boto3(shared: tuple[Harness, Any], name: str,
                                                full: bool) -> None:
    """boto3 serialises and signs; lamina resolves to the same operation and parses back
    exactly the parameters boto3 was given; boto3 accepts lamina's answer."""
    harness, client = shared
    op = MODEL.operation_model(name)
    params = sample(op.input_shape, full) if op.input_shape is not None else {}
    method = client.meta.method_to_api_mapping
    python = next(k for k, v in method.items() if v == name)
    answer = getattr(client, python)(**params)
    seen = harness.last
    assert seen.error is None, seen.error
    assert seen.operation is not None and seen.operation.name == name
    parsed = dict(seen.params)
    for member, shape in (op.input_shape.members.items() if op.input_shape else ()):
        if shape.metadata.get("idempotencyToken") and member not in params:
            assert parsed.pop(member)  # botocore fills these in itself
    assert parsed == params
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == seen.response.status


def test_all_ninety_one_operations_have_a_route() -> None:
    table = route_table()
    assert len(table.routes) == len(MODEL.operation_names) >= 91
    assert {r.operation.name for r in table.routes} == set(MODEL.operation_names)


@pytest.mark.parametrize("function_name", [
    "my-function",
    "my-function:live",
    "my-function:$LATEST",
    f"{ACCOUNT}:function:my-function",
    FUNCTION_ARN,
    f"{FUNCTION_ARN}:7",
    f"{FUNCTION_ARN}:$LATEST",
])
def test_names_arns_and_qualifiers_in_paths(harness: Harness, function_name: str) -> None:
    harness.client().invoke(FunctionName=function_name, Qualifier="live", Payload=b"{}")
    seen = harness.last
    assert seen.operation.name == "Invoke"
    assert seen.labels == {"FunctionName": function_name}
    assert seen.params["FunctionName"] == function_name
    assert seen.params["Qualifier"] == "live"
    if ":" in function_name:
        assert "%3A" in seen.request.path  # boto3 encodes the ARN's colons


@pytest.mark.parametrize(("call", "params", "expected"), [
    ("list_layers", {}, "ListLayers"),
    ("get_layer_version_by_arn", {"Arn": f"arn:aws:lambda:us-east-1:{ACCOUNT}:layer:l:1"},
     "GetLayerVersionByArn"),
    ("get_provisioned_concurrency_config", {"FunctionName": "f", "Qualifier": "1"},
     "GetProvisionedConcurrencyConfig"),
    ("list_provisioned_concurrency_configs", {"FunctionName": "f"},
     "ListProvisionedConcurrencyConfigs"),
    ("get_function_event_invoke_config", {"FunctionName": "f"},
     "GetFunctionEventInvokeConfig"),
    ("list_function_event_invoke_configs", {"FunctionName": "f"},
     "ListFunctionEventInvokeConfigs"),
])
def test_uris_that_differ_only_by_a_query_literal_or_suffix(
        harness: Harness, call: str, params: dict[str, Any], expected: str) -> None:
    getattr(harness.client(), call)(**params)
    assert harness.last.operation.name == expected
    assert harness.last.params == params


def test_labels_are_percent_decoded_and_may_hold_any_character() -> None:
    op, labels = resolve("GET", "/2017-03-31/tags/arn%3Aaws%3Alambda%3Aus-east-1%3A1%3Afunction"
                                "%3Af%2Fx%20y%24")
    assert op.name == "ListTags"
    assert labels == {"Resource": "arn:aws:lambda:us-east-1:1:function:f/x y$"}


def test_query_may_come_inside_the_raw_path() -> None:
    assert resolve("GET", "/2018-10-31/layers?find=LayerVersion&Arn=x")[0].name == \
        "GetLayerVersionByArn"


def test_a_trailing_slash_is_tolerated() -> None:
    assert resolve("GET", "/2015-03-31/functions/")[0].name == "ListFunctions"


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/"),
    ("GET", "/2015-03-31/nothing"),
    ("PATCH", "/2015-03-31/functions/f"),
    ("POST", "/2015-03-31/functions/f/invocations/extra"),
    ("POST", "/2015-03-31/functions//invocations"),
])
def test_unknown_paths_are_unknown_operations(method: str, path: str) -> None:
    with pytest.raises(UnknownOperation) as caught:
        resolve(method, path)
    assert caught.value.code == "UnknownOperationException"
    assert caught.value.status == 404


def test_unknown_path_is_answered_404_before_authentication() -> None:
    harness = Harness()
    response = harness.handle(signed_request("GET", "/2015-03-31/nothing"))
    assert response.status == 404
    assert ("x-amzn-ErrorType", "UnknownOperationException") in response.headers


def test_invoke_resolution_is_a_few_lookups_not_a_scan() -> None:
    path = "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Af" \
           "/invocations"
    resolve("POST", path)
    rounds = 20_000
    start = time.perf_counter()
    for _ in range(rounds):
        resolve("POST", path, "Qualifier=live")
    per_call = (time.perf_counter() - start) / rounds
    assert per_call < 50e-6, f"{per_call * 1e6:.1f} µs per resolve"
