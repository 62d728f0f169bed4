"""The identity layer's own failure: a policy document IAM would refuse.

The API layer turns it into ``MalformedPolicyDocument`` (IAM) or Lambda's
``InvalidParameterValueException``; its message is the reason, in IAM's words where known.
"""

from __future__ import annotations


class MalformedPolicy(ValueError):
    pass


from lamina.errors import _UserError  # noqa: E402


class ExpiredToken(_UserError):
    """Temporary credentials past their expiry (``ExpiredToken`` on IAM and STS)."""

    code, status = "ExpiredTokenException", 403
