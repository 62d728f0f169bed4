"""The request pipeline of lamina's public endpoint.

Every Lambda API request goes: verify the SigV4 signature → resolve the route from botocore's
model → parse → validate against the model → the operation → serialise. Errors of any stage
become Lambda's error response in one place (``serialize_error``). Besides the Lambda API, the
endpoint serves a few lamina paths under ``/_lamina/``: the health check and presigned code
downloads (no credentials, by design), and signed endpoints for the CLI (logs, stats).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Awaitable
from typing import Any

from lamina.api.auth import SigV4Verifier
from lamina.api.code_urls import PREFIX as CODE_PREFIX
from lamina.api.code_urls import CodeUrls
from lamina.api.context import ApiContext
from lamina.api.model import resolve
from lamina.api.operations import OPERATIONS, Call, load_all
from lamina.api.parse import parse_request
from lamina.api.serialize import serialize_error, serialize_response
from lamina.api.validate import validate
from lamina.errors import InternalError, NotImplementedYet, ResourceNotFound, ServiceError
from lamina.http.types import Request, Response
from lamina.identity.authorize import Authorizer

log = logging.getLogger(__name__)

_JSON = ("content-type", "application/json")


class LaminaApp:
    def __init__(self, context: ApiContext, verifier: SigV4Verifier, code_urls: CodeUrls,
                 authorizer: Authorizer) -> None:
        self.context = context
        self.verifier = verifier
        self.authorizer = authorizer
        self.code_urls = code_urls
        self.ready = False
        load_all()

    def handle(self, request: Request) -> Response | Awaitable[Response]:
        if request.path.startswith("/_lamina/"):
            return self._lamina(request)
        return self._lambda_api(request)

    async def _lambda_api(self, request: Request) -> Response:
        request_id = str(uuid.uuid4())
        operation = None
        try:
            principal = self.verifier.verify(request)
            operation, labels = resolve(request.method, request.path, request.query_string)
            params = parse_request(operation, labels, request)
            validate(operation, params)
            self.authorizer.check(principal, operation.name, self._resource(params))
            handler = OPERATIONS.get(operation.name)
            if handler is None:
                raise NotImplementedYet(
                    f"lamina does not implement {operation.name} yet.")
            output = await handler(Call(self.context, params, request, request_id))
            return serialize_response(operation, output, request_id)
        except ServiceError as exc:
            return serialize_error(exc, request_id)
        except Exception:
            name = operation.name if operation is not None else request.path
            log.exception("%s failed (request %s)", name, request_id)
            return serialize_error(InternalError("An internal error occurred."), request_id)

    def _resource(self, params: dict[str, Any]) -> str:
        name = params.get("FunctionName")
        if not isinstance(name, str):
            return "*"
        return name if name.startswith("arn:") else self.context.naming.function_arn(name)

    # lamina's own paths -------------------------------------------------------------------

    def _lamina(self, request: Request) -> Response | Awaitable[Response]:
        path = request.path
        if path == "/_lamina/health":
            status = 200 if self.ready else 503
            body = json.dumps({"status": "ok" if self.ready else "starting"}).encode()
            return Response(status, [_JSON], body)
        if path.startswith(CODE_PREFIX) and request.method in ("GET", "HEAD"):
            return self.code_urls.serve(request)
        return self._signed_lamina(request)

    async def _signed_lamina(self, request: Request) -> Response:
        request_id = str(uuid.uuid4())
        try:
            principal = self.verifier.verify(request)
            self.authorizer.check(principal, "ReadLaminaInternals", "*")
            path = request.path
            if path.startswith("/_lamina/logs/") and request.method == "GET":
                return await self._logs(request, path[len("/_lamina/logs/"):])
            if path == "/_lamina/stats" and request.method == "GET":
                return Response(200, [_JSON], json.dumps(self.context.engine.stats()).encode())
            raise ResourceNotFound(f"No such lamina path: {path}")
        except ServiceError as exc:
            return serialize_error(exc, request_id)

    async def _logs(self, request: Request, function: str) -> Response:
        """A function's log events (its log group, as LoggingConfig names it)."""
        start = int(request.query_value("start") or 0)
        limit = int(request.query_value("limit") or 10_000)
        group = f"/aws/lambda/{function}"
        record = await self.context.db(self.context.store.get_function, function)
        if record is not None:
            group = (record.config.get("LoggingConfig") or {}).get("LogGroup") or group
        await self.context.logs.flushed()
        events = self.context.logs.read(group, start_ms=start, limit=limit)
        document: dict[str, Any] = {
            "logGroupName": group,
            "events": [{"timestamp": e.timestamp, "logStreamName": e.stream,
                        "message": e.message} for e in events],
            "now": int(time.time() * 1000),
        }
        return Response(200, [_JSON], json.dumps(document).encode())
