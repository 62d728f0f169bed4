"""Validation: the model's constraints, answered in AWS's exact words.

The expected messages marked "as AWS answered" are AWS's own responses to the same calls, as
recorded against real Lambda; the rest follow the same grammar.
"""

from __future__ import annotations

import datetime
import re
from typing import Any

import pytest
from botocore.exceptions import ClientError
from test_protocol_support import Harness

from lamina.api.model import operation, service_model
from lamina.api.patterns import compile_java
from lamina.api.validate import validate
from lamina.errors import ValidationError

ROLE = "arn:aws:iam::123456789012:role/lambda-role"
PREFIX = "1 validation error detected: "
FUNCTION_NAME_PATTERN = service_model().shape_for("FunctionName").metadata["pattern"]
ROLE_PATTERN = service_model().shape_for("RoleArn").metadata["pattern"]


@pytest.fixture(scope="module")
def client() -> Any:
    """A client that sends whatever it is given (botocore checks no pattern, max or range;
    with validation off it checks nothing), wired to lamina."""
    return Harness().client(parameter_validation=False)


def rejection(call: Any, **params: Any) -> str:
    with pytest.raises(ClientError) as caught:
        call(**params)
    error = caught.value.response["Error"]
    assert error["Code"] == "ValidationException"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    return error["Message"]


def create(client: Any, **changes: Any) -> str:
    params = {"FunctionName": "f", "Role": ROLE, "Code": {"S3Bucket": "bucket"},
              "Runtime": "python3.11", "Handler": "app.handler", **changes}
    return rejection(client.create_function, **params)


# As AWS answered --------------------------------------------------------------------------

def test_function_name_pattern(client: Any) -> None:
    assert create(client, FunctionName="invalid:function:name") == (
        f"{PREFIX}Value 'invalid:function:name' at 'functionName' failed to satisfy "
        f"constraint: Member must satisfy regular expression pattern: {FUNCTION_NAME_PATTERN}")


def test_a_bare_function_name_is_limited_to_64_characters(client: Any) -> None:
    assert create(client, FunctionName="a" * 65) == (
        f"{PREFIX}Value '{'a' * 65}' at 'functionName' failed to satisfy constraint: "
        "Member must have length less than or equal to 64")


def test_a_function_arn_is_limited_to_140_characters(client: Any) -> None:
    prefix = "arn:aws:lambda:us-east-1:123456789012:function:"
    arn = prefix + "a" * (141 - len(prefix))
    assert create(client, FunctionName=arn) == (
        f"{PREFIX}Value '{arn}' at 'functionName' failed to satisfy constraint: "
        "Member must have length less than or equal to 140")
    client.get_function(FunctionName=prefix + "a" * (140 - len(prefix)))  # 140 is fine


def test_role_pattern(client: Any) -> None:
    assert create(client, Role="r1") == (
        f"{PREFIX}Value 'r1' at 'role' failed to satisfy constraint: Member must satisfy "
        f"regular expression pattern: {ROLE_PATTERN}")


def test_list_length(client: Any) -> None:
    assert create(client, Architectures=["x86_64", "arm64"]) == (
        f"{PREFIX}Value '[x86_64, arm64]' at 'architectures' failed to satisfy constraint: "
        "Member must have length less than or equal to 1")


def test_list_member_enum(client: Any) -> None:
    assert create(client, Architectures=["X86_64"]) == (
        f"{PREFIX}Value '[X86_64]' at 'architectures' failed to satisfy constraint: Member "
        "must satisfy constraint: [Member must satisfy enum value set: [x86_64, arm64], "
        "Member must not be null]")


def test_alias_name_may_not_be_a_number(client: Any) -> None:
    assert rejection(client.create_alias, FunctionName="f", Name="2024",
                     FunctionVersion="1") == (
        f"{PREFIX}Value '2024' at 'name' failed to satisfy constraint: Member must satisfy "
        "regular expression pattern: (?!^[0-9]+$)([a-zA-Z0-9-_]+)")


@pytest.mark.parametrize(("weights", "text"), [
    ({"2": -1.0}, "{2=-1.0}' at 'routingConfig.additionalVersionWeights' failed to satisfy "
                  "constraint: Map value must satisfy constraint: [Member must have value less "
                  "than or equal to 1.0, Member must have value greater than or equal to 0.0, "
                  "Member must not be null]"),
    ({"2": 2.0}, "{2=2.0}' at 'routingConfig.additionalVersionWeights' failed to satisfy "
                 "constraint: Map value must satisfy constraint: [Member must have value less "
                 "than or equal to 1.0, Member must have value greater than or equal to 0.0, "
                 "Member must not be null]"),
    ({"$LATEST": 0.5}, "{$LATEST=0.5}' at 'routingConfig.additionalVersionWeights' failed to "
                       "satisfy constraint: Map keys must satisfy constraint: [Member must have "
                       "length less than or equal to 1024, Member must have length greater "
                       "than or equal to 1, Member must satisfy regular expression pattern: "
                       "[0-9]+]"),
])
def test_map_keys_and_values(client: Any, weights: dict[str, float], text: str) -> None:
    assert rejection(client.update_alias, FunctionName="f", Name="live",
                     RoutingConfig={"AdditionalVersionWeights": weights}) == (
        f"{PREFIX}Value '{text}")


def test_enum_in_query(client: Any) -> None:
    assert rejection(client.list_functions, FunctionVersion="invalid") == (
        f"{PREFIX}Value 'invalid' at 'functionVersion' failed to satisfy constraint: Member "
        "must satisfy enum value set: [ALL]")
    assert rejection(client.list_layers, CompatibleArchitecture="archdoesnotexist") == (
        f"{PREFIX}Value 'archdoesnotexist' at 'compatibleArchitecture' failed to satisfy "
        "constraint: Member must satisfy enum value set: [x86_64, arm64]")


def test_literal_pattern(client: Any) -> None:
    assert rejection(client.add_layer_version_permission, LayerName="l", VersionNumber=1,
                     StatementId="s", Action="*", Principal="*") == (
        f"{PREFIX}Value '*' at 'action' failed to satisfy constraint: Member must satisfy "
        "regular expression pattern: lambda:GetLayerVersion")


def test_numeric_range(client: Any) -> None:
    assert rejection(client.put_provisioned_concurrency_config, FunctionName="f",
                     Qualifier="1", ProvisionedConcurrentExecutions=0) == (
        f"{PREFIX}Value '0' at 'provisionedConcurrentExecutions' failed to satisfy constraint: "
        "Member must have value greater than or equal to 1")


def test_statement_id_pattern(client: Any) -> None:
    assert rejection(client.add_permission, FunctionName="f", StatementId="example.com",
                     Action="lambda:InvokeFunction", Principal="s3.amazonaws.com") == (
        f"{PREFIX}Value 'example.com' at 'statementId' failed to satisfy constraint: Member "
        "must satisfy regular expression pattern: ([a-zA-Z0-9-_]+)")


def test_missing_required_query_list(client: Any) -> None:
    assert rejection(client.untag_resource,
                     Resource="arn:aws:lambda:us-east-1:123456789012:function:f",
                     TagKeys=[]) == (
        f"{PREFIX}Value null at 'tagKeys' failed to satisfy constraint: Member must not be "
        "null")


def test_nested_member_paths(client: Any) -> None:
    message = rejection(client.put_function_event_invoke_config, FunctionName="f",
                        DestinationConfig={"OnFailure": {"Destination": "arn:aws:_-/!x"}})
    assert message.startswith(
        f"{PREFIX}Value 'arn:aws:_-/!x' at 'destinationConfig.onFailure.destination' failed to "
        "satisfy constraint: Member must satisfy regular expression pattern: $|kafka://")


def test_snapstart_enum_in_a_nested_structure(client: Any) -> None:
    assert create(client, SnapStart={"ApplyOn": "invalidOption"}) == (
        f"{PREFIX}Value 'invalidOption' at 'snapStart.applyOn' failed to satisfy constraint: "
        "Member must satisfy enum value set: [PublishedVersions, None]")


# Same grammar -----------------------------------------------------------------------------

def test_several_errors_are_counted_and_joined(client: Any) -> None:
    message = create(client, FunctionName="bad name!", MemorySize=64, Timeout=0,
                     Runtime="python9", Role=None)
    assert message.startswith("5 validation errors detected: ")
    parts = message[len("5 validation errors detected: "):].split("; ")
    assert len(parts) == 5
    assert "Value '64' at 'memorySize' failed to satisfy constraint: Member must have value " \
           "greater than or equal to 128" in parts
    assert "Value '0' at 'timeout' failed to satisfy constraint: Member must have value " \
           "greater than or equal to 1" in parts
    assert "Value null at 'role' failed to satisfy constraint: Member must not be null" in parts
    assert any(p.startswith("Value 'python9' at 'runtime' failed to satisfy constraint: "
                            "Member must satisfy enum value set: [") for p in parts)


def test_each_broken_constraint_of_a_value_is_one_error(client: Any) -> None:
    message = rejection(client.get_function, FunctionName="bad name!" * 20)
    assert message.startswith("2 validation errors detected: ")
    assert "Member must have length less than or equal to 64" in message
    assert "Member must satisfy regular expression pattern" in message


def test_sensitive_values_are_not_echoed(client: Any) -> None:
    message = create(client, Environment={"Variables": {"1BAD": "secret-value"}})
    assert message == (
        f"{PREFIX}Value at 'environment.variables' failed to satisfy constraint: Map keys must "
        "satisfy constraint: [Member must satisfy regular expression pattern: "
        "[a-zA-Z]([a-zA-Z0-9_])+]")
    assert "secret-value" not in message


def test_list_of_structures_is_checked_member_by_member(client: Any) -> None:
    message = create(client, FileSystemConfigs=[{"Arn": "nope", "LocalMountPath": "/tmp/x"}])
    assert "at 'fileSystemConfigs.1.member.arn'" in message
    assert "Value '/tmp/x' at 'fileSystemConfigs.1.member.localMountPath'" in message


def test_blob_length_is_enforced(client: Any) -> None:
    message = rejection(client.send_durable_execution_callback_success, CallbackId="abc",
                        Result=b"x" * (1024 * 1024 + 1))
    assert message == (  # the shape is sensitive, so its value is not shown
        f"{PREFIX}Value at 'result' failed to satisfy constraint: Member must have length "
        "less than or equal to 1048576")


def test_blob_values_print_as_java_byte_buffers() -> None:
    from lamina.api.validate import render

    assert render(b"abc") == "java.nio.HeapByteBuffer[pos=0 lim=3 cap=3]"


def test_valid_requests_pass(client: Any) -> None:
    client.create_function(FunctionName="arn:aws:lambda:us-east-1:123456789012:function:f",
                           Role=ROLE, Code={"S3Bucket": "bucket"}, MemorySize=128,
                           Timeout=900, Tags={"héllo wörld": "ünïcode ok"})
    client.tag_resource(Resource="arn:aws:lambda:us-east-1:123456789012:function:f",
                        Tags={"日本": "値"})


def test_the_exception_is_a_client_error_with_the_aws_code(client: Any) -> None:
    """ValidationException is not in Lambda's model, so boto3 raises ClientError itself."""
    with pytest.raises(ClientError) as caught:
        client.get_function(FunctionName="bad name!")
    assert type(caught.value) is ClientError
    assert caught.value.response["Error"]["Code"] == "ValidationException"


# validate() directly ----------------------------------------------------------------------

def failures(name: str, params: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as caught:
        validate(operation(name), params)
    assert caught.value.code == "ValidationException" and caught.value.status == 400
    return caught.value.message


@pytest.mark.parametrize(("member", "value", "kind"), [
    ("MemorySize", "128", "integer"), ("MemorySize", True, "integer"),
    ("Publish", "true", "boolean"), ("Description", 7, "string"),
    ("Layers", "arn", "list"), ("Environment", "x", "structure"),
])
def test_wrong_types(member: str, value: Any, kind: str) -> None:
    params = {"FunctionName": "f", "Role": ROLE, "Code": {}, member: value}
    assert f"Member must be of type {kind}" in failures("CreateFunction", params)


def test_lengths_count_utf16_units_as_java_does() -> None:
    assert "less than or equal to 256" in failures(
        "PublishVersion", {"FunctionName": "f", "Description": "😀" * 129})
    validate(operation("PublishVersion"), {"FunctionName": "f", "Description": "😀" * 128})


def test_values_are_printed_as_java_prints_them() -> None:
    message = failures("UpdateAlias", {"FunctionName": "f", "Name": "a", "RoutingConfig": {
        "AdditionalVersionWeights": {"1": 1e10}}})
    assert "Value '{1=1.0E10}'" in message


def test_unknown_members_are_ignored() -> None:
    validate(operation("GetFunction"), {"FunctionName": "f", "Whatever": object()})


def test_timestamps_must_be_datetimes() -> None:
    validate(operation("ListDurableExecutionsByFunction"),
             {"FunctionName": "f", "StartedAfter": datetime.datetime.now(datetime.UTC)})
    assert "Member must be of type timestamp" in failures(
        "ListDurableExecutionsByFunction", {"FunctionName": "f", "StartedAfter": "yesterday"})


def test_null_list_members_break_the_list_constraint() -> None:
    message = failures("CreateFunction", {"FunctionName": "f", "Role": ROLE, "Code": {},
                                          "Layers": [None]})
    assert "Value '[null]' at 'layers'" in message and "Member must not be null]" in message


def test_validating_an_invoke_is_cheap() -> None:
    import time

    op = operation("Invoke")
    params = {"FunctionName": "arn:aws:lambda:us-east-1:123456789012:function:f",
              "Qualifier": "live", "InvocationType": "RequestResponse", "LogType": "None",
              "Payload": b"{}"}
    validate(op, params)
    rounds = 20_000
    start = time.perf_counter()
    for _ in range(rounds):
        validate(op, params)
    assert (time.perf_counter() - start) / rounds < 50e-6


# Patterns ---------------------------------------------------------------------------------

def all_patterns() -> list[tuple[str, str]]:
    model = service_model()
    found = []
    for name in model.shape_names:
        pattern = model.shape_for(name).metadata.get("pattern")
        if pattern is not None:
            found.append((name, pattern))
    return found


@pytest.mark.parametrize(("shape", "pattern"), all_patterns())
def test_every_pattern_of_the_model_compiles(shape: str, pattern: str) -> None:
    assert isinstance(compile_java(pattern), re.Pattern)
