"""Helpers for the IAM tests: clients for a user's keys, policy documents, raw signed calls."""

from __future__ import annotations

import datetime
import json
import urllib.error
import urllib.request
from typing import Any
from unittest import mock

import boto3
import botocore.config
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


def doc(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow(action: Any, resource: Any = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def client_for(server: Any, service: str, key: str, secret: str,
               token: str | None = None) -> Any:
    return boto3.client(service, endpoint_url=server.endpoint, region_name="us-east-1",
                        aws_access_key_id=key, aws_secret_access_key=secret,
                        aws_session_token=token,
                        config=botocore.config.Config(retries={"max_attempts": 0}))


def user_with_key(iam: Any, name: str, *statements: dict[str, Any]) -> tuple[str, str]:
    iam.create_user(UserName=name)
    if statements:
        iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=doc(*statements))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]


def signed_request(server: Any, service: str, method: str, path: str, body: bytes,
                   key: str, secret: str, *, when: datetime.datetime | None = None,
                   headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """(status, body) of a request signed by botocore's signer, optionally as if at ``when``."""
    request = AWSRequest(method=method, url=server.endpoint + path, data=body,
                         headers=headers or {})
    signer = SigV4Auth(Credentials(key, secret), service, "us-east-1")
    if when is None:
        signer.add_auth(request)
    else:
        with mock.patch("botocore.auth.get_current_datetime", return_value=when):
            signer.add_auth(request)
    prepared = request.prepare()
    raw = urllib.request.Request(prepared.url, data=body or None, method=method,
                                 headers=dict(prepared.headers))
    try:
        with urllib.request.urlopen(raw, timeout=30) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as failure:
        return failure.code, failure.read()
