"""IAM and STS on lamina's endpoint (the query protocol, ``lamina.api.query``).

``IamApi.handle`` runs the same pipeline as the Lambda API — verify the signature, resolve the
operation from botocore's ``iam``/``sts`` model, parse, validate, authorize, operate, answer —
with the query protocol's shapes. Each operation is one small function registered with
``@iam_operation(service, name, resource=...)``: ``resource`` computes the ARN the caller needs
permission on (``None``: no permission needed, as for ``GetCallerIdentity``). Operations change
the store and then ``reload`` the directory before answering, so the next request is already
judged by the new policies.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from lamina.api.auth import SigV4Verifier
from lamina.api.query import (
    InvalidAction,
    form_params,
    parse_params,
    resolve_operation,
    serialize_query_error,
    serialize_result,
)
from lamina.api.validate import validate
from lamina.errors import InternalError, ServiceError
from lamina.http.types import Request, Response
from lamina.identity.authorize import Authorizer, Identity
from lamina.identity.directory import Directory
from lamina.identity.sessions import SessionRegistry
from lamina.observe.ids import new_request_id
from lamina.store.iam import SqlIamStore

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclasses.dataclass
class IamServices:
    """What IAM and STS operations (and Lambda's role checks) work with."""

    store: SqlIamStore
    directory: Directory
    authorizer: Authorizer
    sessions: SessionRegistry
    account_id: str

    async def db(self, method: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(method, *args)

    async def changed(self) -> None:
        """The store changed: rebuild the directory before answering."""
        await asyncio.to_thread(self.directory.reload)

    def arn(self, kind: str, name: str, path: str = "/") -> str:
        return f"arn:aws:iam::{self.account_id}:{kind}{path}{name}"


@dataclasses.dataclass
class IamCall:
    services: IamServices
    params: dict[str, Any]
    identity: Identity
    request: Request
    request_id: str


Handler = Callable[[IamCall], Awaitable[dict[str, Any]]]
Resource = Callable[[IamServices, dict[str, Any], Identity], str]


@dataclasses.dataclass(frozen=True)
class _Entry:
    handler: Handler
    resource: Resource | None


OPERATIONS: dict[tuple[str, str], _Entry] = {}


def iam_operation(service: str, name: str,
                  resource: Resource | None) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        OPERATIONS[(service, name)] = _Entry(handler, resource)
        return handler
    return register


def load_all() -> None:
    from lamina.api.iam import keys, owned, policies, roles, sts, users  # noqa: F401


class IamApi:
    def __init__(self, services: IamServices, verifier: SigV4Verifier) -> None:
        self.services = services
        self.verifier = verifier
        load_all()

    async def handle(self, request: Request, service: str) -> Response:
        request_id = new_request_id()
        try:
            principal = self.verifier.verify(request)
            form = form_params(request)
            operation = resolve_operation(service, form)
            params = parse_params(operation, form)
            validate(operation, params)
            entry = OPERATIONS.get((service, operation.name))
            if entry is None:
                raise InvalidAction(f"lamina does not implement {operation.name} yet.")
            authorizer = self.services.authorizer
            identity = authorizer.identify(principal)
            if entry.resource is not None:
                resource = entry.resource(self.services, params, identity)
                authorizer.authorize(principal, f"{service}:{operation.name}", resource,
                                     request)
            output = await entry.handler(IamCall(self.services, params, identity, request,
                                                 request_id))
            return serialize_result(operation, output, request_id)
        except ServiceError as exc:
            return serialize_query_error(service, exc, request_id)
        except Exception:
            log.exception("%s request failed (request %s)", service, request_id)
            return serialize_query_error(service, InternalError("An internal error occurred."),
                                         request_id)
