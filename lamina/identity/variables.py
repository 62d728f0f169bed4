"""Policy variables: ``${aws:username}`` and friends in resources and condition values
(policies of version ``2012-10-17`` only), plus the escapes ``${*}``, ``${?}`` and ``${$}``.

An unknown variable (or ``${key, 'default'}`` without a value) resolves as IAM resolves it: to
the default when one is given, otherwise to a value that matches nothing.
"""

from __future__ import annotations

import re

from lamina.identity.context import RequestContext

_VARIABLE = re.compile(r"\$\{([^}]*)\}")
_ESCAPES = {"*": "*", "?": "?", "$": "$"}
_NOTHING = "\x00unresolved\x00"  # matches no real value


def substitute(text: str, ctx: RequestContext) -> str:
    if "${" not in text:
        return text

    def replace(match: re.Match[str]) -> str:
        inner = match.group(1).strip()
        if inner in _ESCAPES:
            return _ESCAPES[inner]
        key, comma, default = inner.partition(",")
        value = ctx.get(key.strip())
        if isinstance(value, str):
            return value
        if comma:
            return default.strip().strip("'")
        return _NOTHING
    return _VARIABLE.sub(replace, text)
