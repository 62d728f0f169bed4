"""How CLI commands find and talk to a running lamina: the endpoint from ``server.json`` in the
data dir (or the host/port settings), the credentials from ``credentials.json`` (or the
``LAMINA_ROOT_*`` settings), and boto3 — the same HTTP API every other client uses.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import botocore.auth
import botocore.awsrequest
import botocore.config
import botocore.credentials

from lamina.identity.root import read_stored
from lamina.settings import Settings


def endpoint(settings: Settings) -> str:
    try:
        document = json.loads((settings.data_dir / "server.json").read_text())
        return str(document["endpoint"])
    except (FileNotFoundError, ValueError, KeyError):
        host = "127.0.0.1" if settings.host in ("0.0.0.0", "") else settings.host
        return f"http://{host}:{settings.port}"


def credentials(settings: Settings) -> tuple[str, str]:
    if settings.root_access_key_id and settings.root_secret_access_key:
        return settings.root_access_key_id, settings.root_secret_access_key
    stored = read_stored(settings.data_dir)
    if stored is None:
        raise SystemExit(f"lamina: no credentials in {settings.data_dir}/credentials.json; "
                         "start the server first (make serve) or set "
                         "LAMINA_ROOT_ACCESS_KEY_ID / LAMINA_ROOT_SECRET_ACCESS_KEY")
    return stored.access_key_id, stored.secret_access_key


def lambda_client(settings: Settings, read_timeout: int = 960) -> Any:
    key, secret = credentials(settings)
    return boto3.client(
        "lambda", endpoint_url=endpoint(settings), region_name=settings.region,
        aws_access_key_id=key, aws_secret_access_key=secret,
        config=botocore.config.Config(read_timeout=read_timeout, retries={"max_attempts": 1}),
    )


def signed_get(settings: Settings, path: str) -> Any:
    """GET one of lamina's own signed JSON paths (``/_lamina/...``)."""
    import urllib.request

    key, secret = credentials(settings)
    request = botocore.awsrequest.AWSRequest(method="GET", url=endpoint(settings) + path)
    botocore.auth.SigV4Auth(botocore.credentials.Credentials(key, secret), "lambda",
                            settings.region).add_auth(request)
    prepared = urllib.request.Request(request.url, headers=dict(request.headers.items()))
    with urllib.request.urlopen(prepared, timeout=30) as response:
        return json.loads(response.read())
