"""IAM and STS on lamina's endpoint, through boto3 and the AWS CLI: entities, keys, policies,
AssumeRole, refusals in AWS's words, and nothing stored when a call is refused."""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest
from iam_helpers import allow, client_for, doc, signed_request, user_with_key
from support import LAMBDA_TRUST, create, function_zip, unique

ACCOUNT = "000000000000"


@pytest.fixture(scope="module")
def iam(server: Any) -> Any:
    return server.client("iam")


@pytest.fixture(scope="module")
def sts(server: Any) -> Any:
    return server.client("sts")


def code_of(failure: Any) -> str:
    return str(failure.value.response["Error"]["Code"])


def test_users_round_trip(iam: Any) -> None:
    name = unique("user")
    created = iam.create_user(UserName=name, Path="/team/",
                              Tags=[{"Key": "k", "Value": "v"}])["User"]
    assert created["Arn"] == f"arn:aws:iam::{ACCOUNT}:user/team/{name}"
    assert created["UserId"].startswith("AIDA") and created["Tags"] == [{"Key": "k",
                                                                         "Value": "v"}]
    assert iam.get_user(UserName=name)["User"]["UserId"] == created["UserId"]
    assert name in [u["UserName"] for u in iam.list_users(PathPrefix="/team/")["Users"]]
    assert name not in [u["UserName"] for u in iam.list_users(PathPrefix="/other/")["Users"]]
    with pytest.raises(iam.exceptions.EntityAlreadyExistsException) as failure:
        iam.create_user(UserName=name.upper())  # IAM names ignore case
    assert failure.value.response["Error"]["Message"] == \
        f"User with name {name.upper()} already exists."
    iam.delete_user(UserName=name)
    with pytest.raises(iam.exceptions.NoSuchEntityException) as failure:
        iam.get_user(UserName=name)
    assert failure.value.response["Error"]["Message"] == \
        f"The user with name {name} cannot be found."
    with pytest.raises(iam.exceptions.NoSuchEntityException):
        iam.delete_user(UserName=name)


def test_list_users_pages(iam: Any) -> None:
    prefix = f"/{unique('page')}/"
    names = sorted(unique("pu") for _ in range(5))
    for name in names:
        iam.create_user(UserName=name, Path=prefix)
    first = iam.list_users(PathPrefix=prefix, MaxItems=2)
    assert first["IsTruncated"] and len(first["Users"]) == 2
    seen = [u["UserName"] for u in first["Users"]]
    marker = first["Marker"]
    while marker:
        page = iam.list_users(PathPrefix=prefix, MaxItems=2, Marker=marker)
        seen += [u["UserName"] for u in page["Users"]]
        marker = page.get("Marker")
    assert seen == [n for n in sorted(names, key=str.lower)]


def test_validation_errors_use_iams_grammar(iam: Any) -> None:
    with pytest.raises(botocore.exceptions.ClientError) as failure:
        iam.create_user(UserName="bad name!")
    assert code_of(failure) == "ValidationError"
    assert "failed to satisfy constraint" in failure.value.response["Error"]["Message"]


def test_access_keys_work_once_created_and_stop_when_deleted(server: Any, iam: Any) -> None:
    name = unique("keys")
    key, secret = user_with_key(iam, name)
    listed = iam.list_access_keys(UserName=name)["AccessKeyMetadata"]
    assert [k["AccessKeyId"] for k in listed] == [key] and "SecretAccessKey" not in listed[0]
    own = client_for(server, "sts", key, secret).get_caller_identity()
    assert own["Arn"] == f"arn:aws:iam::{ACCOUNT}:user/{name}" and own["Account"] == ACCOUNT
    iam.create_access_key(UserName=name)
    with pytest.raises(iam.exceptions.LimitExceededException):
        iam.create_access_key(UserName=name)
    assert len(iam.list_access_keys(UserName=name)["AccessKeyMetadata"]) == 2
    with pytest.raises(iam.exceptions.DeleteConflictException) as failure:
        iam.delete_user(UserName=name)
    assert "must delete access keys first" in failure.value.response["Error"]["Message"]
    iam.update_access_key(UserName=name, AccessKeyId=key, Status="Inactive")
    with pytest.raises(botocore.exceptions.ClientError) as failure:
        client_for(server, "sts", key, secret).get_caller_identity()
    assert code_of(failure) == "InvalidClientTokenId"
    iam.update_access_key(UserName=name, AccessKeyId=key, Status="Active")
    client_for(server, "sts", key, secret).get_caller_identity()
    iam.delete_access_key(UserName=name, AccessKeyId=key)
    with pytest.raises(botocore.exceptions.ClientError) as failure:
        client_for(server, "sts", key, secret).get_caller_identity()
    assert code_of(failure) == "InvalidClientTokenId"
    with pytest.raises(botocore.exceptions.ClientError) as failure:
        client_for(server, "lambda", key, secret).list_functions()
    assert code_of(failure) == "UnrecognizedClientException"
    with pytest.raises(iam.exceptions.NoSuchEntityException):
        iam.delete_access_key(UserName=name, AccessKeyId=key)


def test_secrets_are_not_stored_in_plaintext(server: Any, iam: Any) -> None:
    _key, secret = user_with_key(iam, unique("sealed"))
    for path in Path(server.data_dir).rglob("*"):
        if path.is_file() and path.name != "credentials.json":
            assert secret.encode() not in path.read_bytes(), path


def test_inline_policies_and_refusals_change_nothing(iam: Any) -> None:
    name = unique("inline")
    iam.create_user(UserName=name)
    document = doc(allow("lambda:Get*"))
    iam.put_user_policy(UserName=name, PolicyName="read", PolicyDocument=document)
    got = iam.get_user_policy(UserName=name, PolicyName="read")
    assert got["PolicyDocument"] == json.loads(document)
    for bad, reason in [("{", "Syntax errors in policy."),
                        (doc({"Effect": "Allow", "Action": "lambda:*"}),
                         "Policy statement must contain resources."),
                        (doc(allow("lambda:*", Principal="*")),
                         "Policy document should not specify a principal.")]:
        with pytest.raises(iam.exceptions.MalformedPolicyDocumentException) as failure:
            iam.put_user_policy(UserName=name, PolicyName="read", PolicyDocument=bad)
        assert failure.value.response["Error"]["Message"] == reason
    assert iam.get_user_policy(UserName=name, PolicyName="read")["PolicyDocument"] == \
        json.loads(document)
    assert iam.list_user_policies(UserName=name)["PolicyNames"] == ["read"]
    with pytest.raises(iam.exceptions.NoSuchEntityException):
        iam.get_user_policy(UserName=name, PolicyName="nope")
    with pytest.raises(iam.exceptions.NoSuchEntityException):
        iam.put_user_policy(UserName=unique("ghost"), PolicyName="p", PolicyDocument=document)
    with pytest.raises(iam.exceptions.DeleteConflictException):
        iam.delete_user(UserName=name)
    iam.delete_user_policy(UserName=name, PolicyName="read")
    assert iam.list_user_policies(UserName=name)["PolicyNames"] == []
    iam.delete_user(UserName=name)


def test_roles_and_their_policies(iam: Any) -> None:
    name = unique("role")
    role = iam.create_role(RoleName=name, AssumeRolePolicyDocument=LAMBDA_TRUST,
                           Description="d", MaxSessionDuration=7200)["Role"]
    assert role["Arn"] == f"arn:aws:iam::{ACCOUNT}:role/{name}"
    got = iam.get_role(RoleName=name)["Role"]
    assert got["AssumeRolePolicyDocument"] == json.loads(LAMBDA_TRUST)
    assert got["MaxSessionDuration"] == 7200 and got["Description"] == "d"
    assert name in [r["RoleName"] for r in iam.list_roles()["Roles"]]
    with pytest.raises(iam.exceptions.MalformedPolicyDocumentException):
        iam.create_role(RoleName=unique("r"), AssumeRolePolicyDocument=doc(allow("s3:*")))
    iam.put_role_policy(RoleName=name, PolicyName="inv",
                        PolicyDocument=doc(allow("lambda:InvokeFunction")))
    assert iam.list_role_policies(RoleName=name)["PolicyNames"] == ["inv"]
    arn = "arn:aws:iam::aws:policy/service-role/AWSLambdaRole"
    iam.attach_role_policy(RoleName=name, PolicyArn=arn)
    assert iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"] == [
        {"PolicyName": "AWSLambdaRole", "PolicyArn": arn}]
    with pytest.raises(iam.exceptions.DeleteConflictException):
        iam.delete_role(RoleName=name)
    iam.delete_role_policy(RoleName=name, PolicyName="inv")
    with pytest.raises(iam.exceptions.DeleteConflictException) as failure:
        iam.delete_role(RoleName=name)
    assert "must detach all policies first" in failure.value.response["Error"]["Message"]
    iam.detach_role_policy(RoleName=name, PolicyArn=arn)
    with pytest.raises(iam.exceptions.NoSuchEntityException):
        iam.detach_role_policy(RoleName=name, PolicyArn=arn)
    iam.delete_role(RoleName=name)
    with pytest.raises(iam.exceptions.NoSuchEntityException):
        iam.get_role(RoleName=name)


def test_managed_policies(iam: Any) -> None:
    aws = {p["PolicyName"] for p in iam.list_policies(Scope="AWS")["Policies"]}
    assert {"AWSLambdaBasicExecutionRole", "AWSLambdaRole"} <= aws
    name = unique("pol")
    document = doc(allow("lambda:List*"))
    policy = iam.create_policy(PolicyName=name, PolicyDocument=document,
                               Description="lists")["Policy"]
    arn = policy["Arn"]
    assert arn == f"arn:aws:iam::{ACCOUNT}:policy/{name}" and policy["DefaultVersionId"] == "v1"
    with pytest.raises(iam.exceptions.EntityAlreadyExistsException):
        iam.create_policy(PolicyName=name, PolicyDocument=document)
    version = iam.get_policy_version(PolicyArn=arn, VersionId="v1")["PolicyVersion"]
    assert version["Document"] == json.loads(document) and version["IsDefaultVersion"]
    assert arn in [p["Arn"] for p in iam.list_policies(Scope="Local")["Policies"]]
    user = unique("mu")
    iam.create_user(UserName=user)
    iam.attach_user_policy(UserName=user, PolicyArn=arn)
    assert iam.get_policy(PolicyArn=arn)["Policy"]["AttachmentCount"] == 1
    assert iam.list_attached_user_policies(UserName=user)["AttachedPolicies"][0]["PolicyArn"] \
        == arn
    with pytest.raises(iam.exceptions.DeleteConflictException):
        iam.delete_policy(PolicyArn=arn)
    with pytest.raises(iam.exceptions.NoSuchEntityException):
        iam.attach_user_policy(UserName=user, PolicyArn=arn + "-missing")
    iam.detach_user_policy(UserName=user, PolicyArn=arn)
    iam.delete_policy(PolicyArn=arn)
    with pytest.raises(iam.exceptions.NoSuchEntityException):
        iam.get_policy(PolicyArn=arn)
    with pytest.raises(botocore.exceptions.ClientError) as failure:
        iam.delete_policy(PolicyArn="arn:aws:iam::aws:policy/service-role/AWSLambdaRole")
    assert code_of(failure) == "UnmodifiableEntity"


def test_permissions_are_checked_on_every_call(server: Any, iam: Any) -> None:
    name = unique("limited")
    own = f"arn:aws:iam::{ACCOUNT}:user/${{aws:username}}"
    key, secret = user_with_key(iam, name, allow("lambda:ListFunctions"),
                                allow("iam:GetUser", own))
    lam = client_for(server, "lambda", key, secret)
    own_iam = client_for(server, "iam", key, secret)
    lam.list_functions()
    with pytest.raises(botocore.exceptions.ClientError) as failure:
        lam.get_account_settings()
    assert code_of(failure) == "AccessDeniedException"
    assert failure.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert failure.value.response["Error"]["Message"] == (
        f"User: arn:aws:iam::{ACCOUNT}:user/{name} is not authorized to perform: "
        "lambda:GetAccountSettings on resource: * because no identity-based policy allows the "
        "lambda:GetAccountSettings action")
    assert own_iam.get_user()["User"]["UserName"] == name  # its own, by the variable
    with pytest.raises(botocore.exceptions.ClientError) as failure:
        own_iam.get_user(UserName="lamina-nobody")
    assert code_of(failure) == "AccessDenied"
    with pytest.raises(botocore.exceptions.ClientError) as failure:
        own_iam.create_user(UserName=unique("escalate"))
    assert code_of(failure) == "AccessDenied"
    with pytest.raises(botocore.exceptions.ClientError):
        own_iam.put_user_policy(UserName=name, PolicyName="all",
                                PolicyDocument=doc(allow("*")))
    lam.list_functions()  # still only what it had
    iam.put_user_policy(UserName=name, PolicyName="deny",
                        PolicyDocument=doc({"Effect": "Deny", "Action": "lambda:*",
                                            "Resource": "*"}))
    with pytest.raises(botocore.exceptions.ClientError) as failure:
        lam.list_functions()
    assert "with an explicit deny in an identity-based policy" in \
        failure.value.response["Error"]["Message"]


def test_assume_role(server: Any, iam: Any, sts: Any) -> None:
    user = unique("assumer")
    key, secret = user_with_key(iam, user)
    user_sts = client_for(server, "sts", key, secret)
    direct = unique("direct")
    iam.create_role(RoleName=direct, AssumeRolePolicyDocument=doc(
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:user/{user}"},
         "Action": "sts:AssumeRole"}))
    iam.put_role_policy(RoleName=direct, PolicyName="p",
                        PolicyDocument=doc(allow("lambda:List*"), allow("lambda:Get*")))
    answer = user_sts.assume_role(RoleArn=f"arn:aws:iam::{ACCOUNT}:role/{direct}",
                                  RoleSessionName="s1", DurationSeconds=900)
    creds = answer["Credentials"]
    assert creds["AccessKeyId"].startswith("ASIA")
    assert answer["AssumedRoleUser"]["Arn"] == \
        f"arn:aws:sts::{ACCOUNT}:assumed-role/{direct}/s1"
    session = client_for(server, "sts", creds["AccessKeyId"], creds["SecretAccessKey"],
                         creds["SessionToken"])
    me = session.get_caller_identity()
    assert me["Arn"] == answer["AssumedRoleUser"]["Arn"] and me["UserId"].endswith(":s1")
    role_lambda = client_for(server, "lambda", creds["AccessKeyId"], creds["SecretAccessKey"],
                             creds["SessionToken"])
    role_lambda.list_functions()
    with pytest.raises(botocore.exceptions.ClientError) as failure:
        role_lambda.delete_function(FunctionName="x")
    assert code_of(failure) == "AccessDeniedException"
    limited = user_sts.assume_role(
        RoleArn=f"arn:aws:iam::{ACCOUNT}:role/{direct}", RoleSessionName="s2",
        Policy=doc(allow("lambda:GetAccountSettings")))["Credentials"]
    narrow = client_for(server, "lambda", limited["AccessKeyId"], limited["SecretAccessKey"],
                        limited["SessionToken"])
    narrow.get_account_settings()
    with pytest.raises(botocore.exceptions.ClientError):
        narrow.list_functions()  # the role allows it, the session policy does not
    with pytest.raises(botocore.exceptions.ClientError) as failure:
        client_for(server, "lambda", creds["AccessKeyId"], creds["SecretAccessKey"],
                   "forged-token").list_functions()
    assert code_of(failure) == "UnrecognizedClientException"
    with pytest.raises(botocore.exceptions.ClientError) as failure:
        user_sts.assume_role(RoleArn=f"arn:aws:iam::{ACCOUNT}:role/{direct}",
                             RoleSessionName="long", DurationSeconds=7200)
    assert code_of(failure) == "ValidationError"
    by_account = unique("byacct")
    iam.create_role(RoleName=by_account, AssumeRolePolicyDocument=doc(
        {"Effect": "Allow", "Principal": {"AWS": ACCOUNT}, "Action": "sts:AssumeRole"}))
    arn = f"arn:aws:iam::{ACCOUNT}:role/{by_account}"
    with pytest.raises(botocore.exceptions.ClientError) as failure:
        user_sts.assume_role(RoleArn=arn, RoleSessionName="xx")
    assert code_of(failure) == "AccessDenied"
    iam.put_user_policy(UserName=user, PolicyName="assume",
                        PolicyDocument=doc(allow("sts:AssumeRole", arn)))
    user_sts.assume_role(RoleArn=arn, RoleSessionName="xx")
    assert sts.assume_role(RoleArn=arn, RoleSessionName="root")["Credentials"]
    with pytest.raises(botocore.exceptions.ClientError) as failure:
        sts.assume_role(RoleArn=f"arn:aws:iam::{ACCOUNT}:role/lamina-function",
                        RoleSessionName="root")  # trusts only lambda.amazonaws.com
    assert code_of(failure) == "AccessDenied"


def test_root_identity(sts: Any) -> None:
    me = sts.get_caller_identity()
    assert me == {**me, "Account": ACCOUNT, "Arn": f"arn:aws:iam::{ACCOUNT}:root",
                  "UserId": ACCOUNT}


def test_forged_and_stale_signatures_are_refused(server: Any) -> None:
    key, secret = server.credentials()
    body = b"Action=GetCallerIdentity&Version=2011-06-15"
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    status, answer = signed_request(server, "sts", "POST", "/", body, key, secret, headers=form)
    assert status == 200 and b"<Arn>arn:aws:iam::000000000000:root</Arn>" in answer
    status, answer = signed_request(server, "sts", "POST", "/", body, key, secret + "x",
                                    headers=form)
    assert status == 403 and b"<Code>SignatureDoesNotMatch</Code>" in answer
    stale = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=6)
    status, answer = signed_request(server, "sts", "POST", "/", body, key, secret, when=stale,
                                    headers=form)
    assert status == 403 and b"Signature expired" in answer
    status, answer = signed_request(server, "lambda", "GET", "/2015-03-31/functions/", b"",
                                    key, secret, when=stale)
    assert status == 403 and b"Signature expired" in answer
    status, answer = signed_request(server, "sts", "POST", "/", body, "AKIANOSUCHKEY0000000",
                                    secret, headers=form)
    assert status == 403 and b"<Code>InvalidClientTokenId</Code>" in answer
    status, answer = signed_request(server, "iam", "POST", "/", b"Action=NoSuchThing&Version="
                                    b"2010-05-08", key, secret, headers=form)
    assert status == 400 and b"<Code>InvalidAction</Code>" in answer


def test_execution_role_must_exist_and_trust_lambda(server: Any, lam: Any, iam: Any) -> None:
    zipped = function_zip("hello")
    untrusting = unique("notlambda")
    iam.create_role(RoleName=untrusting, AssumeRolePolicyDocument=doc(
        {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
         "Action": "sts:AssumeRole"}))
    for role in (f"arn:aws:iam::{ACCOUNT}:role/{unique('missing')}",
                 f"arn:aws:iam::{ACCOUNT}:role/{untrusting}",
                 "arn:aws:iam::111111111111:role/lamina-function"):
        name = unique("norole")
        with pytest.raises(lam.exceptions.InvalidParameterValueException) as failure:
            lam.create_function(FunctionName=name, Runtime="python3.11", Role=role,
                                Handler="app.handler", Code={"ZipFile": zipped})
        assert failure.value.response["Error"]["Message"] == \
            "The role defined for the function cannot be assumed by Lambda."
        with pytest.raises(lam.exceptions.ResourceNotFoundException):
            lam.get_function(FunctionName=name)
    name = create(lam, zipped, Role=f"arn:aws:iam::{ACCOUNT}:role/lamina-function")
    before = lam.get_function_configuration(FunctionName=name)
    with pytest.raises(lam.exceptions.InvalidParameterValueException):
        lam.update_function_configuration(FunctionName=name,
                                          Role=f"arn:aws:iam::{ACCOUNT}:role/{untrusting}")
    assert lam.get_function_configuration(FunctionName=name)["RevisionId"] == \
        before["RevisionId"]


def test_aws_cli_speaks_iam_and_sts(server: Any, tmp_path: Path) -> None:
    key, secret = server.credentials()
    env = {**os.environ, "AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret,
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": str(tmp_path / "none"),
           "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}

    def aws(*args: str) -> Any:
        done = subprocess.run([sys.executable, "-m", "awscli", "--endpoint-url",
                               server.endpoint, "--output", "json", *args], env=env,
                              capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout) if done.stdout.strip() else {}

    name = unique("cli")
    assert aws("iam", "create-user", "--user-name", name)["User"]["UserName"] == name
    assert aws("sts", "get-caller-identity")["Account"] == ACCOUNT
    assert name in [u["UserName"] for u in aws("iam", "list-users")["Users"]]


def test_giving_a_function_a_role_needs_pass_role(server: Any, iam: Any) -> None:
    user = unique("deployer")
    key, secret = user_with_key(iam, user, allow(["lambda:CreateFunction",
                                                  "lambda:GetFunctionConfiguration"]))
    deployer = client_for(server, "lambda", key, secret)
    role = f"arn:aws:iam::{ACCOUNT}:role/lamina-function"
    name = unique("passed")
    with pytest.raises(botocore.exceptions.ClientError) as failure:
        deployer.create_function(FunctionName=name, Runtime="python3.11", Role=role,
                                 Handler="app.handler", Code={"ZipFile": function_zip("hello")})
    assert code_of(failure) == "AccessDeniedException"
    assert f"iam:PassRole on resource: {role}" in failure.value.response["Error"]["Message"]
    iam.put_user_policy(UserName=user, PolicyName="pass", PolicyDocument=doc(
        allow("iam:PassRole", role)))
    deployer.create_function(FunctionName=name, Runtime="python3.11", Role=role,
                             Handler="app.handler", Code={"ZipFile": function_zip("hello")})
    assert deployer.get_function_configuration(FunctionName=name)["Role"] == role


def test_trust_policies_must_name_existing_principals(iam: Any) -> None:
    ghost = f"arn:aws:iam::{ACCOUNT}:user/{unique('ghost')}"
    name = unique("trusting")
    with pytest.raises(iam.exceptions.MalformedPolicyDocumentException) as failure:
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=doc(
            {"Effect": "Allow", "Principal": {"AWS": ghost}, "Action": "sts:AssumeRole"}))
    assert failure.value.response["Error"]["Message"] == \
        f'Invalid principal in policy: "AWS":"{ghost}"'
    with pytest.raises(iam.exceptions.NoSuchEntityException):
        iam.get_role(RoleName=name)
