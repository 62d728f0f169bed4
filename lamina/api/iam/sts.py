"""STS: GetCallerIdentity and AssumeRole.

AssumeRole checks the role's trust policy against the caller (a statement naming only the
caller's account also needs the caller's own ``sts:AssumeRole`` permission, as IAM requires),
the requested duration against the role's ``MaxSessionDuration``, and an optional session
policy, which then bounds what the session may do.
"""

from __future__ import annotations

import datetime
from typing import Any

from lamina.api.iam import IamCall, iam_operation
from lamina.api.iam.common import checked_policy
from lamina.errors import AccessDenied, ValidationError
from lamina.identity import ids

DEFAULT_DURATION = 3600


@iam_operation("sts", "GetCallerIdentity", None)
async def get_caller_identity(call: IamCall) -> dict[str, Any]:
    identity = call.identity
    return {"UserId": identity.user_id, "Account": identity.account, "Arn": identity.arn}


@iam_operation("sts", "AssumeRole", None)
async def assume_role(call: IamCall) -> dict[str, Any]:
    services, params, identity = call.services, call.params, call.identity
    role_arn, session_name = params["RoleArn"], params["RoleSessionName"]
    denied = AccessDenied(f"User: {identity.arn} is not authorized to perform: sts:AssumeRole "
                          f"on resource: {role_arn}")
    prefix = f"arn:aws:iam::{services.account_id}:role/"
    role = services.directory.role(role_arn.rsplit("/", 1)[-1]) \
        if role_arn.startswith(prefix) else None
    if role is None or services.directory.role_arn(role) != role_arn:
        raise denied
    if not services.authorizer.trusts(role.name, identity.caller, identity, call.request):
        raise denied
    duration = params.get("DurationSeconds") or DEFAULT_DURATION
    if duration > role.max_session_duration:
        raise ValidationError("The requested DurationSeconds exceeds the MaxSessionDuration set "
                              "for this role.")
    session_policy = checked_policy(params["Policy"]) if params.get("Policy") else None
    session = services.sessions.issue(
        ids.session_arn(services.account_id, role.name, session_name), duration,
        role_name=role.name, role_id=role.id, session_name=session_name,
        session_policy=session_policy)
    expiration = datetime.datetime.fromtimestamp(session.expires_at, datetime.UTC)
    return {
        "Credentials": {"AccessKeyId": session.access_key_id,
                        "SecretAccessKey": session.secret_access_key,
                        "SessionToken": session.session_token, "Expiration": expiration},
        "AssumedRoleUser": {"AssumedRoleId": f"{role.id}:{session_name}",
                            "Arn": session.principal_arn},
    }
