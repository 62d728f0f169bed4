"""The request pipeline of lamina's public endpoint.

Every Lambda API request goes: verify the SigV4 signature → resolve the route from botocore's
model → parse → validate against the model → the operation → serialise. Errors of any stage
become Lambda's error response in one place (``serialize_error``). Besides the Lambda API, the
endpoint serves a few lamina paths under ``/_lamina/``: the health check and presigned code
downloads (no credentials, by design), and signed endpoints for the CLI (logs, stats, the async
queue).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable
from typing import Any

from lamina.api.auth import SigV4Verifier
from lamina.api.code_urls import PREFIX as CODE_PREFIX
from lamina.api.code_urls import CodeUrls
from lamina.api.context import ApiContext
from lamina.api.iam import IamApi
from lamina.api.layers import layer_arn
from lamina.api.model import resolve
from lamina.api.naming import LATEST
from lamina.api.operations import OPERATIONS, Call, load_all
from lamina.api.operations.invoke import MAX_SYNC_PAYLOAD
from lamina.api.parse import check_json_payload, parse_request
from lamina.api.query import query_service
from lamina.api.serialize import serialize_error, serialize_response
from lamina.api.validate import validate
from lamina.engine.api import FunctionTarget, InvokeRequest, InvokeResult
from lamina.errors import (
    InternalError,
    NotImplementedYet,
    RequestTooLarge,
    ResourceNotFound,
    ServiceError,
    ServiceUnavailable,
)
from lamina.http.types import Pending, Request, Response
from lamina.identity.authorize import Authorizer
from lamina.observe.ids import new_request_id, new_trace_id

log = logging.getLogger(__name__)

_JSON = ("content-type", "application/json")
_INVOKE_PREFIX = "/2015-03-31/functions/"
_INVOKE_SUFFIX = "/invocations"
_PASSES_ROLE = frozenset({"CreateFunction", "UpdateFunctionConfiguration"})



def _invoke_response(result: InvokeResult, request_id: str) -> Response:
    head = (f"Content-Type: application/json\r\nX-Amz-Executed-Version: "
            f"{result.executed_version}\r\nx-amzn-RequestId: {request_id}\r\n")
    if result.function_error:
        head += f"X-Amz-Function-Error: {result.function_error}\r\n"
    return Response(200, body=result.payload, head=head.encode("latin-1"))


def _answer_invoke(answer: Pending, request_id: str, result: InvokeResult | None,
                   error: ServiceError | None) -> None:
    if result is None:
        answer.resolve(serialize_error(error or ServiceUnavailable("No answer"), request_id))
    else:
        answer.resolve(_invoke_response(result, request_id))


class LaminaApp:
    def __init__(self, context: ApiContext, verifier: SigV4Verifier, code_urls: CodeUrls,
                 authorizer: Authorizer, iam: IamApi | None = None) -> None:
        self.context = context
        self.verifier = verifier
        self.authorizer = authorizer
        self.iam = iam  # IAM and STS (the query protocol), on POST /
        self.code_urls = code_urls
        self.ready = False
        load_all()

    def handle(self, request: Request) -> Response | Pending | Awaitable[Response]:
        path = request.path
        if path.startswith(_INVOKE_PREFIX) and path.endswith(_INVOKE_SUFFIX) \
                and request.method == "POST":
            return self._invoke(request)
        if path.startswith("/_lamina/"):
            return self._lamina(request)
        if path == "/" and self.iam is not None:
            service = query_service(request)
            if service is not None:
                return self.iam.handle(request, service)
        return self._lambda_api(request)

    def _invoke(self, request: Request) -> Response | Pending | Awaitable[Response]:
        """Invoke of a warm, cached ``$LATEST`` or version, synchronously: the hot path.

        It does what the general pipeline does (verify, check the name and the payload,
        authorize, invoke, answer in the operation's shape) with a fraction of the code, because
        on this path every instruction shows in the latency (HOST.md). When an idle environment
        is there, the answer is a ``Pending`` written the moment the runtime answers: no task,
        no coroutine, no future, no extra turn of the event loop. Anything else — an alias, a
        client context, a log tail, another invocation type, a function not in the cache yet —
        takes the general pipeline, which also fills the cache; a warm invoke that must wait
        (no idle environment, a concurrency slot to wait for) takes ``_invoke_waiting``.
        """
        request_id = new_request_id()
        try:
            principal = self.verifier.verify(request)
            headers = request.headers
            name = request.path[len(_INVOKE_PREFIX):-len(_INVOKE_SUFFIX)]
            qualifier = request.query_value("Qualifier") if request.query_string else None
            if (headers.get("x-amz-invocation-type", "RequestResponse") != "RequestResponse"
                    or "x-amz-client-context" in headers
                    or headers.get("x-amz-log-type", "None") != "None"
                    or "%" in name or ":" in name
                    or (qualifier is not None and qualifier != LATEST
                        and not qualifier.isdigit())):
                return self._lambda_api(request, request_id)
            cached = self.context.cache.get(name, qualifier or LATEST)
            if cached is None:
                return self._lambda_api(request, request_id)
            target = cached[1]
            self.authorizer.check(principal, "Invoke", target.function_arn if qualifier is None
                                  else target.qualified_arn, request)
            payload = request.body or b"{}"
            if len(payload) > MAX_SYNC_PAYLOAD:
                raise RequestTooLarge(f"Request must be smaller than {MAX_SYNC_PAYLOAD} bytes "
                                      "for the InvokeFunction operation")
            check_json_payload(payload)
        except ServiceError as exc:
            return serialize_error(exc, request_id)
        invoked_arn = target.function_arn if qualifier is None else target.qualified_arn
        invocation = InvokeRequest(payload, request_id, invoked_arn,
                                   new_trace_id(headers.get("x-amzn-trace-id")))
        answer = Pending()
        if not self.context.engine.invoke_now(
                target, invocation,
                lambda result, error: _answer_invoke(answer, request_id, result, error)):
            return self._invoke_waiting(target, invocation)
        return answer

    async def _invoke_waiting(self, target: FunctionTarget, invocation: InvokeRequest) -> Response:
        try:
            result = await self.context.engine.invoke(target, invocation)
        except ServiceError as exc:
            return serialize_error(exc, invocation.request_id)
        return _invoke_response(result, invocation.request_id)

    async def _lambda_api(self, request: Request, request_id: str | None = None) -> Response:
        request_id = request_id or new_request_id()
        operation = None
        try:
            principal = self.verifier.verify(request)
            operation, labels = resolve(request.method, request.path, request.query_string)
            params = parse_request(operation, labels, request)
            validate(operation, params)
            self.authorizer.check(principal, operation.name, self._resource(params), request)
            if operation.name in _PASSES_ROLE and isinstance(params.get("Role"), str):
                # Handing a function a role is acting with that role: IAM's PassRole.
                self.authorizer.check(principal, "iam:PassRole", params["Role"], request)
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
        """The ARN a call acts on, as IAM sees it: the function (with its qualifier), the
        layer (with its version), or ``*``."""
        name = params.get("FunctionName")
        if not isinstance(name, str):
            layer = params.get("LayerName")
            if isinstance(layer, str):
                arn = layer if layer.startswith("arn:") else layer_arn(self.context.naming, layer)
                version = params.get("VersionNumber")
                return arn if version is None else f"{arn}:{version}"
            return "*"
        arn = name if name.startswith("arn:") else self.context.naming.function_arn(name)
        qualifier = params.get("Qualifier")
        if isinstance(qualifier, str) and arn.count(":") == 6:
            arn = f"{arn}:{qualifier}"
        return arn

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
        request_id = new_request_id()
        try:
            principal = self.verifier.verify(request)
            self.authorizer.check(principal, "ReadLaminaInternals", "*")
            path = request.path
            if path.startswith("/_lamina/logs/") and request.method == "GET":
                return await self._logs(request, path[len("/_lamina/logs/"):])
            if path == "/_lamina/stats" and request.method == "GET":
                return Response(200, [_JSON], json.dumps(self.context.engine.stats()).encode())
            if path == "/_lamina/async" and request.method == "GET":
                return await self._async_queue(request)
            raise ResourceNotFound(f"No such lamina path: {path}")
        except ServiceError as exc:
            return serialize_error(exc, request_id)

    async def _async_queue(self, request: Request) -> Response:
        """Queue depth and oldest event age per function (``?function=`` for one), and the
        dispatcher's counters."""
        if self.context.async_events is None:
            raise ResourceNotFound("This server has no async event queue.")
        document = await self.context.async_events.stats()
        wanted = request.query_value("function")
        if wanted:
            document["functions"] = {k: v for k, v in document["functions"].items()
                                     if k == wanted}
        return Response(200, [_JSON], json.dumps(document).encode())

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
