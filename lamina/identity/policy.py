"""Policy documents in AWS's grammar: parsed, checked as IAM checks them, compiled once.

Three kinds share the grammar and differ in what a statement must and must not name:

* ``IDENTITY`` (attached to users and roles): ``Action``/``NotAction`` and
  ``Resource``/``NotResource`` required, no ``Principal``;
* ``RESOURCE`` (a function's policy): ``Principal`` required;
* ``TRUST`` (a role's assume-role policy): ``Principal`` required, no ``Resource``.

A refused document raises ``MalformedPolicy`` with the reason IAM gives. A compiled statement
answers ``applies(action, resource, ctx)``; matching a ``Principal`` is separate
(``principal_match``) because it says *how* a caller was named: by its own ARN, or only through
its account, which for a trust policy still needs the caller's own permission as well.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

from lamina.identity.conditions import Check, compile_condition
from lamina.identity.context import RequestContext
from lamina.identity.errors import MalformedPolicy
from lamina.identity.glob import Matcher, compile_arn, compile_glob
from lamina.identity.variables import substitute

VERSIONS = ("2012-10-17", "2008-10-17")
_STATEMENT_FIELDS = frozenset({"Sid", "Effect", "Principal", "NotPrincipal", "Action",
                               "NotAction", "Resource", "NotResource", "Condition"})
_ACCOUNT = re.compile(r"^\d{12}$")
_SYNTAX = "Syntax errors in policy."


class Kind(enum.Enum):
    IDENTITY = "identity"
    RESOURCE = "resource"
    TRUST = "trust"


class Match(enum.IntEnum):
    """How a statement's ``Principal`` names a caller."""

    NONE = 0
    ACCOUNT = 1  # through the caller's account (``arn:aws:iam::<id>:root`` or the bare id)
    EXACT = 2  # by the caller's own ARN (or ``*``)


@dataclasses.dataclass(frozen=True)
class Caller:
    """Who is asking, as principals in policies name it."""

    arns: frozenset[str]  # the user's ARN; a role session's role ARN and session ARN
    account: str | None  # None for a service
    service: str | None = None  # e.g. "lambda.amazonaws.com"


@dataclasses.dataclass(frozen=True, slots=True)
class _Principals:
    wildcard: bool
    aws: tuple[str, ...]  # ARNs (account ids turned into root ARNs), may hold wildcards
    services: tuple[str, ...]

    def match(self, caller: Caller) -> Match:
        if self.wildcard:
            return Match.EXACT
        if caller.service is not None:
            return Match.EXACT if caller.service in self.services else Match.NONE
        best = Match.NONE
        root = f"arn:aws:iam::{caller.account}:root"
        for pattern in self.aws:
            if pattern == "*" or any(compile_arn(pattern)(arn) for arn in caller.arns):
                return Match.EXACT
            if pattern == root:
                best = Match.ACCOUNT
        return best


@dataclasses.dataclass(frozen=True, slots=True)
class Statement:
    sid: str | None
    allow: bool
    actions: tuple[Matcher, ...]
    not_action: bool
    resources: tuple[str, ...]  # patterns; empty with not_resource False means "any" (trust)
    not_resource: bool
    principals: _Principals | None
    not_principal: bool
    conditions: tuple[Check, ...]
    variables: bool

    def applies(self, action: str, resource: str, ctx: RequestContext) -> bool:
        hit = any(m(action) for m in self.actions)
        if hit == self.not_action:
            return False
        if self.resources or self.not_resource:
            hit = any(self._resource(p, ctx)(resource) for p in self.resources)
            if hit == self.not_resource:
                return False
        return all(check(ctx) for check in self.conditions)

    def _resource(self, pattern: str, ctx: RequestContext) -> Matcher:
        if self.variables and "${" in pattern:
            return compile_arn(substitute(pattern, ctx))
        return compile_arn(pattern)

    def principal_match(self, caller: Caller) -> Match:
        if self.principals is None:
            return Match.EXACT
        found = self.principals.match(caller)
        if self.not_principal:
            return Match.NONE if found else Match.EXACT
        return found


@dataclasses.dataclass(frozen=True)
class Policy:
    text: str
    version: str
    statements: tuple[Statement, ...]
    document: dict[str, Any]


def parse_policy(text: str, kind: Kind) -> Policy:
    """Check and compile a policy document; ``MalformedPolicy`` says why it is refused."""
    try:
        document = json.loads(text)
    except (ValueError, TypeError):
        raise MalformedPolicy(_SYNTAX) from None
    if not isinstance(document, dict):
        raise MalformedPolicy(_SYNTAX)
    unknown = set(document) - {"Version", "Id", "Statement"}
    if unknown:
        raise MalformedPolicy(f"Policy document contains unknown field {sorted(unknown)[0]}.")
    version = document.get("Version", "2008-10-17")
    if version not in VERSIONS:
        raise MalformedPolicy("The policy failed legacy parsing")
    if "Statement" not in document:
        raise MalformedPolicy("Missing required field Statement.")
    raw = document["Statement"]
    items = raw if isinstance(raw, list) else [raw]
    if not items:
        raise MalformedPolicy("Missing required field Statement.")
    statements = tuple(_statement(item, kind, version == "2012-10-17") for item in items)
    sids = [s.sid for s in statements if s.sid]
    if len(sids) != len(set(sids)):
        raise MalformedPolicy("Statement IDs (SID) in a single policy must be unique.")
    return Policy(text, version, statements, document)


def _statement(item: Any, kind: Kind, variables: bool) -> Statement:
    if not isinstance(item, dict):
        raise MalformedPolicy(_SYNTAX)
    unknown = set(item) - _STATEMENT_FIELDS
    if unknown:
        raise MalformedPolicy(f"Statement contains unknown field {sorted(unknown)[0]}.")
    sid = item.get("Sid")
    if sid is not None and (not isinstance(sid, str) or
                            (kind is Kind.IDENTITY and not re.fullmatch(r"[A-Za-z0-9]*", sid))):
        raise MalformedPolicy("Statement IDs (SID) must be alpha-numeric. Check that your "
                              "input satisfies the regular expression [0-9A-Za-z]*")
    effect = item.get("Effect")
    if effect is None:
        raise MalformedPolicy("Missing required field Effect.")
    if effect not in ("Allow", "Deny"):
        raise MalformedPolicy(f"Invalid effect: {effect}")
    actions, not_action = _pair(item, "Action", "NotAction", "Policy statement must contain "
                                                             "actions.")
    for action in actions:
        if action != "*" and ":" not in action:
            raise MalformedPolicy("Actions/Conditions must be prefaced by a vendor, e.g., iam, "
                                  "sdb, ec2, etc.")
    has_principal = "Principal" in item or "NotPrincipal" in item
    if kind is Kind.IDENTITY and has_principal:
        raise MalformedPolicy("Policy document should not specify a principal.")
    if kind is not Kind.IDENTITY and not has_principal:
        raise MalformedPolicy("Missing required field Principal.")
    resources: Sequence[str] = ()
    not_resource = False
    if kind is Kind.TRUST:
        if "Resource" in item or "NotResource" in item:
            raise MalformedPolicy("Has prohibited field Resource.")
        for action in actions:
            if not compile_glob(action, True)("sts:AssumeRole") and not action.lower() \
                    .startswith("sts:"):
                raise MalformedPolicy("AssumeRole policy may only specify STS AssumeRole "
                                      "actions.")
    elif kind is Kind.IDENTITY or "Resource" in item or "NotResource" in item:
        resources, not_resource = _pair(item, "Resource", "NotResource",
                                        "Policy statement must contain resources.")
        for resource in resources:
            if resource != "*" and not resource.startswith("arn:"):
                raise MalformedPolicy(f'Resource {resource} must be in ARN format or "*".')
            compile_arn(resource)
    principals = None
    not_principal = "NotPrincipal" in item
    if has_principal:
        principals = _principals(item.get("NotPrincipal" if not_principal else "Principal"))
    conditions = compile_condition(item["Condition"], variables) if "Condition" in item else []
    return Statement(sid, effect == "Allow",
                     tuple(compile_glob(a, True) for a in actions), not_action,
                     tuple(resources), not_resource, principals, not_principal,
                     tuple(conditions), variables)


def _pair(item: dict[str, Any], name: str, negated: str, missing: str) -> tuple[list[str], bool]:
    if name in item and negated in item:
        raise MalformedPolicy(f"Statement cannot contain both {name} and {negated}.")
    key = name if name in item else negated if negated in item else None
    if key is None:
        raise MalformedPolicy(missing)
    values = _strings(item[key])
    if not values:
        raise MalformedPolicy(missing)
    return values, key == negated


def _strings(value: Any) -> list[str]:
    values = value if isinstance(value, list) else [value]
    if not all(isinstance(v, str) and v for v in values):
        raise MalformedPolicy(_SYNTAX)
    return list(values)


def _principals(value: Any) -> _Principals:
    if value == "*":
        return _Principals(True, (), ())
    if not isinstance(value, dict) or not value:
        raise MalformedPolicy(f"Invalid principal in policy: {json.dumps(value)}")
    aws: list[str] = []
    services: list[str] = []
    for key, raw in value.items():
        entries = _strings(raw)
        if key == "AWS":
            aws.extend(_aws_principal(e) for e in entries)
        elif key == "Service":
            services.extend(entries)
        elif key not in ("Federated", "CanonicalUser"):
            raise MalformedPolicy(f'Invalid principal in policy: "{key}"')
    return _Principals("*" in aws, tuple(aws), tuple(services))


def _aws_principal(entry: str) -> str:
    if entry == "*":
        return entry
    if _ACCOUNT.match(entry):
        return f"arn:aws:iam::{entry}:root"
    if entry.startswith(("arn:aws:iam::", "arn:aws:sts::")):
        return entry
    raise MalformedPolicy(f'Invalid principal in policy: "AWS":"{entry}"')


def decide(policies: Iterable[Policy], action: str, resource: str,
           ctx: RequestContext) -> bool | None:
    """Identity-policy evaluation: ``False`` on an explicit deny, ``True`` on an allow without
    any deny, ``None`` when nothing applies (the implicit deny)."""
    allowed = False
    for policy in policies:
        for statement in policy.statements:
            if statement.applies(action, resource, ctx):
                if not statement.allow:
                    return False
                allowed = True
    return True if allowed else None


def decide_for(policies: Iterable[Policy], caller: Caller, action: str, resource: str,
               ctx: RequestContext) -> tuple[bool | None, Match]:
    """Resource- or trust-policy evaluation for ``caller``: the decision as ``decide`` gives
    it and, for an allow, how the allowing statements named the caller (the strongest)."""
    allowed = Match.NONE
    for policy in policies:
        for statement in policy.statements:
            match = statement.principal_match(caller)
            if match and statement.applies(action, resource, ctx):
                if not statement.allow:
                    return False, match
                allowed = max(allowed, match)
    return (True, allowed) if allowed else (None, Match.NONE)
