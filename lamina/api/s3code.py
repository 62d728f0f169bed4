"""Deployment packages from an S3-compatible object store (``Code.S3Bucket`` / ``S3Key`` /
``S3ObjectVersion``, and the same in ``PublishLayerVersion``'s ``Content``).

The endpoint is ``LAMINA_S3_ENDPOINT`` (MinIO, Ceph, moto, AWS itself...); requests are signed
with ``LAMINA_S3_ACCESS_KEY_ID`` / ``LAMINA_S3_SECRET_ACCESS_KEY`` when set, unsigned otherwise.
Failures answer as Lambda does: ``InvalidParameterValueException`` naming the S3 error code.
"""

from __future__ import annotations

import asyncio
from typing import Any

from lamina.api.code import MAX_ZIPPED_BYTES
from lamina.errors import InvalidParameterValue, RequestTooLarge
from lamina.settings import Settings

NOT_CONFIGURED = ("Code from S3 needs an S3-compatible endpoint (LAMINA_S3_ENDPOINT), which is "
                  "not configured.")


def _client(settings: Settings) -> Any:
    import boto3
    import botocore.config
    from botocore import UNSIGNED

    signed = settings.s3_access_key_id and settings.s3_secret_access_key
    config = botocore.config.Config(
        signature_version=None if signed else UNSIGNED, retries={"max_attempts": 2},
        connect_timeout=10, read_timeout=60, s3={"addressing_style": "path"})
    return boto3.client(
        "s3", endpoint_url=settings.s3_endpoint, region_name=settings.region, config=config,
        aws_access_key_id=settings.s3_access_key_id or None,
        aws_secret_access_key=settings.s3_secret_access_key or None)


def _get(settings: Settings, bucket: str, key: str, version: str | None) -> bytes:
    import botocore.exceptions

    kwargs = {"Bucket": bucket, "Key": key}
    if version:
        kwargs["VersionId"] = version
    try:
        response = _client(settings).get_object(**kwargs)
        if int(response.get("ContentLength") or 0) > MAX_ZIPPED_BYTES:
            raise RequestTooLarge(f"Zipped size must be smaller than {MAX_ZIPPED_BYTES} bytes.")
        return bytes(response["Body"].read())
    except botocore.exceptions.ClientError as exc:
        error = exc.response.get("Error", {})
        raise InvalidParameterValue(
            f"Error occurred while GetObject. S3 Error Code: {error.get('Code')}. S3 Error "
            f"Message: {error.get('Message')}") from None
    except botocore.exceptions.BotoCoreError as exc:
        raise InvalidParameterValue(
            f"Error occurred while GetObject from {settings.s3_endpoint}: {exc}") from None


async def fetch(settings: Settings, bucket: str | None, key: str | None,
                version: str | None = None) -> bytes:
    """The object's bytes, or Lambda's error for a missing endpoint, bucket or key."""
    if not settings.s3_endpoint:
        raise InvalidParameterValue(NOT_CONFIGURED)
    if not bucket or not key:
        raise InvalidParameterValue("Both S3Bucket and S3Key are required for code from S3.")
    return await asyncio.to_thread(_get, settings, bucket, key, version)
