"""The policy language and its evaluation, without a server: IAM's grammar checks, wildcards,
NotAction/NotResource, conditions, explicit deny, resource and trust policies, the authorizer's
decisions and caching, and that no document at all can make the parser do anything but accept
or refuse it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lamina.api.auth import Principal
from lamina.errors import AccessDenied, UnrecognizedClient
from lamina.identity.authorize import Authorizer, iam_action
from lamina.identity.context import RequestContext
from lamina.identity.directory import Directory
from lamina.identity.errors import ExpiredToken, MalformedPolicy
from lamina.identity.policy import Caller, Kind, Match, decide, decide_for, parse_policy
from lamina.identity.sessions import SessionRegistry
from lamina.store.iam import ROLE, USER, RoleRecord, SqlIamStore, UserRecord
from lamina.store.registry import open_store

FN = "arn:aws:lambda:us-east-1:000000000000:function:"


def doc(*statements: dict[str, Any], version: str = "2012-10-17") -> str:
    return json.dumps({"Version": version, "Statement": list(statements)})


def allow(action: Any, resource: Any = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def deny(action: Any, resource: Any = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Deny", "Action": action, "Resource": resource, **extra}


def evaluate(document: str, action: str, resource: str, **keys: Any) -> bool | None:
    ctx = RequestContext({}, {k.lower(): v for k, v in keys.items()})
    return decide([parse_policy(document, Kind.IDENTITY)], action, resource, ctx)


@pytest.mark.parametrize("document, reason", [
    ("{not json", "Syntax errors in policy."),
    ("[]", "Syntax errors in policy."),
    (json.dumps({"Version": "2099-01-01", "Statement": []}), "legacy parsing"),
    (json.dumps({"Version": "2012-10-17"}), "Missing required field Statement"),
    (doc({"Action": "lambda:*", "Resource": "*"}), "Missing required field Effect"),
    (doc({"Effect": "Maybe", "Action": "x:y", "Resource": "*"}), "Invalid effect"),
    (doc({"Effect": "Allow", "Resource": "*"}), "must contain actions"),
    (doc({"Effect": "Allow", "Action": "lambda:*"}), "must contain resources"),
    (doc(allow("InvokeFunction")), "prefaced by a vendor"),
    (doc(allow("lambda:*", "function:f")), "must be in ARN format"),
    (doc(allow("lambda:*", Principal="*")), "should not specify a principal"),
    (doc(allow("lambda:*", NotAction="lambda:Get*")), "both Action and NotAction"),
    (doc(allow("lambda:*", Sid="a"), allow("lambda:*", Sid="a")), "must be unique"),
    (doc(allow("lambda:*", Condition={"StringEqualz": {"aws:username": "x"}})),
     "Invalid Condition type"),
    (doc(allow("lambda:*", Sid="not valid!")), "alpha-numeric"),
    (doc({**allow("lambda:*"), "Extra": 1}), "unknown field"),
])
def test_malformed_identity_policies_are_refused_with_the_reason(document: str,
                                                                 reason: str) -> None:
    with pytest.raises(MalformedPolicy) as refused:
        parse_policy(document, Kind.IDENTITY)
    assert reason in str(refused.value)


def test_trust_and_resource_policies_have_their_own_rules() -> None:
    trust = doc({"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                 "Action": "sts:AssumeRole"})
    assert parse_policy(trust, Kind.TRUST)
    with pytest.raises(MalformedPolicy, match="Missing required field Principal"):
        parse_policy(doc({"Effect": "Allow", "Action": "sts:AssumeRole"}), Kind.TRUST)
    with pytest.raises(MalformedPolicy, match="prohibited field Resource"):
        parse_policy(doc({"Effect": "Allow", "Principal": "*", "Action": "sts:AssumeRole",
                          "Resource": "*"}), Kind.TRUST)
    with pytest.raises(MalformedPolicy, match="Invalid principal"):
        parse_policy(doc({"Effect": "Allow", "Principal": {"AWS": "bob"},
                          "Action": "sts:AssumeRole"}), Kind.TRUST)


def test_default_deny_allow_and_explicit_deny_wins() -> None:
    document = doc(allow("lambda:*"), deny("lambda:DeleteFunction", FN + "prod-*"))
    assert evaluate(document, "lambda:GetFunction", FN + "prod-x") is True
    assert evaluate(document, "lambda:DeleteFunction", FN + "dev-x") is True
    assert evaluate(document, "lambda:DeleteFunction", FN + "prod-x") is False
    assert evaluate(document, "iam:CreateUser", "*") is None


def test_wildcards_in_actions_ignore_case_resources_match_per_arn_segment() -> None:
    document = doc(allow("lambda:Get*", FN + "app-?"), allow("LAMBDA:invokefunction", FN + "*"))
    assert evaluate(document, "lambda:GetFunctionConfiguration", FN + "app-1") is True
    assert evaluate(document, "lambda:GetFunction", FN + "app-12") is None
    assert evaluate(document, "lambda:InvokeFunction", FN + "x:live") is True
    region_wild = doc(allow("lambda:*", "arn:aws:lambda:*:000000000000:function:f"))
    assert evaluate(region_wild, "lambda:GetFunction", FN + "f") is True
    assert evaluate(region_wild, "lambda:GetFunction",
                    "arn:aws:lambda:eu-west-1:111111111111:function:f") is None


def test_not_action_and_not_resource() -> None:
    document = doc({"Effect": "Allow", "NotAction": "lambda:Delete*", "Resource": "*"},
                   {"Effect": "Deny", "Action": "lambda:*", "NotResource": FN + "mine-*"})
    assert evaluate(document, "lambda:GetFunction", FN + "mine-1") is True
    assert evaluate(document, "lambda:DeleteFunction", FN + "mine-1") is None
    assert evaluate(document, "lambda:GetFunction", FN + "theirs") is False


@pytest.mark.parametrize("condition, keys, expected", [
    ({"StringEquals": {"aws:username": "bob"}}, {"aws:username": "bob"}, True),
    ({"StringEquals": {"aws:username": ["al", "bob"]}}, {"aws:username": "bob"}, True),
    ({"StringEquals": {"aws:username": "bob"}}, {"aws:username": "eve"}, None),
    ({"StringEquals": {"aws:username": "bob"}}, {}, None),
    ({"StringNotEquals": {"aws:username": "bob"}}, {}, True),
    ({"StringEqualsIfExists": {"aws:username": "bob"}}, {}, True),
    ({"StringLike": {"aws:userid": "AIDA*"}}, {"aws:userid": "AIDAXYZ"}, True),
    ({"StringLike": {"aws:userid": "AROA*"}}, {"aws:userid": "AIDAXYZ"}, None),
    ({"ArnLike": {"aws:SourceArn": "arn:aws:s3:::bucket-*"}},
     {"aws:sourcearn": "arn:aws:s3:::bucket-1"}, True),
    ({"ArnLike": {"aws:SourceArn": "arn:aws:s3:::bucket-*"}},
     {"aws:sourcearn": "arn:aws:s3:::other"}, None),
    ({"Bool": {"aws:SecureTransport": "false"}}, {"aws:securetransport": "false"}, True),
    ({"Bool": {"aws:SecureTransport": True}}, {"aws:securetransport": "false"}, None),
    ({"IpAddress": {"aws:SourceIp": "127.0.0.0/8"}}, {"aws:sourceip": "127.0.0.1"}, True),
    ({"IpAddress": {"aws:SourceIp": ["10.0.0.0/8"]}}, {"aws:sourceip": "127.0.0.1"}, None),
    ({"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}}, {"aws:sourceip": "127.0.0.1"}, True),
    ({"NumericLessThan": {"k:n": "10"}}, {"k:n": "3"}, True),
    ({"DateGreaterThan": {"k:d": "2020-01-01T00:00:00Z"}}, {"k:d": "2021-01-01T00:00:00Z"}, True),
    ({"Null": {"aws:username": "true"}}, {}, True),
    ({"Null": {"aws:username": "false"}}, {}, None),
    ({"ForAllValues:StringEquals": {"k:tags": ["a", "b"]}}, {"k:tags": ["a"]}, True),
    ({"ForAllValues:StringEquals": {"k:tags": ["a"]}}, {"k:tags": ["a", "c"]}, None),
    ({"ForAnyValue:StringEquals": {"k:tags": ["c"]}}, {"k:tags": ["a", "c"]}, True),
    ({"StringEquals": {"aws:username": "bob"}, "Bool": {"k:b": "true"}},
     {"aws:username": "bob", "k:b": "false"}, None),
])
def test_conditions(condition: dict[str, Any], keys: dict[str, Any], expected: Any) -> None:
    assert evaluate(doc(allow("lambda:*", Condition=condition)), "lambda:X", "*", **keys) \
        is expected


def test_policy_variables_in_resources_and_conditions() -> None:
    document = doc(allow("lambda:*", FN + "${aws:username}-*"),
                   allow("iam:GetUser", "*",
                         Condition={"StringEquals": {"k:owner": "${aws:username}"}}))
    assert evaluate(document, "lambda:GetFunction", FN + "bob-app", **{"aws:username": "bob"})
    assert evaluate(document, "lambda:GetFunction", FN + "eve-app",
                    **{"aws:username": "bob"}) is None
    assert evaluate(document, "iam:GetUser", "*", **{"aws:username": "bob", "k:owner": "bob"})
    old = doc(allow("lambda:*", FN + "${aws:username}-*"), version="2008-10-17")
    assert evaluate(old, "lambda:GetFunction", FN + "bob-app", **{"aws:username": "bob"}) \
        is None


def test_resource_policy_principals() -> None:
    policy = parse_policy(doc(
        {"Sid": "a", "Effect": "Allow", "Principal": {"AWS": "000000000000"},
         "Action": "lambda:InvokeFunction", "Resource": FN + "f"},
        {"Sid": "b", "Effect": "Allow", "Principal": {"Service": "s3.amazonaws.com"},
         "Action": "lambda:InvokeFunction", "Resource": FN + "f",
         "Condition": {"ArnLike": {"AWS:SourceArn": "arn:aws:s3:::b"}}}), Kind.RESOURCE)
    user = Caller(frozenset({"arn:aws:iam::000000000000:user/bob"}), "000000000000")
    stranger = Caller(frozenset({"arn:aws:iam::111111111111:user/x"}), "111111111111")
    s3 = Caller(frozenset(), None, service="s3.amazonaws.com")
    ctx = RequestContext({})
    assert decide_for([policy], user, "lambda:InvokeFunction", FN + "f", ctx) \
        == (True, Match.ACCOUNT)
    assert decide_for([policy], stranger, "lambda:InvokeFunction", FN + "f", ctx)[0] is None
    assert decide_for([policy], s3, "lambda:InvokeFunction", FN + "f", ctx)[0] is None
    ctx = RequestContext({}, {"aws:sourcearn": "arn:aws:s3:::b"})
    assert decide_for([policy], s3, "lambda:InvokeFunction", FN + "f", ctx) == (True, Match.EXACT)


def test_iam_action_names() -> None:
    assert iam_action("Invoke") == "lambda:InvokeFunction"
    assert iam_action("GetFunction") == "lambda:GetFunction"
    assert iam_action("iam:CreateUser") == "iam:CreateUser"


# -- the authorizer on a real (SQLite) store ------------------------------------------------------

@pytest.fixture
def world(tmp_path: Path) -> Any:
    store = open_store(f"sqlite:///{tmp_path / 'iam.db'}")
    iam = SqlIamStore(store)  # type: ignore[arg-type]
    directory = Directory(iam, "000000000000")
    directory.bootstrap()
    sessions = SessionRegistry()
    authorizer = Authorizer("ROOTKEY", sessions, directory)
    yield iam, directory, sessions, authorizer
    store.close()


def _user_with_key(iam: SqlIamStore, directory: Directory, name: str, document: str) -> str:
    from lamina.store.iam import AccessKeyRecord
    iam.create_user(UserRecord(name, "AIDA" + name.upper().ljust(17, "X"), "/", 0.0))
    iam.put_inline(USER, name, "p", document)
    key = "AKIA" + name.upper().ljust(16, "K")
    iam.create_key(AccessKeyRecord(key, name, "Active", 0.0, directory.seal_secret(key, "s")))
    directory.reload()
    return key


def test_root_passes_and_unknown_keys_are_refused(world: Any) -> None:
    _iam, _directory, _sessions, authorizer = world
    authorizer.check(Principal("ROOTKEY", "lambda"), "DeleteFunction", FN + "x")
    with pytest.raises(UnrecognizedClient):
        authorizer.check(Principal("AKIANOBODY", "lambda"), "GetFunction", FN + "x")


def test_decisions_follow_policy_changes(world: Any) -> None:
    iam, directory, _sessions, authorizer = world
    key = _user_with_key(iam, directory, "bob", doc(allow("lambda:GetFunction")))
    principal = Principal(key, "lambda")
    authorizer.check(principal, "GetFunction", FN + "x")
    with pytest.raises(AccessDenied) as denied:
        authorizer.check(principal, "DeleteFunction", FN + "x")
    assert str(denied.value) == (
        "User: arn:aws:iam::000000000000:user/bob is not authorized to perform: "
        f"lambda:DeleteFunction on resource: {FN}x because no identity-based policy allows the "
        "lambda:DeleteFunction action")
    iam.put_inline(USER, "bob", "p", doc(allow("lambda:*"), deny("lambda:GetFunction")))
    directory.reload()
    authorizer.check(principal, "DeleteFunction", FN + "x")
    with pytest.raises(AccessDenied, match="explicit deny in an identity-based policy"):
        authorizer.check(principal, "GetFunction", FN + "x")
    iam.delete_key("bob", key)
    directory.reload()
    with pytest.raises(UnrecognizedClient):
        authorizer.check(principal, "DeleteFunction", FN + "x")


def test_role_sessions_carry_the_role_and_expire(world: Any) -> None:
    iam, directory, sessions, authorizer = world
    iam.create_role(RoleRecord("worker", "AROAWORKERXXXXXXXXXX", "/", 0.0,
                               doc({"Effect": "Allow", "Principal": {"Service":
                                   "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"})))
    iam.put_inline(ROLE, "worker", "p", doc(allow("lambda:InvokeFunction", FN + "target")))
    directory.reload()
    session = sessions.issue("arn:aws:sts::000000000000:assumed-role/worker/fn",
                             role_name="worker", session_name="fn")
    principal = Principal(session.access_key_id, "lambda", session.session_token)
    authorizer.check(principal, "Invoke", FN + "target")
    with pytest.raises(AccessDenied, match="assumed-role/worker/fn"):
        authorizer.check(principal, "Invoke", FN + "other")
    with pytest.raises(UnrecognizedClient):
        authorizer.check(Principal(session.access_key_id, "lambda", "forged"), "Invoke",
                         FN + "target")
    expired = sessions.issue("arn:aws:sts::000000000000:assumed-role/worker/old", -1,
                             role_name="worker")
    with pytest.raises(ExpiredToken):
        authorizer.check(Principal(expired.access_key_id, "lambda", expired.session_token),
                         "Invoke", FN + "target")
    sessions.revoke(session.access_key_id)
    with pytest.raises(UnrecognizedClient):
        authorizer.check(principal, "Invoke", FN + "target")


def test_request_dependent_conditions_are_never_cached(world: Any) -> None:
    iam, directory, _sessions, authorizer = world
    key = _user_with_key(iam, directory, "ip", doc(allow(
        "lambda:*", Condition={"IpAddress": {"aws:SourceIp": "127.0.0.1/32"}})))

    class From:
        def __init__(self, address: str) -> None:
            self.client = (address, 1)
            self.headers: dict[str, str] = {}

    principal = Principal(key, "lambda")
    authorizer.check(principal, "GetFunction", FN + "x", From("127.0.0.1"))
    with pytest.raises(AccessDenied):
        authorizer.check(principal, "GetFunction", FN + "x", From("127.0.0.2"))
    authorizer.check(principal, "GetFunction", FN + "x", From("127.0.0.1"))


# -- no input makes the parser misbehave ----------------------------------------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12)
    | st.sampled_from(["*", "lambda:*", "Allow", "Deny", "arn:aws:lambda:*", "sts:AssumeRole"]),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(["Version", "Statement", "Effect", "Action", "NotAction",
                                       "Resource", "NotResource", "Principal", "Condition",
                                       "Sid", "AWS", "Service", "StringEquals", "aws:username",
                                       "2012-10-17"]) | st.text(max_size=6),
                      children, max_size=5),
    max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(document=_json, kind=st.sampled_from(list(Kind)))
def test_any_document_is_accepted_or_refused_never_crashes(document: Any, kind: Kind) -> None:
    try:
        policy = parse_policy(json.dumps(document), kind)
    except MalformedPolicy:
        return
    ctx = RequestContext({"aws:username": "bob"})
    decide([policy], "lambda:InvokeFunction", FN + "f", ctx)
    decide_for([policy], Caller(frozenset({"arn:aws:iam::0:user/b"}), "0"), "sts:AssumeRole",
               "arn:aws:iam::0:role/r", ctx)


def test_services_and_anonymous_callers_by_resource_policy_alone(world: Any) -> None:
    iam, directory, _sessions, authorizer = world
    import time as _time

    from lamina.store.schema import functions
    with iam._store.transaction(write=True) as conn:
        conn.execute(functions.insert().values(name="f", created=_time.time()))
    iam.add_statement("f", "", {
        "Sid": "s3", "Effect": "Allow", "Principal": {"Service": "s3.amazonaws.com"},
        "Action": "lambda:InvokeFunction", "Resource": FN + "f",
        "Condition": {"ArnLike": {"AWS:SourceArn": "arn:aws:s3:::uploads"}}}, None, "r1")
    iam.add_statement("f", "", {
        "Sid": "url", "Effect": "Allow", "Principal": "*", "Action": "lambda:InvokeFunctionUrl",
        "Resource": FN + "f",
        "Condition": {"StringEquals": {"lambda:FunctionUrlAuthType": "NONE"}}}, None, "r2")
    directory.reload()
    s3 = Caller(frozenset(), None, service="s3.amazonaws.com")
    anyone = Caller(frozenset(), None, service="anonymous")
    assert authorizer.resource_allows(s3, "lambda:InvokeFunction", FN + "f",
                                      {"aws:SourceArn": "arn:aws:s3:::uploads"})
    assert not authorizer.resource_allows(s3, "lambda:InvokeFunction", FN + "f",
                                          {"aws:SourceArn": "arn:aws:s3:::other"})
    assert not authorizer.resource_allows(s3, "lambda:InvokeFunction", FN + "g")
    assert authorizer.resource_allows(anyone, "lambda:InvokeFunctionUrl", FN + "f",
                                      {"lambda:FunctionUrlAuthType": "NONE"})
    assert not authorizer.resource_allows(anyone, "lambda:InvokeFunctionUrl", FN + "f",
                                          {"lambda:FunctionUrlAuthType": "AWS_IAM"})
