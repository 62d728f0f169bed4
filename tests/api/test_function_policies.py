"""AddPermission, RemovePermission and GetPolicy through boto3, and resource policies granting
(or not) invokes to callers whose own policies say nothing."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest
from support import create, function_zip, unique

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "identity"))
from iam_helpers import allow, client_for, user_with_key

ACCOUNT = "000000000000"
ARN = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:"


@pytest.fixture(scope="module")
def fn(lam: Any) -> str:
    name = create(lam, function_zip("hello"))
    lam.publish_version(FunctionName=name)
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    return name


def test_add_get_remove(lam: Any, fn: str) -> None:
    with pytest.raises(lam.exceptions.ResourceNotFoundException) as failure:
        lam.get_policy(FunctionName=fn)
    assert failure.value.response["Error"]["Message"] == \
        "The resource you requested does not exist."
    added = lam.add_permission(FunctionName=fn, StatementId="s3", Action="lambda:InvokeFunction",
                               Principal="s3.amazonaws.com", SourceArn="arn:aws:s3:::bucket",
                               SourceAccount=ACCOUNT)
    statement = json.loads(added["Statement"])
    assert statement == {
        "Sid": "s3", "Effect": "Allow", "Principal": {"Service": "s3.amazonaws.com"},
        "Action": "lambda:InvokeFunction", "Resource": ARN + fn,
        "Condition": {"StringEquals": {"AWS:SourceAccount": ACCOUNT},
                      "ArnLike": {"AWS:SourceArn": "arn:aws:s3:::bucket"}}}
    lam.add_permission(FunctionName=fn, StatementId="acct", Action="lambda:*",
                       Principal=ACCOUNT)
    policy = lam.get_policy(FunctionName=fn)
    document = json.loads(policy["Policy"])
    assert document["Version"] == "2012-10-17"
    assert [s["Sid"] for s in document["Statement"]] == ["s3", "acct"]
    assert document["Statement"][1]["Principal"] == {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}
    with pytest.raises(lam.exceptions.ResourceConflictException):
        lam.add_permission(FunctionName=fn, StatementId="s3", Action="lambda:InvokeFunction",
                           Principal="*")
    with pytest.raises(lam.exceptions.PreconditionFailedException):
        lam.add_permission(FunctionName=fn, StatementId="guarded", Principal="*",
                           Action="lambda:InvokeFunction", RevisionId="stale")
    lam.add_permission(FunctionName=fn, StatementId="guarded", Principal="*",
                       Action="lambda:InvokeFunction", RevisionId=policy["RevisionId"],
                       FunctionUrlAuthType="NONE")
    assert json.loads(lam.get_policy(FunctionName=fn)["Policy"])["Statement"][2]["Condition"] \
        == {"StringEquals": {"lambda:FunctionUrlAuthType": "NONE"}}
    lam.remove_permission(FunctionName=fn, StatementId="s3")
    with pytest.raises(lam.exceptions.ResourceNotFoundException) as failure:
        lam.remove_permission(FunctionName=fn, StatementId="s3")
    assert failure.value.response["Error"]["Message"] == \
        "Statement s3 is not found in resource policy."
    for sid in ("acct", "guarded"):
        lam.remove_permission(FunctionName=fn, StatementId=sid)
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_policy(FunctionName=fn)


def test_versions_and_aliases_have_their_own_policies(lam: Any, fn: str) -> None:
    lam.add_permission(FunctionName=fn, Qualifier="live", StatementId="a",
                       Action="lambda:InvokeFunction", Principal="*")
    lam.add_permission(FunctionName=f"{fn}:1", StatementId="v", Action="lambda:InvokeFunction",
                       Principal="*")
    live = json.loads(lam.get_policy(FunctionName=fn, Qualifier="live")["Policy"])
    assert live["Statement"][0]["Resource"] == f"{ARN}{fn}:live"
    assert json.loads(lam.get_policy(FunctionName=fn, Qualifier="1")["Policy"])["Statement"][0][
        "Sid"] == "v"
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_policy(FunctionName=fn)
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.add_permission(FunctionName=fn, Qualifier="nope", StatementId="x",
                           Action="lambda:InvokeFunction", Principal="*")
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.add_permission(FunctionName=unique("ghost"), StatementId="x",
                           Action="lambda:InvokeFunction", Principal="*")
    with pytest.raises(lam.exceptions.InvalidParameterValueException):
        lam.add_permission(FunctionName=fn, StatementId="bad", Action="lambda:InvokeFunction",
                           Principal="not-a-principal")


def test_a_resource_policy_grants_invoke_to_a_user_without_identity_policy(
        server: Any, lam: Any) -> None:
    iam = server.client("iam")
    name = create(lam, function_zip("hello"))
    user = unique("guest")
    key, secret = user_with_key(iam, user, allow("lambda:GetAccountSettings"))
    guest = client_for(server, "lambda", key, secret)
    with pytest.raises(botocore.exceptions.ClientError) as failure:
        guest.invoke(FunctionName=name, Payload=b"{}")
    assert failure.value.response["Error"]["Code"] == "AccessDeniedException"
    assert f"lambda:InvokeFunction on resource: {ARN}{name}" in \
        failure.value.response["Error"]["Message"]
    lam.add_permission(FunctionName=name, StatementId="guest", Action="lambda:InvokeFunction",
                       Principal=f"arn:aws:iam::{ACCOUNT}:user/{user}")
    assert guest.invoke(FunctionName=name, Payload=b"{}")["StatusCode"] == 200
    with pytest.raises(botocore.exceptions.ClientError):
        guest.get_function(FunctionName=name)  # the statement grants invokes only
    lam.remove_permission(FunctionName=name, StatementId="guest")
    with pytest.raises(botocore.exceptions.ClientError):
        guest.invoke(FunctionName=name, Payload=b"{}")
    lam.add_permission(FunctionName=name, StatementId="deny-not", Action="lambda:InvokeFunction",
                       Principal="s3.amazonaws.com")
    with pytest.raises(botocore.exceptions.ClientError):
        guest.invoke(FunctionName=name, Payload=b"{}")  # a service's grant is not the user's


def test_policies_go_with_the_function(lam: Any) -> None:
    name = create(lam, function_zip("hello"))
    lam.add_permission(FunctionName=name, StatementId="a", Action="lambda:InvokeFunction",
                       Principal="*")
    lam.delete_function(FunctionName=name)
    create(lam, function_zip("hello"), name=name)
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_policy(FunctionName=name)
