"""Who may call what: AWS's evaluation of identity, session and resource policies.

``check`` is on every request, the warm invoke's included, so its shape is about cost:

* the root key is one string comparison and nothing else;
* any other key is identified (an IAM user's access key, or a session from an execution
  environment or ``AssumeRole``; unknown or expired ones are refused with AWS's errors) and the
  decision for (key, token, action, resource) is cached until the directory changes
  (``Directory.generation``) — unless the evaluation read a request-dependent condition key
  such as ``aws:SourceIp``, which is then evaluated afresh each time.

The rules are IAM's: an explicit deny anywhere wins; otherwise an allow from an identity policy
(and, for a session with a session policy, from that policy too) or from the resource's policy
(a function's, for ``lambda:`` actions on it) allows; otherwise the implicit deny. A denial is
``AccessDeniedException`` naming the principal, the action and the resource, as AWS words it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from lamina.api.auth import Principal
from lamina.errors import AccessDenied, UnrecognizedClient
from lamina.identity import ids
from lamina.identity.context import RequestContext, Value
from lamina.identity.directory import Directory
from lamina.identity.errors import ExpiredToken
from lamina.identity.policy import Caller, Match, Policy, decide, decide_for
from lamina.identity.sessions import SessionRegistry
from lamina.store.iam import ROLE, USER

# Operation names whose IAM action is spelled differently.
_ACTIONS = {"Invoke": "InvokeFunction", "InvokeWithResponseStream": "InvokeFunction",
            "GetLayerVersionByArn": "GetLayerVersion",
            "ReadLaminaInternals": "ReadLaminaInternals"}
_INVALID = "The security token included in the request is invalid."
_EXPIRED = "The security token included in the request is expired"
_CACHE_MAX = 8192


def iam_action(operation_name: str) -> str:
    if ":" in operation_name:
        return operation_name
    if operation_name == "ReadLaminaInternals":
        return "lamina:ReadInternals"
    return "lambda:" + _ACTIONS.get(operation_name, operation_name)


@dataclasses.dataclass(frozen=True)
class Identity:
    """An authenticated caller: what ``GetCallerIdentity`` shows and policies are matched on."""

    arn: str
    user_id: str
    account: str
    kind: str  # "root", "user" or "assumed-role"
    name: str  # user name, or role name for a session
    caller: Caller
    policies: tuple[Policy, ...]
    session_policy: Policy | None
    keys: Mapping[str, Value]  # principal condition keys, lower-case


class Authorizer:
    def __init__(self, root_access_key_id: str, sessions: SessionRegistry,
                 directory: Directory | None = None, account_id: str = "000000000000",
                 region: str = "us-east-1") -> None:
        self.root_access_key_id = root_access_key_id
        self.sessions = sessions
        self.directory = directory
        self.account_id = account_id
        self.region = region
        # (key, token, action, resource) -> (directory generation, denial message or None)
        self._decisions: dict[tuple[str, str | None, str, str], tuple[int, str | None]] = {}
        self._identities: dict[tuple[str, str | None], tuple[int, object, Identity]] = {}
        self._root = self._root_identity()

    # -- the hot path -------------------------------------------------------------------------

    def check(self, principal: Principal, operation_name: str, resource: str,
              request: Any = None) -> None:
        """Raise unless ``principal`` may perform the operation on ``resource``."""
        if principal.access_key_id == self.root_access_key_id:
            return
        self.authorize(principal, iam_action(operation_name), resource, request)

    def authorize(self, principal: Principal, action: str, resource: str, request: Any = None,
                  request_keys: Mapping[str, Value] | None = None) -> Identity:
        """``check`` for a full IAM action name; returns the caller's identity."""
        identity = self.identify(principal)
        if identity.kind == "root":
            return identity
        directory = self.directory
        generation = directory.generation if directory is not None else 0
        key = (principal.access_key_id, principal.session_token, action, resource)
        cached = self._decisions.get(key) if request_keys is None else None
        if cached is not None and cached[0] == generation:
            if cached[1] is not None:
                raise AccessDenied(cached[1])  # a new one: a re-raised one grows its traceback
            return identity
        ctx = RequestContext(identity.keys, self._request_keys(request, request_keys))
        denial = self._evaluate(identity, action, resource, ctx)
        if not ctx.varying and request_keys is None:
            if len(self._decisions) >= _CACHE_MAX:
                self._decisions.clear()
            self._decisions[key] = (generation, denial.message if denial else None)
        if denial is not None:
            raise denial
        return identity

    # -- identification -----------------------------------------------------------------------

    def identify(self, principal: Principal) -> Identity:
        """The caller behind a verified key, or AWS's error for a key that is no longer
        good; cached per (key, token) while neither the directory nor the session changed."""
        key = principal.access_key_id
        if key == self.root_access_key_id:
            return self._root
        generation = self.directory.generation if self.directory is not None else 0
        cache_key = (key, principal.session_token)
        cached = self._identities.get(cache_key)
        session = self.sessions.lookup(key)
        if session is not None:
            if session.session_token != principal.session_token:
                raise UnrecognizedClient(_INVALID)
            if session.expired:
                raise ExpiredToken(_EXPIRED)
            if cached is not None and cached[0] == generation and cached[1] is session:
                return cached[2]
            identity = self._session_identity(session)
            self._remember(cache_key, (generation, session, identity))
            return identity
        entry = self.directory.key(key) if self.directory is not None else None
        if entry is None or not entry.active or principal.session_token:
            raise UnrecognizedClient(_INVALID)
        if cached is not None and cached[0] == generation and cached[1] is entry:
            return cached[2]
        identity = self._user_identity(entry)
        self._remember(cache_key, (generation, entry, identity))
        return identity

    def _remember(self, key: tuple[str, str | None], value: tuple[int, object, Identity]) -> None:
        if len(self._identities) >= _CACHE_MAX:
            self._identities.clear()
        self._identities[key] = value

    def _user_identity(self, entry: Any) -> Identity:
        assert self.directory is not None
        user = self.directory.user(entry.user_name)
        if user is None:
            raise UnrecognizedClient(_INVALID)
        arn = self.directory.user_arn(user)
        return Identity(
            arn=arn, user_id=user.id, account=self.account_id, kind="user", name=user.name,
            caller=Caller(frozenset({arn}), self.account_id),
            policies=self.directory.policies(USER, user.name), session_policy=None,
            keys=self._principal_keys(arn, user.id, "User", username=user.name))

    def _session_identity(self, session: Any) -> Identity:
        directory = self.directory
        role = directory.role(session.role_name) if directory and session.role_name else None
        if role is not None and session.role_id and role.id != session.role_id:
            role = None  # deleted and made again: a new role, not the one this session is of
        role_arn = directory.role_arn(role) if directory and role else ""
        role_id = role.id if role else session.role_id
        user_id = f"{role_id}:{session.session_name}" if session.session_name else role_id
        arns = {session.principal_arn} | ({role_arn} if role_arn else set())
        policies = directory.policies(ROLE, role.name) if directory and role else ()
        return Identity(
            arn=session.principal_arn, user_id=user_id, account=self.account_id,
            kind="assumed-role", name=session.role_name,
            caller=Caller(frozenset(arns), self.account_id), policies=policies,
            session_policy=session.session_policy,
            keys=self._principal_keys(role_arn or session.principal_arn, user_id,
                                      "AssumedRole"))

    def _root_identity(self) -> Identity:
        arn = f"arn:aws:iam::{self.account_id}:root"
        return Identity(arn=arn, user_id=self.account_id, account=self.account_id, kind="root",
                        name="root", caller=Caller(frozenset({arn}), self.account_id),
                        policies=(), session_policy=None,
                        keys=self._principal_keys(arn, self.account_id, "Account"))

    def _principal_keys(self, arn: str, user_id: str, kind: str,
                        username: str | None = None) -> dict[str, Value]:
        keys: dict[str, Value] = {
            "aws:principalarn": arn, "aws:userid": user_id, "aws:principalaccount":
            self.account_id, "aws:principaltype": kind, "aws:requestedregion": self.region}
        if username is not None:
            keys["aws:username"] = username
        return keys

    @staticmethod
    def _request_keys(request: Any, extra: Mapping[str, Value] | None) -> dict[str, Value]:
        keys: dict[str, Value] = {"aws:securetransport": "false"}
        client = getattr(request, "client", None)
        if client:
            keys["aws:sourceip"] = client[0]
        headers = getattr(request, "headers", None)
        if headers and "user-agent" in headers:
            keys["aws:useragent"] = headers["user-agent"]
        if extra:
            keys.update({k.lower(): v for k, v in extra.items()})
        return keys

    # -- evaluation ---------------------------------------------------------------------------

    def _evaluate(self, identity: Identity, action: str, resource: str,
                  ctx: RequestContext) -> AccessDenied | None:
        identity_decision = decide(identity.policies, action, resource, ctx)
        if identity_decision is False:
            return self._denied(identity, action, resource, "with an explicit deny in an "
                                                           "identity-based policy")
        if identity_decision and identity.session_policy is not None:
            session = decide((identity.session_policy,), action, resource, ctx)
            if session is False:
                return self._denied(identity, action, resource, "with an explicit deny in a "
                                                               "session policy")
            identity_decision = session
        resource_policy = self._resource_policy(action, resource)
        if resource_policy is not None:
            decision, _ = decide_for((resource_policy,), identity.caller, action, resource, ctx)
            if decision is False:
                return self._denied(identity, action, resource, "with an explicit deny in a "
                                                               "resource-based policy")
            if decision:
                return None
        if identity_decision:
            return None
        return self._denied(identity, action, resource,
                            f"because no identity-based policy allows the {action} action")

    def _resource_policy(self, action: str, resource: str) -> Policy | None:
        """A function's own policy for ``lambda:`` actions on it (or one of its qualifiers)."""
        if self.directory is None or not action.lower().startswith("lambda:"):
            return None
        parts = resource.split(":")
        if len(parts) < 7 or parts[2] != "lambda" or parts[5] != "function":
            return None
        qualifier = parts[7] if len(parts) > 7 and parts[7] != "$LATEST" else ""
        return self.directory.function_policy(parts[6], qualifier)

    @staticmethod
    def _denied(identity: Identity, action: str, resource: str, why: str) -> AccessDenied:
        return AccessDenied(f"User: {identity.arn} is not authorized to perform: {action} on "
                            f"resource: {resource} {why}")

    def resource_allows(self, caller: Caller, action: str, resource: str,
                        request_keys: Mapping[str, Value] | None = None) -> bool:
        """Whether a function's resource policy alone lets ``caller`` act: for callers that
        have no identity policies — a service (a trigger, with ``aws:SourceArn`` and
        ``aws:SourceAccount`` in ``request_keys``) or anyone at all (a function URL of auth
        type ``NONE``, with ``lambda:FunctionUrlAuthType``)."""
        policy = self._resource_policy(action, resource)
        if policy is None:
            return False
        ctx = RequestContext({}, {k.lower(): v for k, v in (request_keys or {}).items()})
        decision, _ = decide_for((policy,), caller, action, resource, ctx)
        return bool(decision)

    # -- trust --------------------------------------------------------------------------------

    def trusts(self, role_name: str, caller: Caller, identity: Identity | None = None,
               request: Any = None) -> bool:
        """Whether the role's trust policy lets ``caller`` assume it. A statement naming only
        the caller's account also needs the caller's own permission for ``sts:AssumeRole``."""
        directory = self.directory
        if directory is None:
            return False
        role = directory.role(role_name)
        policy = directory.trust_policy(role_name)
        if role is None or policy is None:
            return False
        role_arn = directory.role_arn(role)
        keys = identity.keys if identity is not None else {}
        ctx = RequestContext(keys, self._request_keys(request, None))
        decision, match = decide_for((policy,), caller, "sts:AssumeRole", role_arn, ctx)
        if not decision:
            return False
        if match is Match.EXACT or identity is None or identity.kind == "root":
            return True
        own = decide(identity.policies, "sts:AssumeRole", role_arn, ctx)
        return bool(own)


def session_arn(account: str, role: str, session: str) -> str:
    return ids.session_arn(account, role, session)
