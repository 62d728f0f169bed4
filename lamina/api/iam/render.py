"""IAM's output shapes (``User``, ``Role``, ``Policy``...) from stored records.

Policy documents go out URL-encoded, as IAM sends them (botocore decodes them into dicts).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar
from urllib.parse import quote

from lamina.store.iam import AccessKeyRecord, PolicyRecord, RoleRecord, UserRecord

T = TypeVar("T")
DEFAULT_VERSION = "v1"


def encoded(document: str) -> str:
    return quote(document, safe="")


def tag_list(pairs: Sequence[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in pairs]


def user(record: UserRecord, arn: str, tags: bool = True) -> dict[str, Any]:
    """A ``User``; lists (ListUsers) leave the tags out, as IAM does."""
    out: dict[str, Any] = {"Path": record.path, "UserName": record.name, "UserId": record.id,
                           "Arn": arn, "CreateDate": record.created}
    if record.tags and tags:
        out["Tags"] = tag_list(record.tags)
    return out


def role(record: RoleRecord, arn: str, listed: bool = False) -> dict[str, Any]:
    """A ``Role``; lists (ListRoles) leave out tags and last use, as IAM does."""
    out: dict[str, Any] = {
        "Path": record.path, "RoleName": record.name, "RoleId": record.id, "Arn": arn,
        "CreateDate": record.created,
        "AssumeRolePolicyDocument": encoded(record.trust_policy),
        "MaxSessionDuration": record.max_session_duration}
    if not listed:
        out["RoleLastUsed"] = {}
    if record.description:
        out["Description"] = record.description
    if record.tags and not listed:
        out["Tags"] = tag_list(record.tags)
    return out


def policy(record: PolicyRecord) -> dict[str, Any]:
    out: dict[str, Any] = {
        "PolicyName": record.name, "PolicyId": record.id, "Arn": record.arn,
        "Path": record.path, "DefaultVersionId": DEFAULT_VERSION,
        "AttachmentCount": record.attachments, "PermissionsBoundaryUsageCount": 0,
        "IsAttachable": True, "CreateDate": record.created, "UpdateDate": record.updated}
    if record.description:
        out["Description"] = record.description
    if record.tags:
        out["Tags"] = tag_list(record.tags)
    return out


def access_key(record: AccessKeyRecord) -> dict[str, Any]:
    return {"UserName": record.user_name, "AccessKeyId": record.access_key_id,
            "Status": record.status, "CreateDate": record.created}


def page(items: Sequence[T], params: dict[str, Any], key: Any,
         member: str) -> dict[str, Any]:
    """IAM's ``Marker``/``MaxItems`` paging over a sorted list; ``key`` names an item."""
    marker = params.get("Marker")
    start = 0
    if marker:
        names = [key(i) for i in items]
        start = names.index(marker) + 1 if marker in names else len(items)
    limit = params.get("MaxItems") or 100
    chunk = list(items[start:start + limit])
    out: dict[str, Any] = {member: chunk, "IsTruncated": start + limit < len(items)}
    if out["IsTruncated"]:
        out["Marker"] = key(chunk[-1])
    return out
