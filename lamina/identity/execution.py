"""Execution roles: which role a function may name, and the credentials its environments get.

``CreateFunction``'s ``Role`` must name an existing role of this account whose trust policy lets
``lambda.amazonaws.com`` assume it; otherwise Lambda's own words are the answer. Each
environment then receives temporary credentials for that role (a *bound* session, renewed
while the environment lives and revoked when it ends), carrying exactly the role's permissions.
"""

from __future__ import annotations

from lamina.errors import InvalidParameterValue
from lamina.identity import ids
from lamina.identity.authorize import Authorizer
from lamina.identity.directory import Directory
from lamina.identity.managed import LAMBDA_SERVICE
from lamina.identity.policy import Caller
from lamina.identity.sessions import SessionCredentials, SessionRegistry

CANNOT_ASSUME = "The role defined for the function cannot be assumed by Lambda."
_LAMBDA = Caller(frozenset(), None, service=LAMBDA_SERVICE)


def role_name(role_arn: str) -> str:
    """``arn:aws:iam::<account>:role/path/name`` -> ``name``."""
    return role_arn.rsplit("/", 1)[-1]


def check_execution_role(authorizer: Authorizer, account_id: str, role_arn: str) -> None:
    directory = authorizer.directory
    if directory is None:
        return
    prefix = f"arn:aws:iam::{account_id}:role/"
    role = directory.role(role_name(role_arn)) if role_arn.startswith(prefix) else None
    if role is None or directory.role_arn(role) != role_arn \
            or not authorizer.trusts(role.name, _LAMBDA):
        raise InvalidParameterValue(CANNOT_ASSUME)


def issue_for_function(sessions: SessionRegistry, directory: Directory | None, account_id: str,
                       role_arn: str, function_name: str) -> SessionCredentials:
    """An environment's credentials: a session of the function's role, named after it."""
    name = role_name(role_arn) if role_arn else ""
    role = directory.role(name) if directory is not None and name else None
    return sessions.issue(ids.session_arn(account_id, name or "lamina-function", function_name),
                          role_name=role.name if role else name,
                          role_id=role.id if role else "", session_name=function_name,
                          bound=True)
