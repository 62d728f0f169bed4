"""A boto3 client wired, without a server, to lamina's protocol layer; and tests of the wiring.

boto3 serialises and signs each call for real; a ``before-send`` hook takes the prepared
request, turns it into the ``Request`` lamina's HTTP server would hand over (adding ``Host`` and
``Content-Length`` as urllib3 would), runs resolve -> verify -> parse -> validate, asks a
stand-in operation for an output, and hands boto3 the ``Response`` from ``serialize_*`` as its
HTTP answer. So boto3's signing, its response parsing and its exception classes are all real.
"""

from __future__ import annotations

import dataclasses
import io
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.config import Config
from botocore.model import OperationModel

from lamina.api.auth import Principal, SigV4Verifier
from lamina.api.model import resolve
from lamina.api.parse import parse_request
from lamina.api.serialize import serialize_error, serialize_response
from lamina.api.validate import validate
from lamina.http.types import Request, Response

ENDPOINT = "http://127.0.0.1:9000"
REGION = "us-east-1"
ACCESS_KEY = "AKIDLAMINATEST000001"
SECRET_KEY = "lamina-test-secret-key/0123456789abcdefgh"

Operation = Callable[[str, dict[str, Any]], dict[str, Any] | None]
_SESSION = boto3.session.Session()  # one session: its loaded models make new clients cheap


@dataclasses.dataclass
class Seen:
    """One request as it went through the layer."""

    request: Request
    operation: OperationModel | None = None
    labels: dict[str, str] | None = None
    principal: Principal | None = None
    params: dict[str, Any] | None = None
    response: Response | None = None
    error: BaseException | None = None


class _Raw(io.BytesIO):
    """What botocore reads an HTTP body from (urllib3's ``stream``/``read``)."""

    def stream(self, amt: int | None = None, decode_content: bool = True) -> Any:
        while chunk := self.read(amt or 65536):
            yield chunk


def to_lamina_request(prepared: AWSPreparedRequest) -> Request:
    """The request lamina's server would build from what boto3 is about to send."""
    url = urlsplit(prepared.url)
    body = prepared.body
    if body is None:
        body = b""
    elif hasattr(body, "read"):
        body = body.read()
    elif isinstance(body, str):
        body = body.encode()
    raw_headers = [("Host", url.netloc)]
    for name, value in prepared.headers.items():
        raw_headers.append((name, value.decode() if isinstance(value, bytes) else value))
    if body or prepared.method in ("POST", "PUT"):
        raw_headers.append(("Content-Length", str(len(body))))
    headers = {name.lower(): value for name, value in raw_headers}
    return Request(prepared.method, url.path, url.query, headers, bytes(body), None,
                   raw_headers)


def to_aws_response(url: str, response: Response) -> AWSResponse:
    headers = dict(response.headers)
    headers["Content-Length"] = str(len(response.body))
    return AWSResponse(url, response.status, headers, _Raw(response.body))


class Harness:
    """The protocol layer between boto3 and a stand-in operation."""

    def __init__(self, secrets: dict[str, str] | None = None,
                 clock: Callable[[], float] | None = None) -> None:
        self.secrets = dict(secrets or {ACCESS_KEY: SECRET_KEY})
        kwargs: dict[str, Any] = {} if clock is None else {"clock": clock}
        self.verifier = SigV4Verifier(self.secrets.get, REGION, **kwargs)
        self.outputs: dict[str, dict[str, Any] | BaseException] = {}
        self.operation: Operation | None = None
        self.seen: list[Seen] = []

    def client(self, access_key: str = ACCESS_KEY, secret_key: str = SECRET_KEY,
               session_token: str | None = None, region: str = REGION,
               **config: Any) -> Any:
        client = _SESSION.client(
            "lambda", endpoint_url=ENDPOINT, region_name=region,
            aws_access_key_id=access_key, aws_secret_access_key=secret_key,
            aws_session_token=session_token,
            config=Config(retries={"total_max_attempts": 1}, **config))
        client.meta.events.register("before-send.lambda.*", self._send)
        return client

    @property
    def last(self) -> Seen:
        return self.seen[-1]

    def _send(self, request: AWSPreparedRequest, **_: Any) -> AWSResponse:
        response = self.handle(to_lamina_request(request))
        return to_aws_response(request.url, response)

    def handle(self, request: Request) -> Response:
        """resolve -> verify -> parse -> validate -> operation -> serialise."""
        seen = Seen(request)
        self.seen.append(seen)
        request_id = str(uuid.uuid4())
        try:
            seen.operation, seen.labels = resolve(request.method, request.path,
                                                  request.query_string)
            seen.principal = self.verifier.verify(request)
            seen.params = parse_request(seen.operation, seen.labels, request)
            validate(seen.operation, seen.params)
            output = self._output(seen.operation.name, seen.params)
            seen.response = serialize_response(seen.operation, output, request_id)
        except Exception as exc:  # every failure goes back to boto3 as lamina's app answers it
            seen.error = exc
            seen.response = serialize_error(exc, request_id)
        return seen.response

    def _output(self, name: str, params: dict[str, Any]) -> dict[str, Any] | None:
        canned = self.outputs.get(name)
        if isinstance(canned, BaseException):
            raise canned
        if canned is not None:
            return canned
        if self.operation is not None:
            return self.operation(name, params)
        return {}


@pytest.fixture
def harness() -> Harness:
    return Harness()


# Tests of the wiring itself ----------------------------------------------------------------

def test_a_boto3_call_goes_through_every_stage(harness: Harness) -> None:
    harness.outputs["GetAccountSettings"] = {"AccountLimit": {"ConcurrentExecutions": 1000}}
    answer = harness.client().get_account_settings()
    assert answer["AccountLimit"]["ConcurrentExecutions"] == 1000
    seen = harness.last
    assert seen.operation is not None and seen.operation.name == "GetAccountSettings"
    assert seen.principal == Principal(ACCESS_KEY, "lambda", None)
    assert seen.params == {}
    assert answer["ResponseMetadata"]["RequestId"] == dict(seen.response.headers)[
        "x-amzn-RequestId"]


def test_the_lamina_request_carries_what_a_server_would_see(harness: Harness) -> None:
    harness.client().get_function(FunctionName="f")
    request = harness.last.request
    assert request.headers["host"] == "127.0.0.1:9000"
    assert request.method == "GET" and request.path == "/2015-03-31/functions/f"
    assert request.headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=")


def signed_request(method: str, path: str, query: str = "", body: bytes = b"",
                   headers: dict[str, str] | None = None, access_key: str = ACCESS_KEY,
                   secret_key: str = SECRET_KEY, region: str = REGION,
                   service: str = "lambda") -> Request:
    """A hand-made request signed by botocore's SigV4Auth, for what boto3 would never send."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    url = f"{ENDPOINT}{path}" + (f"?{query}" if query else "")
    aws_request = AWSRequest(method=method, url=url, data=body, headers=dict(headers or {}))
    SigV4Auth(Credentials(access_key, secret_key), service, region).add_auth(aws_request)
    return to_lamina_request(aws_request.prepare())
