"""Property tests at the API: random bodies, headers, paths, form parameters and zip files,
unsigned and signed. Whatever arrives, the answer is never a 5xx, the server never dies, and
what was stored before is still there and still runs."""

from __future__ import annotations

import http.client
import io
import json
import urllib.parse
import warnings
import zipfile
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import ROLE, create, function_zip, invoke

from lamina.api.model import service_model

FAST = settings(max_examples=120, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])
LAMBDA_PATHS = ["/2015-03-31/functions/", "/2015-03-31/functions/{name}",
                "/2015-03-31/functions/{name}/invocations", "/2015-03-31/functions/{name}/policy",
                "/2015-03-31/functions/{name}/configuration", "/2015-03-31/functions/{name}/code",
                "/2015-03-31/functions/{name}/versions", "/2018-10-31/layers/x/versions",
                "/2016-08-19/account-settings/", "/", "/_lamina/health", "/_lamina/stats",
                "/2015-03-31/functions/{name}/aliases", "/%ff%fe", "/2015-03-31/functions/%00"]
IAM_ACTIONS = sorted(service_model("iam").operation_names)[:80] + \
    sorted(service_model("sts").operation_names) + ["", "Nope"]


class Wire:
    """One keep-alive connection to the server, re-opened when the server closes it."""

    def __init__(self, endpoint: str) -> None:
        parsed = urllib.parse.urlsplit(endpoint)
        self.host, self.port = parsed.hostname or "127.0.0.1", parsed.port or 80
        self.connection: http.client.HTTPConnection | None = None

    def send(self, method: str, path: str, headers: dict[str, str], body: bytes) -> int:
        for _attempt in (1, 2):
            if self.connection is None:
                self.connection = http.client.HTTPConnection(self.host, self.port, timeout=60)
            try:
                self.connection.request(method, path, body=body, headers=headers)
                response = self.connection.getresponse()
                response.read()
                if response.getheader("connection", "").lower() == "close":
                    self.close()
                return response.status
            except (http.client.HTTPException, ConnectionError):
                self.close()
        raise AssertionError(f"the server stopped answering after {method} {path}")

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None


@pytest.fixture(scope="module")
def wire(server: Any) -> Iterator[Wire]:
    connection = Wire(server.endpoint)
    yield connection
    connection.close()


@pytest.fixture(scope="module")
def keeper(lam: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    """A function stored before the storm; it must come out of it unchanged and working."""
    name = create(lam, function_zip("hello"), Environment={"Variables": {"KEY": "v"}})
    before = lam.get_function_configuration(FunctionName=name)
    yield name, before
    after = lam.get_function_configuration(FunctionName=name)
    assert after["RevisionId"] == before["RevisionId"] and after["CodeSha256"] == \
        before["CodeSha256"]
    assert invoke(lam, name)[1] == {"hello": "world"}


@pytest.fixture(scope="module")
def target(lam: Any) -> str:
    """The function the storm's signed requests name when its generated name is empty. Not
    the keeper: a signed request can be a valid one (an empty ``PUT .../configuration`` is an
    UpdateFunctionConfiguration, a ``DELETE`` a DeleteFunction), which may change it."""
    return create(lam, function_zip("hello"))


def signed(server: Any, service: str, method: str, path: str, body: bytes,
           headers: dict[str, str]) -> dict[str, str]:
    key, secret = server.credentials()
    request = AWSRequest(method=method, url=server.endpoint + path, data=body,
                         headers=headers)
    SigV4Auth(Credentials(key, secret), service, "us-east-1").add_auth(request)
    return dict(request.prepare().headers)


_header_names = st.sampled_from(["content-type", "x-amz-invocation-type", "x-amz-log-type",
                                 "x-amz-client-context", "expect", "x-amz-date",
                                 "authorization", "content-encoding", "x-amz-security-token",
                                 "transfer-encoding", "x-amzn-trace-id"]) | \
    st.text(st.characters(min_codepoint=97, max_codepoint=122), min_size=1, max_size=10)
_header_values = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40)
_bodies = st.binary(max_size=2048) | st.builds(
    lambda d: json.dumps(d).encode(),
    st.dictionaries(st.sampled_from(["FunctionName", "Runtime", "Role", "Handler", "Code",
                                     "MemorySize", "Timeout", "Environment", "Layers",
                                     "StatementId", "Action", "Principal", "Qualifier"]),
                    st.none() | st.integers() | st.text(max_size=30) | st.booleans()
                    | st.lists(st.text(max_size=5), max_size=3)
                    | st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3),
                    max_size=6))


@FAST
@given(method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"]),
       path=st.sampled_from(LAMBDA_PATHS), name=st.text(max_size=20),
       headers=st.dictionaries(_header_names, _header_values, max_size=5), body=_bodies,
       sign=st.booleans())
def test_random_requests_never_get_a_5xx(server: Any, wire: Wire, keeper: Any, target: str,
                                         method: str, path: str, name: str,
                                         headers: dict[str, str], body: bytes,
                                         sign: bool) -> None:
    # Unsigned requests, which nothing may obey, go to the keeper; signed ones to the target.
    path = path.replace("{name}", urllib.parse.quote(name, safe="") or
                        (target if sign else keeper[0]))
    headers = {k: v for k, v in headers.items() if k not in ("transfer-encoding",)}
    if sign and path != "/":
        headers = signed(server, "lambda", method, path, body, headers)
    status = wire.send(method, path, headers, body)
    assert status < 500 or (status == 501 and sign), (method, path, status)


@FAST
@given(action=st.sampled_from(IAM_ACTIONS),
       params=st.dictionaries(st.sampled_from(["UserName", "RoleName", "PolicyName",
                                               "PolicyDocument", "AssumeRolePolicyDocument",
                                               "PolicyArn", "RoleArn", "RoleSessionName",
                                               "Path", "MaxItems", "Marker", "AccessKeyId",
                                               "Tags.member.1.Key", "DurationSeconds",
                                               "Policy", "Status"]),
                              st.text(max_size=40), max_size=5),
       service=st.sampled_from(["iam", "sts"]))
def test_random_iam_and_sts_calls_never_get_a_5xx(server: Any, wire: Wire, action: str,
                                                   params: dict[str, str],
                                                   service: str) -> None:
    version = "2011-06-15" if service == "sts" else "2010-05-08"
    fields = {"Action": action, "Version": version, **params}
    if "UserName" in fields:  # keep the storm away from the tests' own entities
        fields["UserName"] = "fuzz-" + fields["UserName"][:50]
    body = urllib.parse.urlencode(fields).encode()
    headers = signed(server, service, "POST", "/", body,
                     {"Content-Type": "application/x-www-form-urlencoded"})
    status = wire.send("POST", "/", headers, body)
    assert status < 500 or status == 501, (action, params, status)


def _zip(entries: list[tuple[str, bytes]], stored: bool) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(
            buffer, "w", zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED) as archive:
        warnings.simplefilter("ignore")  # duplicate names are part of the point
        for name, data in entries:
            # zipfile itself cannot write a name that is empty once it is cut at a NUL (as
            # zipfile cuts it) and its slashes are gone
            archive.writestr(name if name.split("\x00", 1)[0].strip("/") else "x", data)
    return buffer.getvalue()


_zips = st.binary(max_size=4096) | st.builds(
    _zip, st.lists(st.tuples(st.sampled_from(["app.py", "../evil.py", "/abs.py", "a/../../b",
                                               "dir/", "app.py\x00x", "ok.txt", "x" * 300])
                             | st.text(max_size=20),
                             st.binary(max_size=256)), max_size=5),
    st.booleans()) | st.builds(
    lambda data, cut: data[:cut], st.just(function_zip("hello")), st.integers(0, 2000))


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(package=_zips)
def test_random_zip_files_never_get_a_5xx(server: Any, wire: Wire, keeper: Any,
                                          package: bytes) -> None:
    import base64
    import uuid
    name = f"fuzz-{uuid.uuid4().hex[:12]}"
    body = json.dumps({"FunctionName": name, "Runtime": "python3.11", "Role": ROLE,
                       "Handler": "app.handler",
                       "Code": {"ZipFile": base64.b64encode(package).decode()}}).encode()
    path = "/2015-03-31/functions"
    headers = signed(server, "lambda", "POST", path, body, {"Content-Type": "application/json"})
    status = wire.send("POST", path, headers, body)
    assert status < 500 or status == 502, status  # 502: InvalidZipFileException, as on AWS
    if status == 201:
        delete = f"/2015-03-31/functions/{name}"
        wire.send("DELETE", delete, signed(server, "lambda", "DELETE", delete, b"", {}), b"")
