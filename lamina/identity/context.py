"""The request context a policy's conditions and variables read: ``aws:SourceIp``,
``aws:username``, ``aws:PrincipalArn``, ``aws:SourceArn``, ``lambda:FunctionUrlAuthType``...

Keys compare ignoring case, as in IAM. Most keys depend only on who calls (the principal), so a
decision that read only those may be cached per principal; reading a key that changes from one
request to the next (the source address, the time) marks the context ``varying`` and the
authorizer then does not cache that decision.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Mapping

Value = str | list[str]

# Keys whose value may differ between two requests of the same principal on the same resource.
VARYING = frozenset({
    "aws:sourceip", "aws:currenttime", "aws:epochtime", "aws:securetransport", "aws:useragent",
    "aws:referer", "aws:sourcearn", "aws:sourceaccount", "lambda:functionurlauthtype",
    "aws:tokenissuetime", "aws:multifactorauthpresent", "aws:requesttag",
})


class RequestContext:
    __slots__ = ("_fixed", "_request", "varying")

    def __init__(self, principal_keys: Mapping[str, Value],
                 request_keys: Mapping[str, Value] | None = None) -> None:
        self._fixed = principal_keys  # lower-case keys
        self._request = request_keys or {}
        self.varying = False

    def get(self, key: str) -> Value | None:
        lowered = key.lower()
        if lowered in VARYING or lowered.startswith("aws:requesttag/"):
            self.varying = True
            if lowered == "aws:currenttime":
                return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            if lowered == "aws:epochtime":
                return str(int(time.time()))
            return self._request.get(lowered)
        found = self._fixed.get(lowered)
        return found if found is not None else self._request.get(lowered)

    def with_request(self, request_keys: Mapping[str, Value]) -> RequestContext:
        return RequestContext(self._fixed, request_keys)
