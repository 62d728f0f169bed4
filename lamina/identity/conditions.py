"""The ``Condition`` block of a policy statement, compiled once into predicates.

Supported operators: the String, Numeric, Date, Bool, Binary, IpAddress, Arn and Null families,
each with ``...IfExists`` and the ``ForAllValues:`` / ``ForAnyValue:`` set qualifiers. The rules
are IAM's: several values for one key are OR-ed, several keys and several operators are AND-ed;
a key missing from the request makes a positive operator false and a negated one true (and any
``...IfExists`` true); ``Null`` tests presence itself. Policy variables (``${aws:username}``) in
condition values are resolved from the request context when evaluated.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
from collections.abc import Callable
from typing import Any

from lamina.identity.context import RequestContext
from lamina.identity.errors import MalformedPolicy
from lamina.identity.glob import compile_arn, compile_glob
from lamina.identity.variables import substitute

Check = Callable[[RequestContext], bool]
Compare = Callable[[str, str], bool]  # (request value, policy value) -> match


def _number(text: str) -> float:
    return float(text)


def _date(text: str) -> float:
    if text.isdigit():
        return float(text)
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _numeric(op: Callable[[float, float], bool]) -> Compare:
    def compare(actual: str, expected: str) -> bool:
        try:
            return op(_number(actual), _number(expected))
        except ValueError:
            return False
    return compare


def _dated(op: Callable[[float, float], bool]) -> Compare:
    def compare(actual: str, expected: str) -> bool:
        try:
            return op(_date(actual), _date(expected))
        except ValueError:
            return False
    return compare


def _ip(actual: str, expected: str) -> bool:
    try:
        return ipaddress.ip_address(actual) in ipaddress.ip_network(expected, strict=False)
    except ValueError:
        return False


def _bool(actual: str, expected: str) -> bool:
    return actual.lower() == expected.lower()


def _binary(actual: str, expected: str) -> bool:
    try:
        return base64.b64decode(actual) == base64.b64decode(expected)
    except ValueError:
        return False


# operator -> (comparison, negated)
_OPERATORS: dict[str, tuple[Compare, bool]] = {
    "StringEquals": (str.__eq__, False),
    "StringNotEquals": (str.__eq__, True),
    "StringEqualsIgnoreCase": (lambda a, e: a.lower() == e.lower(), False),
    "StringNotEqualsIgnoreCase": (lambda a, e: a.lower() == e.lower(), True),
    "StringLike": (lambda a, e: compile_glob(e)(a), False),
    "StringNotLike": (lambda a, e: compile_glob(e)(a), True),
    "NumericEquals": (_numeric(float.__eq__), False),
    "NumericNotEquals": (_numeric(float.__eq__), True),
    "NumericLessThan": (_numeric(float.__lt__), False),
    "NumericLessThanEquals": (_numeric(float.__le__), False),
    "NumericGreaterThan": (_numeric(float.__gt__), False),
    "NumericGreaterThanEquals": (_numeric(float.__ge__), False),
    "DateEquals": (_dated(float.__eq__), False),
    "DateNotEquals": (_dated(float.__eq__), True),
    "DateLessThan": (_dated(float.__lt__), False),
    "DateLessThanEquals": (_dated(float.__le__), False),
    "DateGreaterThan": (_dated(float.__gt__), False),
    "DateGreaterThanEquals": (_dated(float.__ge__), False),
    "Bool": (_bool, False),
    "BinaryEquals": (_binary, False),
    "IpAddress": (_ip, False),
    "NotIpAddress": (_ip, True),
    "ArnEquals": (lambda a, e: compile_arn(e)(a), False),
    "ArnLike": (lambda a, e: compile_arn(e)(a), False),
    "ArnNotEquals": (lambda a, e: compile_arn(e)(a), True),
    "ArnNotLike": (lambda a, e: compile_arn(e)(a), True),
}


def compile_condition(block: Any, allow_variables: bool) -> list[Check]:
    """The predicates of one statement's ``Condition``; all must hold."""
    if not isinstance(block, dict):
        raise MalformedPolicy("Syntax errors in policy.")
    checks: list[Check] = []
    for operator, keys in block.items():
        if not isinstance(operator, str) or not isinstance(keys, dict) or not keys:
            raise MalformedPolicy("Syntax errors in policy.")
        for key, raw in keys.items():
            values = raw if isinstance(raw, list) else [raw]
            if not values or not all(isinstance(v, str | bool | int | float) for v in values):
                raise MalformedPolicy("Syntax errors in policy.")
            texts = [_text(v) for v in values]
            checks.append(_check(operator, str(key), texts, allow_variables))
    return checks


def _text(value: str | bool | int | float) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _check(operator: str, key: str, values: list[str], allow_variables: bool) -> Check:
    qualifier, _, name = operator.rpartition(":")
    if qualifier not in ("", "ForAllValues", "ForAnyValue"):
        raise MalformedPolicy(f"Invalid Condition type : {operator}")
    if_exists = name.endswith("IfExists") and name != "IfExists"
    base = name[:-len("IfExists")] if if_exists else name
    if base == "Null":
        wanted = [v.lower() == "true" for v in values]
        return lambda ctx: any((ctx.get(key) is None) == w for w in wanted)
    found = _OPERATORS.get(base)
    if found is None:
        raise MalformedPolicy(f"Invalid Condition type : {operator}")
    compare, negated = found
    has_variables = allow_variables and any("${" in v for v in values)

    def expected(ctx: RequestContext) -> list[str]:
        return [substitute(v, ctx) for v in values] if has_variables else values

    def one(actual: str, ctx: RequestContext) -> bool:
        return any(compare(actual, e) for e in expected(ctx))

    def check(ctx: RequestContext) -> bool:
        actual = ctx.get(key)
        if actual is None or actual == []:
            if qualifier == "ForAllValues":
                return True
            return if_exists or negated
        actuals = actual if isinstance(actual, list) else [actual]
        if qualifier == "ForAllValues":
            matched = all(one(a, ctx) for a in actuals)
        else:
            matched = any(one(a, ctx) for a in actuals)
        return not matched if negated else matched
    return check
