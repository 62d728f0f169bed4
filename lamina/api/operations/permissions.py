"""AddPermission, RemovePermission and GetPolicy: a function's resource-based policy.

Each qualifier (the unqualified function, a version, an alias) has a policy of its own, a list
of statements built from AddPermission's members as Lambda builds them (``Principal``,
``AWS:SourceArn``, ``AWS:SourceAccount``, ``aws:PrincipalOrgID``,
``lambda:FunctionUrlAuthType``...), guarded by its own ``RevisionId``. The authorizer evaluates
it together with the caller's identity policies (``lamina.identity.authorize``); a change is in
force before the call answers.
"""

from __future__ import annotations

import json
import re
from typing import Any

from lamina.api.lifecycle import new_revision
from lamina.api.operations import Call, operation
from lamina.api.operations.functions import load
from lamina.api.resource_policies import add_statement
from lamina.api.versions import REVISION_MISMATCH
from lamina.errors import (
    InternalError,
    InvalidParameterValue,
    PreconditionFailed,
    ResourceNotFound,
)
from lamina.identity.errors import MalformedPolicy
from lamina.identity.policy import Kind, parse_policy
from lamina.store.api import NotFound, RevisionMismatch
from lamina.store.iam import SqlIamStore

_ACCOUNT = re.compile(r"^\d{12}$")
_NO_POLICY = "The resource you requested does not exist."


def _store(call: Call) -> SqlIamStore:
    services = call.context.identity
    if services is None:
        raise InternalError("This server has no IAM store.")
    return services.store  # type: ignore[no-any-return]


async def _target(call: Call) -> tuple[str, str, str]:
    """(function name, qualifier or "", the ARN statements name) of an existing function."""
    params = call.params
    ref = call.context.naming.parse(params["FunctionName"], params.get("Qualifier"))
    await load(call.context, params["FunctionName"], params.get("Qualifier"))
    qualifier = "" if ref.qualifier in (None, "$LATEST") else ref.qualifier
    return ref.name, qualifier, call.context.naming.function_arn(ref.name, qualifier or None)


def _principal(principal: str) -> Any:
    if principal == "*":
        return "*"
    if _ACCOUNT.match(principal):
        return {"AWS": f"arn:aws:iam::{principal}:root"}
    if principal.startswith("arn:aws:iam::") or principal.startswith("arn:aws:sts::"):
        return {"AWS": principal}
    if re.fullmatch(r"[a-z0-9.-]+\.amazonaws\.com(\.cn)?", principal):
        return {"Service": principal}
    raise InvalidParameterValue("The provided principal was invalid. Please check the principal "
                                "and try again.")


def statement_for(params: dict[str, Any], resource: str) -> dict[str, Any]:
    """The statement AddPermission stores, as Lambda writes it."""
    statement: dict[str, Any] = {
        "Sid": params["StatementId"], "Effect": "Allow",
        "Principal": _principal(params["Principal"]), "Action": params["Action"],
        "Resource": resource}
    condition: dict[str, dict[str, str]] = {}
    equals = {"SourceAccount": "AWS:SourceAccount", "PrincipalOrgID": "aws:PrincipalOrgID",
              "EventSourceToken": "lambda:EventSourceToken",
              "FunctionUrlAuthType": "lambda:FunctionUrlAuthType"}
    for member, key in equals.items():
        if params.get(member):
            condition.setdefault("StringEquals", {})[key] = params[member]
    if params.get("SourceArn"):
        condition["ArnLike"] = {"AWS:SourceArn": params["SourceArn"]}
    if condition:
        statement["Condition"] = condition
    try:
        parse_policy(json.dumps({"Version": "2012-10-17", "Statement": [statement]}),
                     Kind.RESOURCE)
    except MalformedPolicy as exc:
        raise InvalidParameterValue(f"The policy is invalid: {exc}") from None
    return statement


@operation("AddPermission")
async def add_permission(call: Call) -> dict[str, Any]:
    name, qualifier, resource = await _target(call)
    statement = statement_for(call.params, resource)
    await add_statement(call.context, _store(call).add_statement, name, qualifier, statement,
                        call.params.get("RevisionId"), new_revision(), statement=statement)
    await call.context.identity.changed()
    return {"Statement": json.dumps(statement, separators=(",", ":"))}


@operation("RemovePermission")
async def remove_permission(call: Call) -> dict[str, Any]:
    name, qualifier, _ = await _target(call)
    sid = call.params["StatementId"]
    try:
        await call.context.db(_store(call).remove_statement, name, qualifier, sid,
                              call.params.get("RevisionId"), new_revision())
    except RevisionMismatch:
        raise PreconditionFailed(REVISION_MISMATCH) from None
    except NotFound:
        raise ResourceNotFound(f"Statement {sid} is not found in resource policy.") from None
    await call.context.identity.changed()
    return {}


@operation("GetPolicy")
async def get_policy(call: Call) -> dict[str, Any]:
    name, qualifier, _ = await _target(call)
    policy = await call.context.db(_store(call).function_policy, name, qualifier)
    if policy is None:
        raise ResourceNotFound(_NO_POLICY)
    document = {"Version": "2012-10-17", "Id": "default", "Statement": list(policy.statements)}
    return {"Policy": json.dumps(document, separators=(",", ":")),
            "RevisionId": policy.revision_id}
