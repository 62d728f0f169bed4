"""Function names as Lambda accepts them: a name, a partial ARN or a full ARN, each optionally with
a ``:qualifier`` (version or alias) on the end.
"""

from __future__ import annotations

import dataclasses
import re

from lamina.errors import InvalidParameterValue, ResourceNotFound

NAME_RE = re.compile(r"^[a-zA-Z0-9-_]{1,64}$")
QUALIFIER_RE = re.compile(r"^(|[a-zA-Z0-9$_-]{1,128})$")
LATEST = "$LATEST"


@dataclasses.dataclass(frozen=True)
class FunctionRef:
    name: str
    qualifier: str | None  # None: not given (means $LATEST for most operations)


class Naming:
    """ARNs of this deployment's region and account."""

    def __init__(self, region: str, account_id: str) -> None:
        self.region = region
        self.account_id = account_id
        self._prefix = f"arn:aws:lambda:{region}:{account_id}:function:"

    def function_arn(self, name: str, qualifier: str | None = None) -> str:
        arn = self._prefix + name
        return f"{arn}:{qualifier}" if qualifier else arn

    def not_found(self, name: str, qualifier: str | None = None) -> ResourceNotFound:
        return ResourceNotFound(f"Function not found: {self.function_arn(name, qualifier)}")

    def parse(self, text: str, qualifier: str | None = None) -> FunctionRef:
        """Split a FunctionName parameter into name and qualifier.

        A qualifier in the name and a ``Qualifier`` parameter must agree, as on AWS.
        """
        parts = text.split(":")
        if text.startswith("arn:"):
            # arn:aws:lambda:<region>:<account>:function:<name>[:<qualifier>]
            if len(parts) not in (7, 8) or parts[2] != "lambda" or parts[5] != "function":
                raise InvalidParameterValue(f"Invalid function ARN: {text}")
            region, account, rest = parts[3], parts[4], parts[6:]
            if region != self.region or account != self.account_id:
                raise ResourceNotFound(f"Function not found: {text}")
        elif len(parts) >= 3 and parts[1] == "function":
            # <account>:function:<name>[:<qualifier>]
            if parts[0] != self.account_id or len(parts) > 4:
                raise ResourceNotFound(f"Function not found: {text}")
            rest = parts[2:]
        else:
            if len(parts) > 2:
                raise InvalidParameterValue(f"Invalid function name: {text}")
            rest = parts
        name = rest[0]
        derived = rest[1] if len(rest) > 1 else None
        if not NAME_RE.match(name):
            raise InvalidParameterValue(f"Invalid function name: {name}")
        if derived is not None and not QUALIFIER_RE.match(derived):
            raise InvalidParameterValue(f"Invalid qualifier: {derived}")
        if derived is not None and qualifier is not None and derived != qualifier:
            raise InvalidParameterValue(
                "The derived qualifier from the function name does not match the specified "
                "qualifier.")
        return FunctionRef(name, qualifier if qualifier is not None else derived)
