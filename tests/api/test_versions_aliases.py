"""Versions and aliases through boto3: publishing, qualifiers, weighted routing, bad input."""

from __future__ import annotations

import base64
import hashlib
import os
from typing import Any

import botocore.exceptions
import pytest
from support import ROLE, create, error_code, function_zip, invoke, unique, wait_ready

ARN = "arn:aws:lambda:us-east-1:000000000000:function:"


def code(mark: str) -> bytes:
    return function_zip("versioned", extra={"mark.txt": mark})


def two_versions(lam: Any) -> str:
    """A function with version 1 (code "one") and version 2 (code "two")."""
    name = create(lam, code("one"))
    assert lam.publish_version(FunctionName=name)["Version"] == "1"
    lam.update_function_code(FunctionName=name, ZipFile=code("two"))
    wait_ready(lam, name)
    assert lam.publish_version(FunctionName=name, Description="second")["Version"] == "2"
    return name


def test_publish_snapshots_code_and_configuration(lam: Any) -> None:
    name = create(lam, code("one"), Environment={"Variables": {"APP_COLOUR": "red"}})
    published = lam.publish_version(FunctionName=name, Description="first")
    assert published["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert published["Version"] == "1" and published["FunctionArn"] == f"{ARN}{name}:1"
    assert published["Description"] == "first" and published["State"] == "Active"
    # Unchanged code and configuration: the same version comes back (whatever the version's
    # own description); a changed Description of $LATEST is a change.
    assert lam.publish_version(FunctionName=name)["Version"] == "1"
    assert lam.publish_version(FunctionName=name, Description="again")["Version"] == "1"
    lam.update_function_configuration(FunctionName=name, Description="reworded")
    wait_ready(lam, name)
    assert lam.publish_version(FunctionName=name)["Version"] == "2"
    lam.update_function_configuration(FunctionName=name,
                                      Environment={"Variables": {"APP_COLOUR": "blue"}})
    wait_ready(lam, name)
    assert lam.publish_version(FunctionName=name)["Version"] == "3"
    one = lam.get_function_configuration(FunctionName=name, Qualifier="1")
    assert one["Version"] == "1" and one["Environment"]["Variables"] == {"APP_COLOUR": "red"}
    got = lam.get_function(FunctionName=f"{ARN}{name}:3")
    assert got["Configuration"]["Environment"]["Variables"] == {"APP_COLOUR": "blue"}
    assert "SourceDescription" not in got["Configuration"]
    versions = lam.list_versions_by_function(FunctionName=name)["Versions"]
    assert [v["Version"] for v in versions] == ["$LATEST", "1", "2", "3"]
    pages = lam.get_paginator("list_versions_by_function").paginate(
        FunctionName=name, PaginationConfig={"PageSize": 1})
    assert [v["Version"] for p in pages for v in p["Versions"]] == ["$LATEST", "1", "2", "3"]
    every = [f for p in lam.get_paginator("list_functions").paginate(FunctionVersion="ALL")
             for f in p["Functions"] if f["FunctionName"] == name]
    assert [f["Version"] for f in every] == ["$LATEST", "1", "2", "3"]


def test_publish_guards_code_sha_and_revision(lam: Any) -> None:
    name = create(lam, code("one"))
    latest = lam.get_function_configuration(FunctionName=name)
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as failure:
        lam.publish_version(FunctionName=name, CodeSha256=base64.b64encode(
            hashlib.sha256(b"other").digest()).decode())
    assert "CodeSHA256" in failure.value.response["Error"]["Message"]
    with pytest.raises(lam.exceptions.PreconditionFailedException):
        lam.publish_version(FunctionName=name, RevisionId="not-the-revision")
    assert [v["Version"] for v in lam.list_versions_by_function(
        FunctionName=name)["Versions"]] == ["$LATEST"]
    ok = lam.publish_version(FunctionName=name, CodeSha256=latest["CodeSha256"],
                             RevisionId=latest["RevisionId"])
    assert ok["Version"] == "1"


def test_publish_while_updating_is_a_conflict(lam: Any) -> None:
    name = create(lam, code("one"))
    # 1,500 files keep the update InProgress long enough to publish during it.
    ballast: dict[str, str | bytes] = {f"ballast/{i}.bin": os.urandom(512) for i in range(1500)}
    lam.update_function_code(FunctionName=name, ZipFile=function_zip(
        "versioned", extra={"mark.txt": "two", **ballast}, stored=True))
    with pytest.raises(lam.exceptions.ResourceConflictException):
        lam.publish_version(FunctionName=name)
    wait_ready(lam, name)
    assert lam.publish_version(FunctionName=name)["Version"] == "1"


def test_create_and_update_with_publish(lam: Any) -> None:
    name = unique()
    created = lam.create_function(FunctionName=name, Runtime="python3.11",
                                  Role=ROLE,
                                  Handler="app.handler", Code={"ZipFile": code("one")},
                                  Publish=True)
    assert created["Version"] == "1" and created["FunctionArn"] == f"{ARN}{name}:1"
    wait_ready(lam, name)
    assert lam.get_function_configuration(FunctionName=name, Qualifier="1")["State"] == "Active"
    updated = lam.update_function_code(FunctionName=name, ZipFile=code("two"), Publish=True)
    assert updated["Version"] == "2"
    wait_ready(lam, name)
    _, body = invoke(lam, name, Qualifier="2")
    assert body["mark"] == "two"
    # Same code again with Publish: no new version.
    assert lam.update_function_code(FunctionName=name, ZipFile=code("two"),
                                    Publish=True)["Version"] == "2"
    wait_ready(lam, name)


def test_invoke_a_version_runs_its_own_code_in_its_own_environments(lam: Any) -> None:
    name = two_versions(lam)
    response, one = invoke(lam, name, Qualifier="1")
    assert response["ExecutedVersion"] == "1"
    assert one["mark"] == "one" and one["version"] == "1" and one["env_version"] == "1"
    assert one["arn"] == f"{ARN}{name}:1"
    response, two = invoke(lam, f"{ARN}{name}:2")
    assert response["ExecutedVersion"] == "2" and two["mark"] == "two"
    _, latest = invoke(lam, name)
    assert latest["version"] == "$LATEST"
    assert len({one["stream"], two["stream"], latest["stream"]}) == 3
    assert "[1]" in one["stream"] and "[2]" in two["stream"]
    # Updating $LATEST leaves the published versions' warm environments alone.
    lam.update_function_configuration(FunctionName=name, Description="changed")
    wait_ready(lam, name)
    assert invoke(lam, name, Qualifier="1")[1]["stream"] == one["stream"]
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        invoke(lam, name, Qualifier="9")


def test_delete_one_version(lam: Any) -> None:
    name = two_versions(lam)
    response = lam.delete_function(FunctionName=name, Qualifier="2")
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_function_configuration(FunctionName=name, Qualifier="2")
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.delete_function(FunctionName=name, Qualifier="2")
    with pytest.raises(lam.exceptions.InvalidParameterValueException):
        lam.delete_function(FunctionName=name, Qualifier="$LATEST")
    assert invoke(lam, name, Qualifier="1")[1]["mark"] == "one"
    lam.update_function_configuration(FunctionName=name, Description="three")
    wait_ready(lam, name)
    assert lam.publish_version(FunctionName=name)["Version"] == "3"  # numbers are not reused


def test_alias_lifecycle(lam: Any) -> None:
    name = two_versions(lam)
    created = lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1",
                               Description="prod")
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert created["AliasArn"] == f"{ARN}{name}:live" and created["FunctionVersion"] == "1"
    got = lam.get_alias(FunctionName=name, Name="live")
    assert got["RevisionId"] == created["RevisionId"] and got["Description"] == "prod"
    response, body = invoke(lam, name, Qualifier="live")
    assert response["ExecutedVersion"] == "1" and body["arn"] == f"{ARN}{name}:live"
    assert invoke(lam, f"{ARN}{name}:live")[1]["mark"] == "one"  # the alias ARN as the name
    config = lam.get_function_configuration(FunctionName=f"{ARN}{name}:live")
    assert config["Version"] == "1"
    with pytest.raises(lam.exceptions.PreconditionFailedException):
        lam.update_alias(FunctionName=name, Name="live", FunctionVersion="2",
                         RevisionId="stale")
    updated = lam.update_alias(FunctionName=name, Name="live", FunctionVersion="2",
                               RevisionId=got["RevisionId"])
    assert updated["FunctionVersion"] == "2" and updated["Description"] == "prod"
    assert invoke(lam, name, Qualifier="live")[1]["mark"] == "two"
    lam.create_alias(FunctionName=name, Name="beta", FunctionVersion="$LATEST")
    listed = lam.list_aliases(FunctionName=name)["Aliases"]
    assert [a["Name"] for a in listed] == ["beta", "live"]
    pages = lam.get_paginator("list_aliases").paginate(FunctionName=name,
                                                       PaginationConfig={"PageSize": 1})
    assert [a["Name"] for p in pages for a in p["Aliases"]] == ["beta", "live"]
    assert [a["Name"] for a in lam.list_aliases(FunctionName=name,
                                                FunctionVersion="2")["Aliases"]] == ["live"]
    assert invoke(lam, name, Qualifier="beta")[0]["ExecutedVersion"] == "$LATEST"
    assert lam.delete_alias(FunctionName=name, Name="beta")[
        "ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_alias(FunctionName=name, Name="beta")
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        invoke(lam, name, Qualifier="beta")


def test_weighted_routing_splits_traffic_in_proportion(lam: Any) -> None:
    name = two_versions(lam)
    lam.create_alias(FunctionName=name, Name="canary", FunctionVersion="1",
                     RoutingConfig={"AdditionalVersionWeights": {"2": 0.3}})
    alias = lam.get_alias(FunctionName=name, Name="canary")
    assert alias["RoutingConfig"] == {"AdditionalVersionWeights": {"2": 0.3}}
    invokes = 400
    counts = {"1": 0, "2": 0}
    for _ in range(invokes):
        response, body = invoke(lam, name, Qualifier="canary")
        assert body["version"] == response["ExecutedVersion"]
        counts[response["ExecutedVersion"]] += 1
    share = counts["2"] / invokes
    print(f"weighted routing: {counts['2']}/{invokes} = {share:.3f} to version 2 (weight 0.3)")
    # Binomial(400, 0.3): sd 0.023; 3.5 sd either side.
    assert 0.22 <= share <= 0.38, counts
    # Weight 0 and no routing send everything to the main version.
    lam.update_alias(FunctionName=name, Name="canary", RoutingConfig={
        "AdditionalVersionWeights": {}})
    assert "RoutingConfig" not in lam.get_alias(FunctionName=name, Name="canary")
    assert {invoke(lam, name, Qualifier="canary")[0]["ExecutedVersion"]
            for _ in range(20)} == {"1"}


def test_bad_aliases_change_nothing(lam: Any) -> None:
    name = two_versions(lam)
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    before = lam.get_alias(FunctionName=name, Name="live")
    cases = [
        ({"RoutingConfig": {"AdditionalVersionWeights": {"2": 1.5}}}, "ValidationException"),
        ({"FunctionVersion": "$LATEST",
          "RoutingConfig": {"AdditionalVersionWeights": {"2": 0.5}}},
         "InvalidParameterValueException"),
        # The model allows only digits as the additional version.
        ({"RoutingConfig": {"AdditionalVersionWeights": {"$LATEST": 0.5}}},
         "ValidationException"),
        ({"RoutingConfig": {"AdditionalVersionWeights": {"1": 0.5}}},
         "InvalidParameterValueException"),
        ({"RoutingConfig": {"AdditionalVersionWeights": {"2": 0.1, "3": 0.1}}},
         "InvalidParameterValueException"),
        ({"FunctionVersion": "7"}, "ResourceNotFoundException"),
        ({"RoutingConfig": {"AdditionalVersionWeights": {"7": 0.5}}},
         "ResourceNotFoundException"),
    ]
    for change, expected in cases:
        with pytest.raises(botocore.exceptions.ClientError) as failure:
            lam.update_alias(FunctionName=name, Name="live", **change)
        assert error_code(failure) == expected, change
        with pytest.raises(botocore.exceptions.ClientError) as failure:
            lam.create_alias(FunctionName=name, Name="other",
                             **{"FunctionVersion": "1", **change})
        assert error_code(failure) == expected, change
    after = lam.get_alias(FunctionName=name, Name="live")
    before.pop("ResponseMetadata")
    after.pop("ResponseMetadata")
    assert after == before
    assert [a["Name"] for a in lam.list_aliases(FunctionName=name)["Aliases"]] == ["live"]
    with pytest.raises(lam.exceptions.ResourceConflictException):
        lam.create_alias(FunctionName=name, Name="live", FunctionVersion="2")
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.create_alias(FunctionName=unique("ghost"), Name="live", FunctionVersion="1")
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_alias(FunctionName=name, Name="nope")


def test_a_version_an_alias_routes_to_cannot_be_deleted(lam: Any) -> None:
    name = two_versions(lam)
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1",
                     RoutingConfig={"AdditionalVersionWeights": {"2": 0.5}})
    for version in ("1", "2"):
        with pytest.raises(lam.exceptions.ResourceConflictException) as failure:
            lam.delete_function(FunctionName=name, Qualifier=version)
        assert "live" in failure.value.response["Error"]["Message"]
        assert lam.get_function_configuration(FunctionName=name,
                                              Qualifier=version)["Version"] == version
    lam.update_alias(FunctionName=name, Name="live", RoutingConfig={})
    lam.delete_function(FunctionName=name, Qualifier="2")
    lam.delete_function(FunctionName=name)  # the whole function goes with its aliases
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_alias(FunctionName=name, Name="live")
