"""Who may call what. Today: the root key may do everything; a function's session key (its
temporary execution credentials) authenticates but is granted nothing, because the role
policies that would grant it something come with IAM. Denials use AWS's words.
"""

from __future__ import annotations

from lamina.api.auth import Principal
from lamina.errors import AccessDenied, UnrecognizedClient
from lamina.identity.sessions import SessionRegistry

# Operation names whose IAM action is spelled differently.
_ACTIONS = {"Invoke": "InvokeFunction"}


def iam_action(operation_name: str) -> str:
    return "lambda:" + _ACTIONS.get(operation_name, operation_name)


class Authorizer:
    def __init__(self, root_access_key_id: str, sessions: SessionRegistry) -> None:
        self.root_access_key_id = root_access_key_id
        self.sessions = sessions

    def check(self, principal: Principal, operation_name: str, resource: str) -> None:
        if principal.access_key_id == self.root_access_key_id:
            return
        session = self.sessions.lookup(principal.access_key_id)
        if session is None or session.session_token != principal.session_token:
            raise UnrecognizedClient("The security token included in the request is invalid.")
        if session.expired:
            raise UnrecognizedClient("The security token included in the request is expired")
        action = iam_action(operation_name)
        raise AccessDenied(
            f"User: {session.principal_arn} is not authorized to perform: {action} on resource: "
            f"{resource} because no identity-based policy allows the {action} action")
