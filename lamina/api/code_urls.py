"""Short-lived download URLs for deployment packages, like the presigned S3 URL that
GetFunction's ``Code.Location`` holds on AWS: anyone with the URL may fetch the zip, without
credentials, until it expires.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path
from urllib.parse import quote

from lamina.http.types import Request, Response
from lamina.store.api import BlobStore

PREFIX = "/_lamina/code/"
KEY_FILE = "code-url.key"


def load_key(data_dir: Path) -> bytes:
    path = data_dir / KEY_FILE
    try:
        return path.read_bytes()
    except FileNotFoundError:
        key = secrets.token_bytes(32)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(key)
        return key


class CodeUrls:
    def __init__(self, key: bytes, blobs: BlobStore, ttl_seconds: int) -> None:
        self._key = key
        self._blobs = blobs
        self._ttl = ttl_seconds

    def _signature(self, name: str, digest: str, expires: int) -> str:
        message = f"{name}\n{digest}\n{expires}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def url(self, host: str, name: str, digest: str) -> str:
        expires = int(time.time()) + self._ttl
        signature = self._signature(name, digest, expires)
        return (f"http://{host}{PREFIX}{quote(name)}/{digest}.zip"
                f"?Expires={expires}&Signature={signature}")

    def serve(self, request: Request) -> Response:
        name, _, file_name = request.path[len(PREFIX):].partition("/")
        digest = file_name.removesuffix(".zip")
        expires_text = request.query_value("Expires") or ""
        signature = request.query_value("Signature") or ""
        forbidden = Response(403, [("content-type", "application/xml")],
                             b"<Error><Code>AccessDenied</Code>"
                             b"<Message>Request has expired or is invalid</Message></Error>")
        if not expires_text.isdigit() or int(expires_text) < time.time():
            return forbidden
        expected = self._signature(name, digest, int(expires_text))
        if not hmac.compare_digest(expected, signature) or not self._blobs.has(digest):
            return forbidden
        return Response(200, [("content-type", "application/zip")], self._blobs.read(digest))
