"""SigV4 verification against requests signed by botocore, as boto3 sends them."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from botocore import UNSIGNED
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from test_protocol_support import (
    ACCESS_KEY,
    ENDPOINT,
    REGION,
    SECRET_KEY,
    Harness,
    signed_request,
    to_lamina_request,
)

from lamina.api.auth import IncompleteSignature, Principal, SigV4Verifier
from lamina.errors import InvalidSignature, MissingAuthenticationToken, UnrecognizedClient
from lamina.http.types import Request

MISMATCH = ("The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method. Consult the service "
            "documentation for details.")


def error_of(call: Any, **params: Any) -> dict[str, Any]:
    with pytest.raises(ClientError) as caught:
        call(**params)
    return caught.value.response


def verifier(clock: float | None = None, **kwargs: Any) -> SigV4Verifier:
    kwargs.setdefault("clock", (lambda: clock) if clock is not None else time.time)
    return SigV4Verifier({ACCESS_KEY: SECRET_KEY}.get, REGION, **kwargs)


# Through boto3 ----------------------------------------------------------------------------

def test_a_good_signature_yields_the_principal() -> None:
    harness = Harness()
    harness.client().invoke(FunctionName="f", Payload=b'{"a": 1}')
    assert harness.last.principal == Principal(ACCESS_KEY, "lambda", None)


def test_the_session_token_is_reported() -> None:
    harness = Harness()
    harness.client(session_token="token-123").list_functions()
    assert harness.last.principal == Principal(ACCESS_KEY, "lambda", "token-123")


def test_wrong_secret_is_an_invalid_signature() -> None:
    harness = Harness()
    client = harness.client(secret_key="not-the-secret")
    response = error_of(client.list_functions)
    assert response["Error"] == {"Code": "InvalidSignatureException", "Message": MISMATCH}
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_unknown_key_is_an_unrecognized_client() -> None:
    harness = Harness()
    response = error_of(harness.client(access_key="AKIDUNKNOWN").list_functions)
    assert response["Error"] == {"Code": "UnrecognizedClientException",
                                 "Message": "The security token included in the request is "
                                            "invalid."}
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_no_authentication_at_all() -> None:
    harness = Harness()
    response = error_of(harness.client(signature_version=UNSIGNED).list_functions)
    assert response["Error"] == {"Code": "MissingAuthenticationTokenException",
                                 "Message": "Missing Authentication Token"}
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_a_stale_request_is_expired() -> None:
    """Signed now, checked ten minutes later (the server's clock runs ahead)."""
    harness = Harness(clock=lambda: time.time() + 600)
    message = error_of(harness.client().list_functions)["Error"]["Message"]
    assert re.fullmatch(r"Signature expired: \d{8}T\d{6}Z is now earlier than \d{8}T\d{6}Z "
                        r"\(\d{8}T\d{6}Z - 5 min\.\)", message), message


def test_a_request_from_the_future_is_not_yet_current() -> None:
    harness = Harness(clock=lambda: time.time() - 600)
    message = error_of(harness.client().list_functions)["Error"]["Message"]
    assert re.fullmatch(r"Signature not yet current: \d{8}T\d{6}Z is still later than "
                        r"\d{8}T\d{6}Z \(\d{8}T\d{6}Z \+ 5 min\.\)", message), message


def test_skew_inside_the_window_is_fine() -> None:
    harness = Harness(clock=lambda: time.time() + 240)
    harness.client().list_functions()
    assert harness.last.error is None


def tamper_sent(client: Any, change: Any) -> None:
    """Change the request after botocore signed it, on its way out."""
    client.meta.events.register_first("before-send.lambda.*",
                                      lambda request, **_: change(request))


@pytest.mark.parametrize("change", [
    lambda r: setattr(r, "body", r.body.replace(b"1", b"2")),
    lambda r: setattr(r, "url", r.url.replace("/functions/f/", "/functions/g/")),
    lambda r: setattr(r, "url", r.url + "&Qualifier=2"),
    lambda r: r.headers.__setitem__("X-Amz-Invocation-Type", "Event"),
    lambda r: r.headers.__setitem__("X-Amz-Date", "20200101T000000Z"),
], ids=["body", "path", "query", "signed-header", "date"])
def test_anything_changed_after_signing_breaks_the_signature(change: Any) -> None:
    harness = Harness()
    client = harness.client()
    tamper_sent(client, change)
    response = error_of(client.invoke, FunctionName="f", Qualifier="1",
                        InvocationType="RequestResponse", Payload=b'{"n": 1}')
    assert response["Error"]["Code"] == "InvalidSignatureException"


def test_an_unsigned_header_may_change() -> None:
    harness = Harness()
    client = harness.client()
    tamper_sent(client, lambda r: r.headers.__setitem__("User-Agent", "something else"))
    client.list_functions()
    assert harness.last.error is None


def test_a_region_outside_the_scope() -> None:
    response = error_of(Harness().client(region="eu-west-1").list_functions)
    assert response["Error"] == {
        "Code": "InvalidSignatureException",
        "Message": "Credential should be scoped to a valid region, not 'eu-west-1'. "}


@pytest.mark.parametrize(("authorization", "fragment"), [
    ("AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/lambda/aws4_request",
     "Authorization header requires 'Signature' parameter. Authorization header requires "
     "'SignedHeaders' parameter."),
    ("Bearer abc", "Authorization header requires 'Credential' parameter."),
    ("AWS4-HMAC-SHA256 Credential=AKID/us-east-1/lambda/aws4_request, SignedHeaders=host, "
     "Signature=00", "Credential must have exactly 5 slash-delimited elements"),
    ("AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/lambda/aws4_request, "
     "SignedHeaders=x-amz-date, Signature=00", "'Host' or ':authority' must be a 'SignedHeader'"),
])
def test_a_malformed_authorization_is_an_incomplete_signature(authorization: str,
                                                              fragment: str) -> None:
    harness = Harness()
    client = harness.client()
    tamper_sent(client, lambda r: r.headers.__setitem__("Authorization", authorization))
    response = error_of(client.list_functions)
    assert response["Error"]["Code"] == "IncompleteSignatureException"
    assert fragment in response["Error"]["Message"]
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 400


# Presigned URLs ---------------------------------------------------------------------------

def presigned(client: Any, method: str = "get_function", expires: int = 60,
              **params: Any) -> Request:
    url = client.generate_presigned_url(method, Params=params or {"FunctionName": "f"},
                                        ExpiresIn=expires)
    return to_lamina_request(AWSRequest(method="GET", url=url).prepare())


def test_a_presigned_url_is_verified_and_routed() -> None:
    harness = Harness()
    arn = "arn:aws:lambda:us-east-1:123456789012:function:f"
    response = harness.handle(presigned(harness.client(), FunctionName=arn, Qualifier="live"))
    assert response.status == 200, response.body
    assert harness.last.principal == Principal(ACCESS_KEY, "lambda", None)
    assert harness.last.params == {"FunctionName": arn, "Qualifier": "live"}


def test_a_presigned_query_is_canonicalised_like_the_signer_did() -> None:
    harness = Harness()
    request = presigned(harness.client(), "list_functions", Marker="a b+c/=~", MaxItems=5)
    assert harness.handle(request).status == 200
    assert harness.last.params == {"Marker": "a b+c/=~", "MaxItems": 5}


def test_an_expired_presigned_url() -> None:
    request = presigned(Harness().client(), expires=60)
    with pytest.raises(InvalidSignature, match="Signature expired"):
        verifier(clock=time.time() + 120).verify(request)


def test_a_tampered_presigned_url() -> None:
    request = presigned(Harness().client())
    request.query_string = request.query_string.replace("X-Amz-Expires=60", "X-Amz-Expires=600")
    with pytest.raises(InvalidSignature, match="does not match"):
        verifier().verify(request)


def test_presigned_with_missing_parameters() -> None:
    request = presigned(Harness().client())
    request.query_string = re.sub(r"&X-Amz-Signature=[0-9a-f]+", "", request.query_string)
    with pytest.raises(IncompleteSignature, match="AWS query-string parameters must include"):
        verifier().verify(request)


# Replays, caches and corner cases ----------------------------------------------------------

# Small bodies are kept and compared in the LRU, large ones by their hash: both ways.
BODIES = [b'{"a": 1}', b'{"a": "' + b"x" * 10_000 + b'"}']


@pytest.mark.parametrize("body", BODIES, ids=["small", "large"])
def test_an_identical_replay_is_accepted_without_recomputing(body: bytes) -> None:
    check = verifier()
    request = signed_request("POST", "/2015-03-31/functions/f/invocations", body=body)
    first = check.verify(request)
    assert check.replays_accepted == 0
    assert check.verify(request) == first
    assert check.replays_accepted == 1


@pytest.mark.parametrize("body", BODIES, ids=["small", "large"])
def test_a_replayed_authorization_on_another_request_is_checked_in_full(body: bytes) -> None:
    check = verifier()
    request = signed_request("POST", "/2015-03-31/functions/f/invocations", body=body)
    check.verify(request)
    for changed in (
        Request(request.method, "/2015-03-31/functions/g/invocations", request.query_string,
                request.headers, request.body, None, request.raw_headers),
        Request(request.method, request.path, "Qualifier=1", request.headers, request.body,
                None, request.raw_headers),
        Request(request.method, request.path, request.query_string, request.headers,
                body.replace(b'"', b"'", 1), None, request.raw_headers),
        Request("PUT", request.path, request.query_string, request.headers, request.body,
                None, request.raw_headers),
    ):
        with pytest.raises(InvalidSignature):
            check.verify(changed)
    assert check.replays_accepted == 0


def test_a_replay_outside_the_window_is_refused() -> None:
    now = [time.time()]
    check = SigV4Verifier({ACCESS_KEY: SECRET_KEY}.get, REGION, clock=lambda: now[0])
    request = signed_request("GET", "/2015-03-31/functions")
    check.verify(request)
    now[0] += 301
    with pytest.raises(InvalidSignature, match="Signature expired"):
        check.verify(request)


def test_a_replay_after_the_key_is_revoked_is_refused() -> None:
    secrets = {ACCESS_KEY: SECRET_KEY}
    check = SigV4Verifier(secrets.get, REGION)
    request = signed_request("GET", "/2015-03-31/functions")
    check.verify(request)
    del secrets[ACCESS_KEY]
    with pytest.raises(UnrecognizedClient):
        check.verify(request)


def test_a_wrong_service_in_the_scope() -> None:
    request = signed_request("GET", "/2015-03-31/functions", service="iam")
    with pytest.raises(InvalidSignature, match="Credential should be scoped to correct service: "
                                               "'lambda'"):
        verifier().verify(request)
    assert verifier(services=("lambda", "iam")).verify(request).service == "iam"


def test_nothing_to_verify() -> None:
    with pytest.raises(MissingAuthenticationToken, match=r"^Missing Authentication Token$"):
        verifier().verify(Request("GET", "/2015-03-31/functions", "", {"host": "h"}, b""))


def test_the_date_header_may_stand_in_for_x_amz_date() -> None:
    aws_request = AWSRequest(method="GET", url=f"{ENDPOINT}/2015-03-31/functions",
                             headers={"Date": "Mon, 01 Jan 2024 00:00:00 GMT"})
    SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "lambda", REGION).add_auth(aws_request)
    request = to_lamina_request(aws_request.prepare())
    assert "x-amz-date" not in request.headers
    assert verifier(clock=time.time()).verify(request).access_key_id == ACCESS_KEY


class _SignsEverything(SigV4Auth):
    """A client that signs headers botocore leaves out (older SDKs sign User-Agent)."""

    def headers_to_sign(self, request: AWSRequest) -> Any:
        headers = super().headers_to_sign(request)
        headers["user-agent"] = request.headers["User-Agent"]
        return headers


def test_exactly_the_signed_headers_are_used_even_ones_botocore_skips() -> None:
    aws_request = AWSRequest(method="GET", url=f"{ENDPOINT}/2015-03-31/functions",
                             headers={"User-Agent": "old-sdk/1.0"})
    _SignsEverything(Credentials(ACCESS_KEY, SECRET_KEY), "lambda", REGION).add_auth(aws_request)
    request = to_lamina_request(aws_request.prepare())
    assert "user-agent" in request.headers["authorization"]
    verifier().verify(request)


def test_repeated_headers_are_joined_as_sigv4_says() -> None:
    aws_request = AWSRequest(method="GET", url=f"{ENDPOINT}/2015-03-31/functions",
                             headers={"X-Custom": "a"})
    SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "lambda", REGION).add_auth(aws_request)
    request = to_lamina_request(aws_request.prepare())
    # The same header twice on the wire ("a" then "b") is not what was signed ("a").
    raw = [*request.raw_headers, ("X-Custom", "b")]
    twice = Request(request.method, request.path, request.query_string, request.headers,
                    request.body, None, raw)
    with pytest.raises(InvalidSignature):
        verifier().verify(twice)
    verifier().verify(request)


def test_a_declared_body_hash_must_be_the_bodys() -> None:
    request = signed_request("POST", "/2015-03-31/functions/f/invocations", body=b"{}",
                             headers={"X-Amz-Content-SHA256": "0" * 64})
    with pytest.raises(InvalidSignature):
        verifier().verify(request)


def test_verification_cost() -> None:
    """Fresh and replayed verification of an Invoke stay far below a millisecond."""
    check = verifier()
    requests = [signed_request("POST", "/2015-03-31/functions/f/invocations",
                               f"Qualifier={i}", b'{"k": 1}') for i in range(2000)]
    start = time.perf_counter()
    for request in requests:
        check.verify(request)
    fresh = (time.perf_counter() - start) / len(requests)
    start = time.perf_counter()
    for request in requests:
        check.verify(request)
    replay = (time.perf_counter() - start) / len(requests)
    assert check.replays_accepted == len(requests)
    assert fresh < 300e-6 and replay < 100e-6, (fresh, replay)
