"""SigV4 verification of incoming requests, with botocore's own signer doing the arithmetic.

A server that re-implements the canonical request drifts from the clients on some corner
(double-encoded paths, query ordering, header folding) and then rejects valid requests. So the
canonical request and string to sign here come from ``botocore.auth.SigV4Auth`` itself, fed an
``AWSRequest`` rebuilt from what arrived: exactly the headers the client listed in
``SignedHeaders`` (not botocore's client-side pick), the request's own timestamp, and the body's
hash. Only the last step differs from signing: the result is compared with
``hmac.compare_digest`` instead of being attached.

Costs are kept off the Invoke path (measured: ~30 µs fresh, ~6 µs replayed, on a busy
2-core box). Derived signing keys (four chained HMACs) are cached per (secret, date, region,
service); the parsed Credential/SignedHeaders of an Authorization header, botocore's
canonical path and canonical query are remembered (they repeat per function and alias while
only the date and signature change). And a request that is byte-for-byte one already verified
(same Authorization header, method, path, query, signed header values and body hash) is accepted
from a small LRU while its timestamp is still inside the window, as AWS itself accepts
replays within the window; its secret is looked up again, so a revoked key stops working at once.

Failures carry AWS's exception names and messages: ``MissingAuthenticationTokenException``,
``UnrecognizedClientException``, ``InvalidSignatureException`` (wrong signature, expired or
future timestamp, wrong scope) and ``IncompleteSignatureException`` (malformed header).
"""

from __future__ import annotations

import calendar
import dataclasses
import email.utils
import hashlib
import hmac
import time
from collections import OrderedDict
from collections.abc import Callable, Collection
from typing import Any, NamedTuple
from urllib.parse import unquote

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest

from lamina.errors import (
    IncompleteSignature,
    InvalidSignature,
    MissingAuthenticationToken,
    UnrecognizedClient,
)
from lamina.http.types import Request

__all__ = ["IncompleteSignature", "Principal", "SigV4Verifier"]

ALGORITHM = "AWS4-HMAC-SHA256"
MAX_PRESIGN_EXPIRES = 7 * 24 * 3600
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_KEPT_BODY = 4096  # bodies up to this size are kept in the replay LRU and compared, not hashed
_MISMATCH = ("The request signature we calculated does not match the signature you provided. "
             "Check your AWS Secret Access Key and signing method. Consult the service "
             "documentation for details.")
_QUERY_PARAMS = ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Signature", "X-Amz-Date",
                 "X-Amz-SignedHeaders")


def _body_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest() if body else _EMPTY_SHA256


@dataclasses.dataclass(frozen=True, slots=True)
class Principal:
    """Who signed a request. ``service`` is the credential scope's service (``lambda`` today;
    ``iam``/``sts`` once served); ``session_token`` is the ``X-Amz-Security-Token`` presented,
    for the caller to check against the session it belongs to."""

    access_key_id: str
    service: str
    session_token: str | None = None


class _Scope(NamedTuple):
    """The Credential and SignedHeaders of an Authorization header: the same for every
    request a client signs on one day, so parsed once per distinct header head."""

    access_key_id: str
    date: str
    region: str
    service: str
    signed_headers: tuple[str, ...]


class _Signed(NamedTuple):
    """What the client claims: parsed from the Authorization header or the presigned query."""

    scope: _Scope
    signature: str
    timestamp: str  # ISO-8601 basic, as in the string to sign
    expires: int | None  # presigned only
    presigned: bool


class _Verified(NamedTuple):
    """An LRU entry: the request facts a replay must repeat exactly, and its validity."""

    method: str
    path: str
    query: str
    header_names: tuple[str, ...]
    header_values: tuple[str, ...]
    body_hash: str
    body: bytes | None  # the body itself when small: comparing it costs less than hashing
    secret: str
    epoch: float
    expires: int | None
    principal: Principal


class _HeaderSubset(dict[str, list[str]]):
    """Exactly the signed headers (lower-case name -> values in arrival order), in the form
    ``SigV4Auth.canonical_request`` reads: ``set(...)``, ``get_all``, and a case-insensitive
    ``in`` / ``[]`` for its ``X-Amz-Content-SHA256`` check."""

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and dict.__contains__(self, name.lower())

    def __getitem__(self, name: str) -> Any:
        return ",".join(dict.__getitem__(self, name.lower()))

    def get_all(self, name: str) -> list[str]:
        found = dict.get(self, name)  # botocore asks with the lower-case names it was given
        return found if found is not None else dict.get(self, name.lower(), [])


class _ServerSigner(SigV4Auth):
    """botocore's SigV4 signer, pointed at a received request.

    It signs exactly the headers handed to it (the client's ``SignedHeaders``, even ones
    botocore would skip such as ``user-agent``), hashes the body the server received, and
    uses a cached signing key instead of deriving one from a secret on every call.
    """

    def __init__(self, service: str, region: str) -> None:
        super().__init__(credentials=None, service_name=service, region_name=region)
        self._paths: dict[str, str] = {}
        self._queries: dict[tuple[tuple[str, str], ...], str] = {}

    def headers_to_sign(self, request: AWSRequest) -> Any:
        return request.headers

    def canonical_query_string(self, request: AWSRequest) -> str:
        # botocore's canonical query, remembered per decoded parameter list (``?Qualifier=live``
        # repeats on every invoke of an alias).
        key = tuple(request.params)
        found = self._queries.get(key)
        if found is None:
            if len(self._queries) >= 4096:
                self._queries.clear()
            found = self._queries[key] = super().canonical_query_string(request)
        return found

    def _normalize_url_path(self, path: str) -> str:
        # botocore's normalisation, remembered: an ARN path costs ~8 µs to quote, and the
        # Invoke path of a function repeats.
        found = self._paths.get(path)
        if found is None:
            if len(self._paths) >= 4096:
                self._paths.clear()
            found = self._paths[path] = super()._normalize_url_path(path)
        return found

    def payload(self, request: AWSRequest) -> str:
        return request.context["payload_hash"]

    def signature(self, string_to_sign: str, request: AWSRequest) -> str:
        return hmac.digest(request.context["signing_key"], string_to_sign.encode(),
                           "sha256").hex()


class SigV4Verifier:
    """Verifies SigV4-signed requests (Authorization header or presigned query string).

    ``lookup_secret(access_key_id)`` returns the secret access key, or ``None`` for a key that
    does not exist; it is called on every request, so it should be a dict look-up or cached.
    ``services`` are the credential-scope services accepted (``lambda``, ``iam``, ``sts``; IAM is
    global, so its requests may also be scoped to ``us-east-1`` whatever the region).
    ``clock`` is injectable for tests.
    """

    def __init__(self, lookup_secret: Callable[[str], str | None], region: str,
                 max_skew_seconds: int = 300, *, services: Collection[str] = ("lambda",),
                 replay_cache_size: int = 4096, clock: Callable[[], float] = time.time) -> None:
        self.lookup_secret = lookup_secret
        self.region = region
        self.max_skew = max_skew_seconds
        self.services = frozenset(services)
        self.clock = clock
        self._signers = {s: _ServerSigner(s, region) for s in self.services}
        self._keys: dict[tuple[str, str, str, str], bytes] = {}
        self._principals: dict[tuple[str, str, str | None], Principal] = {}
        self._verified: OrderedDict[str, _Verified] = OrderedDict()
        self._verified_max = replay_cache_size
        self.replays_accepted = 0  # requests accepted from the LRU, without a signature
        self._skew_text = (f"{max_skew_seconds // 60} min." if max_skew_seconds % 60 == 0
                           else f"{max_skew_seconds} sec.")

    # The one public method ------------------------------------------------------------------

    def verify(self, request: Request) -> Principal:
        """Return the request's ``Principal`` or raise the ``ServiceError`` AWS would answer."""
        authorization = request.headers.get("authorization")
        qs = request.query_string
        presigned = authorization is None and (
            "X-Amz-Signature=" in qs or "X-Amz-Algorithm=" in qs or "X-Amz-Credential=" in qs)
        cache_key = authorization if authorization is not None else (
            request.query_string if presigned else None)
        if cache_key is None:
            raise MissingAuthenticationToken("Missing Authentication Token")
        known = self._verified.get(cache_key)
        if known is not None:
            principal = self._replayed(known, request)
            if principal is not None:
                self._verified.move_to_end(cache_key)
                self.replays_accepted += 1
                return principal
        body_hash = _body_hash(request.body)
        query = _split_query(request.query_string)
        if authorization is not None:
            signed = _parse_authorization(authorization, request.headers)
        else:
            signed = _parse_presigned(query)
        scope = signed.scope
        epoch = self._check_time(signed)
        self._check_scope(signed)
        secret = self.lookup_secret(scope.access_key_id)
        if secret is None:
            raise UnrecognizedClient("The security token included in the request is invalid.")
        headers, header_values = _signed_values(request, scope.signed_headers)
        expected = self._signature(request, signed, query, headers, body_hash, secret)
        if not hmac.compare_digest(expected, signed.signature):
            raise InvalidSignature(_MISMATCH)
        token = (request.headers.get("x-amz-security-token") if not signed.presigned
                 else _first(query, "X-Amz-Security-Token"))
        principal = self._principal(scope.access_key_id, scope.service, token)
        self._remember(cache_key, _Verified(
            request.method, request.path, request.query_string, scope.signed_headers,
            header_values, body_hash, request.body if len(request.body) <= _KEPT_BODY else None,
            secret, epoch, signed.expires, principal))
        return principal

    def _principal(self, access_key_id: str, service: str, token: str | None) -> Principal:
        key = (access_key_id, service, token)
        found = self._principals.get(key)
        if found is None:
            if len(self._principals) >= 1024:
                self._principals.clear()
            found = self._principals[key] = Principal(access_key_id, service, token)
        return found

    # Steps ----------------------------------------------------------------------------------

    def _replayed(self, known: _Verified, request: Request) -> Principal | None:
        """The cached principal if ``request`` repeats a verified one exactly and is still in
        its window with an unchanged secret; ``None`` sends it down the full path."""
        if (known.method != request.method or known.path != request.path
                or known.query != request.query_string):
            return None
        if (request.body != known.body if known.body is not None
                else _body_hash(request.body) != known.body_hash):
            return None
        headers = request.headers
        if len(request.raw_headers) == len(headers):
            values = tuple([headers.get(name, "") for name in known.header_names])
        else:
            values = _signed_values(request, known.header_names)[1]
        if values != known.header_values:
            return None
        now = self.clock()
        if known.expires is not None:
            if not known.epoch - self.max_skew <= now <= known.epoch + known.expires:
                return None
        elif abs(now - known.epoch) > self.max_skew:
            return None
        if self.lookup_secret(known.principal.access_key_id) != known.secret:
            return None
        return known.principal

    def _check_time(self, signed: _Signed) -> float:
        epoch = _parse_amz_date(signed.timestamp)
        now = self.clock()
        skew_text = self._skew_text
        if signed.expires is not None:
            if now > epoch + signed.expires:
                raise InvalidSignature(
                    f"Signature expired: {_amz(epoch + signed.expires)} is now earlier than "
                    f"{_amz(now)}")
        elif epoch < now - self.max_skew:
            raise InvalidSignature(
                f"Signature expired: {signed.timestamp} is now earlier than "
                f"{_amz(now - self.max_skew)} ({_amz(now)} - {skew_text})")
        if epoch > now + self.max_skew:
            raise InvalidSignature(
                f"Signature not yet current: {signed.timestamp} is still later than "
                f"{_amz(now + self.max_skew)} ({_amz(now)} + {skew_text})")
        return epoch

    def _check_scope(self, signed: _Signed) -> None:
        scope = signed.scope
        if scope.date != signed.timestamp[:8]:
            raise InvalidSignature(
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of "
                f"date from HTTP: '{scope.date}' != '{signed.timestamp[:8]}', from "
                f"'{signed.timestamp}'.")
        if scope.region != self.region and not (scope.service == "iam"
                                                and scope.region == "us-east-1"):
            raise InvalidSignature(
                f"Credential should be scoped to a valid region, not '{scope.region}'. ")
        if scope.service not in self.services:
            expected = "', '".join(sorted(self.services))
            raise InvalidSignature(
                f"Credential should be scoped to correct service: '{expected}'. ")

    def _signing_key(self, secret: str, scope: _Scope) -> bytes:
        cache_key = (secret, scope.date, scope.region, scope.service)
        key = self._keys.get(cache_key)
        if key is None:
            if len(self._keys) >= 1024:
                self._keys.clear()
            key = f"AWS4{secret}".encode()
            for part in (scope.date, scope.region, scope.service, "aws4_request"):
                key = hmac.new(key, part.encode(), hashlib.sha256).digest()
            self._keys[cache_key] = key
        return key

    def _signature(self, request: Request, signed: _Signed, query: list[tuple[str, str]],
                   headers: _HeaderSubset, body_hash: str, secret: str) -> str:
        declared = headers.get("x-amz-content-sha256")
        if declared is not None and declared != [body_hash]:
            raise InvalidSignature(_MISMATCH)  # the hash it signed is not of this body
        params = [(k, v) for k, v in query if not (signed.presigned and k == "X-Amz-Signature")]
        aws_request = AWSRequest(method=request.method, url=f"http://lamina{request.path}",
                                 params=params)
        aws_request.headers = headers
        aws_request.context["timestamp"] = signed.timestamp
        aws_request.context["payload_hash"] = body_hash
        aws_request.context["signing_key"] = self._signing_key(secret, signed.scope)
        signer = self._signers[signed.scope.service]
        canonical = signer.canonical_request(aws_request)
        return signer.signature(signer.string_to_sign(aws_request, canonical), aws_request)

    def _remember(self, key: str, entry: _Verified) -> None:
        self._verified[key] = entry
        self._verified.move_to_end(key)
        if len(self._verified) > self._verified_max:
            self._verified.popitem(last=False)


# Parsing what the client sent -------------------------------------------------------------

_SCOPES: dict[str, _Scope] = {}


def _parse_authorization(header: str, headers: dict[str, str]) -> _Signed:
    head, sep, signature = header.rpartition("Signature=")
    scope = _SCOPES.get(head) if sep else None
    if scope is None:
        scope, signature = _parse_authorization_fields(header)
        if sep:
            if len(_SCOPES) >= 1024:
                _SCOPES.clear()
            _SCOPES[head] = scope
    timestamp = headers.get("x-amz-date")
    if timestamp is None and "date" in headers:
        timestamp = _from_http_date(headers["date"])
    if not timestamp:
        raise IncompleteSignature(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' "
            f"header. Authorization={header}")
    return _Signed(scope, signature.strip().lower(), timestamp, None, False)


def _parse_authorization_fields(header: str) -> tuple[_Scope, str]:
    algorithm, _, rest = header.strip().partition(" ")
    fields: dict[str, str] = {}
    for part in rest.split(","):
        key, eq, value = part.strip().partition("=")
        if eq:
            fields[key.strip()] = value.strip()
    missing = [name for name in ("Credential", "Signature", "SignedHeaders")
               if not fields.get(name)]
    if algorithm != ALGORITHM and not missing:
        raise IncompleteSignature(f"Unsupported AWS 'algorithm': '{algorithm}'")
    if missing:
        raise IncompleteSignature(
            " ".join(f"Authorization header requires '{name}' parameter." for name in missing)
            + f" Authorization={header}")
    return _make_scope(fields["Credential"], fields["SignedHeaders"]), fields["Signature"]


def _parse_presigned(query: list[tuple[str, str]]) -> _Signed:
    values = {name: _first(query, name) for name in (*_QUERY_PARAMS, "X-Amz-Expires")}
    if any(not values[name] for name in _QUERY_PARAMS):
        raise IncompleteSignature(
            "AWS query-string parameters must include 'X-Amz-Algorithm', 'X-Amz-Credential', "
            "'X-Amz-Signature', 'X-Amz-Date', 'X-Amz-SignedHeaders'. Re-examine the "
            "query-string parameters.")
    if values["X-Amz-Algorithm"] != ALGORITHM:
        raise IncompleteSignature(
            f"Unsupported AWS 'algorithm': '{values['X-Amz-Algorithm']}'")
    raw_expires = values["X-Amz-Expires"] or "900"
    if not raw_expires.isdigit() or not 0 < int(raw_expires) <= MAX_PRESIGN_EXPIRES:
        raise IncompleteSignature(
            f"X-Amz-Expires must be a positive number of seconds, at most "
            f"{MAX_PRESIGN_EXPIRES} (a week); got '{raw_expires}'.")
    scope = _make_scope(values["X-Amz-Credential"] or "", values["X-Amz-SignedHeaders"] or "")
    return _Signed(scope, (values["X-Amz-Signature"] or "").lower(), values["X-Amz-Date"] or "",
                   int(raw_expires), True)


def _make_scope(credential: str, signed_headers: str) -> _Scope:
    parts = credential.split("/")
    if len(parts) != 5:
        raise IncompleteSignature(
            "Credential must have exactly 5 slash-delimited elements, e.g. "
            f"keyid/date/region/service/term, got '{credential}'")
    if parts[4] != "aws4_request":
        raise InvalidSignature(
            "Credential should be scoped with a valid terminator: 'aws4_request', "
            f"not '{parts[4]}'. ")
    names = tuple(name.strip().lower() for name in signed_headers.split(";") if name.strip())
    if "host" not in names:
        raise IncompleteSignature(
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.")
    return _Scope(parts[0], parts[1], parts[2], parts[3], names)


def _signed_values(request: Request,
                   names: tuple[str, ...]) -> tuple[_HeaderSubset, tuple[str, ...]]:
    """The values of exactly the signed headers (every occurrence, in arrival order), and the
    same as one comparable tuple (occurrences joined by commas, as SigV4 joins them)."""
    headers = request.headers
    if len(request.raw_headers) == len(headers):  # no repeated header: the dict is the truth
        flat = tuple(headers.get(name, "") for name in names)
        subset = _HeaderSubset({name: [value] if name in headers else []
                                for name, value in zip(names, flat, strict=True)})
        return subset, flat
    subset = _HeaderSubset({name: [] for name in names})
    for name, value in request.raw_headers:
        values = dict.get(subset, name.lower())
        if values is not None:
            values.append(value)
    return subset, tuple(",".join(values) for values in subset.values())


def _split_query(query_string: str) -> list[tuple[str, str]]:
    """Query pairs percent-decoded exactly (``+`` stays ``+``), for re-canonicalisation."""
    if not query_string:
        return []
    pairs = []
    for part in query_string.split("&"):
        if part:
            key, _, value = part.partition("=")
            pairs.append((unquote(key), unquote(value)))
    return pairs


def _first(query: list[tuple[str, str]], name: str) -> str | None:
    for key, value in query:
        if key == name:
            return value
    return None


_LAST_DATE: list[tuple[str, float]] = [("", 0.0)]


def _parse_amz_date(stamp: str) -> float:
    """``20240102T030405Z`` -> epoch seconds, without ``strptime``'s cost; requests signed in
    the same second share the answer."""
    last = _LAST_DATE[0]
    if last[0] == stamp:
        return last[1]
    epoch = _parse_amz_date_uncached(stamp)
    _LAST_DATE[0] = (stamp, epoch)
    return epoch


def _parse_amz_date_uncached(stamp: str) -> float:
    try:
        if len(stamp) != 16 or stamp[8] != "T" or stamp[15] != "Z":
            raise ValueError(stamp)
        return float(calendar.timegm((int(stamp[0:4]), int(stamp[4:6]), int(stamp[6:8]),
                                      int(stamp[9:11]), int(stamp[11:13]), int(stamp[13:15]))))
    except ValueError:
        raise IncompleteSignature(
            f"Date must be in ISO-8601 'basic format'. Got '{stamp}'. See "
            "http://en.wikipedia.org/wiki/ISO_8601") from None


def _from_http_date(value: str) -> str | None:
    try:
        return _amz(email.utils.parsedate_to_datetime(value).timestamp())
    except (TypeError, ValueError):
        return None


def _amz(epoch: float) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(epoch))
