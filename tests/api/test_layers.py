"""Layers through boto3: publishing and listing, permissions, functions that use them, limits."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import urllib.request
from typing import Any

import botocore.exceptions
import pytest
from support import (
    ROLE,
    create,
    error_code,
    function_zip,
    invoke,
    unique,
    wait_ready,
    zip_directory,
)

LAYER_ARN = "arn:aws:lambda:us-east-1:000000000000:layer:"


def layer_zip(who: str, *, extra: dict[str, str | bytes] | None = None) -> bytes:
    files: dict[str, str | bytes] = {
        "python/shared.py": f"WHO = {who!r}\n",
        f"python/lib/python3.11/site-packages/pkg_{who}/__init__.py": "",
        **(extra or {}),
    }
    return zip_directory(None, extra=files, modes={"bin/tool": 0o755})


def publish(lam: Any, name: str, content: bytes, **kwargs: Any) -> dict[str, Any]:
    return lam.publish_layer_version(LayerName=name, Content={"ZipFile": content}, **kwargs)


def test_publish_get_list_delete(lam: Any) -> None:
    name = unique("layer")
    content = layer_zip("a")
    first = publish(lam, name, content, Description="one", CompatibleRuntimes=["python3.11"],
                    CompatibleArchitectures=["x86_64"], LicenseInfo="MIT")
    assert first["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert first["LayerArn"] == f"{LAYER_ARN}{name}"
    assert first["LayerVersionArn"] == f"{LAYER_ARN}{name}:1" and first["Version"] == 1
    assert first["Content"]["CodeSha256"] == base64.b64encode(
        hashlib.sha256(content).digest()).decode()
    assert first["Content"]["CodeSize"] == len(content)
    with urllib.request.urlopen(first["Content"]["Location"], timeout=10) as response:
        assert response.read() == content
    assert first["CompatibleRuntimes"] == ["python3.11"] and first["LicenseInfo"] == "MIT"
    second = publish(lam, name, layer_zip("b"), CompatibleRuntimes=["nodejs20.x"])
    assert second["Version"] == 2
    got = lam.get_layer_version(LayerName=name, VersionNumber=1)
    assert got["Description"] == "one" and got["Content"]["CodeSize"] == len(content)
    by_arn = lam.get_layer_version_by_arn(Arn=f"{LAYER_ARN}{name}:2")
    assert by_arn["Version"] == 2
    assert lam.get_layer_version(LayerName=f"{LAYER_ARN}{name}", VersionNumber=2)["Version"] == 2
    versions = lam.list_layer_versions(LayerName=name)["LayerVersions"]
    assert [v["Version"] for v in versions] == [2, 1]
    pages = lam.get_paginator("list_layer_versions").paginate(
        LayerName=name, PaginationConfig={"PageSize": 1})
    assert [v["Version"] for p in pages for v in p["LayerVersions"]] == [2, 1]
    python_only = lam.list_layer_versions(LayerName=name, CompatibleRuntime="python3.11")
    assert [v["Version"] for v in python_only["LayerVersions"]] == [1]
    layers = {item["LayerName"]: item for item in lam.list_layers()["Layers"]}
    assert layers[name]["LatestMatchingVersion"]["Version"] == 2
    matching = {item["LayerName"]: item
                for item in lam.list_layers(CompatibleRuntime="python3.11")["Layers"]}
    assert matching[name]["LatestMatchingVersion"]["Version"] == 1
    assert lam.delete_layer_version(LayerName=name, VersionNumber=2)[
        "ResponseMetadata"]["HTTPStatusCode"] == 204
    lam.delete_layer_version(LayerName=name, VersionNumber=2)  # idempotent, as on AWS
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_layer_version(LayerName=name, VersionNumber=2)
    assert publish(lam, name, layer_zip("c"))["Version"] == 3  # numbers are not reused


def test_bad_layer_content_stores_nothing(lam: Any) -> None:
    name = unique("layer")
    with pytest.raises(lam.exceptions.InvalidParameterValueException):
        publish(lam, name, b"not a zip")
    with pytest.raises(lam.exceptions.InvalidParameterValueException):
        lam.publish_layer_version(LayerName=name, Content={})
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_layer_version(LayerName=name, VersionNumber=1)
    assert lam.list_layer_versions(LayerName=name)["LayerVersions"] == []


def test_layer_version_permissions(lam: Any) -> None:
    name = unique("layer")
    publish(lam, name, layer_zip("a"))
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_layer_version_policy(LayerName=name, VersionNumber=1)
    added = lam.add_layer_version_permission(
        LayerName=name, VersionNumber=1, StatementId="everyone", Action="lambda:GetLayerVersion",
        Principal="*")
    statement = json.loads(added["Statement"])
    assert statement == {"Sid": "everyone", "Effect": "Allow", "Principal": "*",
                         "Action": "lambda:GetLayerVersion",
                         "Resource": f"{LAYER_ARN}{name}:1"}
    with pytest.raises(lam.exceptions.ResourceConflictException):
        lam.add_layer_version_permission(LayerName=name, VersionNumber=1,
                                         StatementId="everyone",
                                         Action="lambda:GetLayerVersion", Principal="*")
    with pytest.raises(lam.exceptions.PreconditionFailedException):
        lam.add_layer_version_permission(LayerName=name, VersionNumber=1, StatementId="acct",
                                         Action="lambda:GetLayerVersion",
                                         Principal="123456789012", RevisionId="stale")
    second = lam.add_layer_version_permission(
        LayerName=name, VersionNumber=1, StatementId="acct", Action="lambda:GetLayerVersion",
        Principal="123456789012", RevisionId=added["RevisionId"])
    assert json.loads(second["Statement"])["Principal"] == {
        "AWS": "arn:aws:iam::123456789012:root"}
    policy = lam.get_layer_version_policy(LayerName=name, VersionNumber=1)
    assert policy["RevisionId"] == second["RevisionId"]
    assert [s["Sid"] for s in json.loads(policy["Policy"])["Statement"]] == ["everyone", "acct"]
    lam.remove_layer_version_permission(LayerName=name, VersionNumber=1,
                                        StatementId="everyone")
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.remove_layer_version_permission(LayerName=name, VersionNumber=1,
                                            StatementId="everyone")
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.add_layer_version_permission(LayerName=name, VersionNumber=9, StatementId="x",
                                         Action="lambda:GetLayerVersion", Principal="*")
    statements = json.loads(lam.get_layer_version_policy(LayerName=name,
                                                         VersionNumber=1)["Policy"])["Statement"]
    assert [s["Sid"] for s in statements] == ["acct"]


def test_function_uses_its_layers_in_order_read_only(lam: Any) -> None:
    base, override = unique("base"), unique("override")
    first = publish(lam, base, layer_zip("first", extra={
        "python/mylib.py": "NAME = 'from the first layer'\n",
        "bin/tool": "#!/bin/sh\necho tool from a layer\n"}), CompatibleRuntimes=["python3.11"])
    second = publish(lam, override, layer_zip("second"))
    arns = [first["LayerVersionArn"], second["LayerVersionArn"]]
    name = create(lam, function_zip("layered"), Layers=arns)
    config = lam.get_function_configuration(FunctionName=name)
    assert [layer["Arn"] for layer in config["Layers"]] == arns
    assert config["Layers"][0]["CodeSize"] == first["Content"]["CodeSize"]
    assert set(config["Layers"][0]) == {"Arn", "CodeSize"}
    response, body = invoke(lam, name)
    assert "FunctionError" not in response, body
    assert body["mylib"] == "from the first layer"
    assert body["shared"] == "second"  # the later layer's file replaces the earlier one's
    assert body["shared_file"] == "/opt/python/shared.py"
    assert body["opt"] == ["bin", "python"]
    assert body["writable"] is False
    assert body["tool"] == "tool from a layer"
    assert "/opt/python/lib/python3.11/site-packages" in body["pythonpath"].split(":")
    assert "/opt/python" in body["pythonpath"].split(":")
    assert "/opt/bin" in body["path"].split(":")
    assert "/opt/lib" in body["ld_library_path"].split(":")
    # Removing the layers: the module is gone.
    lam.update_function_configuration(FunctionName=name, Layers=[])
    wait_ready(lam, name)
    assert "Layers" not in lam.get_function_configuration(FunctionName=name)
    response, body = invoke(lam, name)
    assert response.get("FunctionError") == "Unhandled"
    # A deleted layer version keeps working for the functions that had it.
    with_layers = create(lam, function_zip("layered"), Layers=arns)
    lam.delete_layer_version(LayerName=base, VersionNumber=1)
    lam.update_function_configuration(FunctionName=with_layers, Description="still works")
    wait_ready(lam, with_layers)
    assert invoke(lam, with_layers)[1]["mylib"] == "from the first layer"


def test_bad_layer_references_change_nothing(lam: Any) -> None:
    node_only = publish(lam, unique("node"), layer_zip("n"), CompatibleRuntimes=["nodejs20.x"])
    good = [publish(lam, unique("ok"), layer_zip(f"g{i}"))["LayerVersionArn"] for i in range(6)]
    name = unique("fn")
    first_layer = good[0].split(":layer:")[1].rsplit(":", 1)[0]
    again = publish(lam, first_layer, layer_zip("again"))  # its version 2
    cases = [
        (good, "InvalidParameterValueException", "more than 5"),
        ([f"{LAYER_ARN}{unique('ghost')}:1"], "InvalidParameterValueException", "does not exist"),
        ([node_only["LayerVersionArn"]], "InvalidParameterValueException", "not compatible"),
        ([good[0], again["LayerVersionArn"]], "InvalidParameterValueException", "same layer"),
        (["arn:aws:lambda:us-east-1:111111111111:layer:theirs:1"],
         "InvalidParameterValueException", "does not exist"),
    ]
    for layers, expected, words in cases:
        with pytest.raises(botocore.exceptions.ClientError) as failure:
            lam.create_function(FunctionName=name, Runtime="python3.11", Handler="app.handler",
                                Role=ROLE,
                                Code={"ZipFile": function_zip("layered")}, Layers=layers)
        assert error_code(failure) == expected
        assert words in failure.value.response["Error"]["Message"]
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_function_configuration(FunctionName=name)
    existing = create(lam, function_zip("layered"), Layers=good[:2])
    before = lam.get_function_configuration(FunctionName=existing)
    for layers, expected, _ in cases:
        with pytest.raises(botocore.exceptions.ClientError) as failure:
            lam.update_function_configuration(FunctionName=existing, Layers=layers)
        assert error_code(failure) == expected
    after = lam.get_function_configuration(FunctionName=existing)
    assert after["Layers"] == before["Layers"] and after["RevisionId"] == before["RevisionId"]


def _big_layer(seed: int) -> bytes:
    """~136 MB unzipped in ~1.6 MB: each file a little noise and a lot of zeros (ratio ~85,
    under the zip-bomb rule)."""
    noise = os.urandom(16 * 1024)
    files: dict[str, str | bytes] = {
        f"data/{seed}-{i}.bin": noise + bytes(1536 * 1024) for i in range(88)}
    return zip_directory(None, extra=files)


def test_code_and_layers_must_fit_in_250_mb(lam: Any) -> None:
    arns = [publish(lam, unique("big"), _big_layer(i))["LayerVersionArn"] for i in range(2)]
    name = unique("fn")
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as failure:
        lam.create_function(FunctionName=name, Runtime="python3.11", Handler="app.handler",
                            Role=ROLE,
                            Code={"ZipFile": function_zip("layered")}, Layers=arns)
    assert "262144000" in failure.value.response["Error"]["Message"]
    one = create(lam, function_zip("layered"), Layers=arns[:1])
    assert len(lam.get_function_configuration(FunctionName=one)["Layers"]) == 1


def test_a_new_runtime_must_suit_the_layers_already_there(lam: Any) -> None:
    python_only = publish(lam, unique("py"), layer_zip("p"), CompatibleRuntimes=["python3.11"])
    name = create(lam, function_zip("hello"), Layers=[python_only["LayerVersionArn"]])
    with pytest.raises(lam.exceptions.InvalidParameterValueException):
        lam.update_function_configuration(FunctionName=name, Runtime="nodejs20.x",
                                          Handler="index.handler")
    assert lam.get_function_configuration(FunctionName=name)["Runtime"] == "python3.11"
