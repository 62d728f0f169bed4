"""The Lambda service model, and the route table that maps raw HTTP onto its operations.

botocore's ``lambda`` model is the source of truth: every operation's ``http.method`` and
``http.requestUri`` become one route, so lamina answers exactly the paths boto3 sends and a new
operation in a newer botocore is routed without code here.

Routes live in a tree keyed by method and then by path segment, literals before labels, so
resolving ``POST /2015-03-31/functions/{FunctionName}/invocations`` costs a handful of dict
look-ups whatever the number of operations. A few request URIs differ only by a literal query
part (``GET /2018-10-31/layers`` is ListLayers, ``GET /2018-10-31/layers?find=LayerVersion`` is
GetLayerVersionByArn); those share a tree node and are told apart by the query, the most
specific first.
"""

from __future__ import annotations

import dataclasses
import functools
from urllib.parse import parse_qsl, unquote

from botocore.loaders import create_loader
from botocore.model import OperationModel, ServiceModel, Shape

from lamina.errors import UnknownOperation

__all__ = [
    "Route", "RouteTable", "operation", "resolve", "route_table", "service_model",
    "timestamp_format",
]

SERVICE_NAME = "lambda"


@functools.cache
def service_model(service: str = SERVICE_NAME) -> ServiceModel:
    """botocore's model of ``service``, loaded once per process (it takes ~50 ms)."""
    loader = create_loader()
    return ServiceModel(loader.load_service_model(service, "service-2"), service_name=service)


def operation(name: str, service: str = SERVICE_NAME) -> OperationModel:
    """The operation called ``name`` (e.g. ``"Invoke"``) of the service's model."""
    return service_model(service).operation_model(name)


@dataclasses.dataclass(frozen=True, slots=True)
class Route:
    """One operation's place in the URL space.

    ``segments`` holds literals as they are and labels as ``{Name}`` / ``{Name+}``;
    ``query`` holds the literal query parts of the request URI (value ``None``: key present).
    """

    operation: OperationModel
    method: str
    segments: tuple[str, ...]
    query: tuple[tuple[str, str | None], ...]

    @classmethod
    def from_operation(cls, op: OperationModel) -> Route:
        uri = op.http["requestUri"]
        path, _, query = uri.partition("?")
        literals: list[tuple[str, str | None]] = []
        for part in query.split("&") if query else ():
            key, eq, value = part.partition("=")
            literals.append((unquote(key), unquote(value) if eq else None))
        return cls(op, op.http["method"].upper(), _split(path), tuple(literals))

    def accepts(self, query: list[tuple[str, str]]) -> bool:
        for key, value in self.query:
            if not any(k == key and (value is None or v == value) for k, v in query):
                return False
        return True


def _split(path: str) -> tuple[str, ...]:
    """Path segments without the leading empty one; a trailing slash is not a segment."""
    parts = path.split("/")
    if parts and parts[0] == "":
        parts = parts[1:]
    if parts and parts[-1] == "":
        parts = parts[:-1]
    return tuple(parts)


class _Node:
    """A tree node: children by literal segment, one label child, one greedy child, and the
    routes ending here (more query literals first)."""

    __slots__ = ("greedy", "greedy_name", "label", "label_name", "literals", "routes")

    def __init__(self) -> None:
        self.literals: dict[str, _Node] = {}
        self.label: _Node | None = None
        self.label_name = ""
        self.greedy: list[Route] = []
        self.greedy_name = ""
        self.routes: list[Route] = []


class RouteTable:
    """Resolves ``(method, raw path, query)`` to an operation and its decoded URI labels."""

    def __init__(self, model: ServiceModel) -> None:
        self._roots: dict[str, _Node] = {}
        self.routes = [Route.from_operation(model.operation_model(name))
                       for name in model.operation_names]
        for route in self.routes:
            self._add(route)

    def _add(self, route: Route) -> None:
        node = self._roots.setdefault(route.method, _Node())
        for segment in route.segments:
            if segment.startswith("{") and segment.endswith("+}"):
                node.greedy.append(route)
                node.greedy.sort(key=lambda r: -len(r.query))
                node.greedy_name = segment[1:-2]
                return
            if segment.startswith("{") and segment.endswith("}"):
                if node.label is None:
                    node.label = _Node()
                    node.label_name = segment[1:-1]
                elif node.label_name != segment[1:-1]:
                    raise ValueError(f"two label names at one place: {route.segments}")
                node = node.label
            else:
                node = node.literals.setdefault(segment, _Node())
        node.routes.append(route)
        node.routes.sort(key=lambda r: -len(r.query))

    def resolve(self, method: str, raw_path: str,
                query_string: str = "") -> tuple[OperationModel, dict[str, str]]:
        """Find the operation for a request; labels come back percent-decoded.

        ``raw_path`` is the path as received (still percent-encoded); it may carry the query
        after a ``?``, else pass ``query_string``. Raises ``UnknownOperation`` (404).
        """
        path, sep, query = raw_path.partition("?")
        if sep and not query_string:
            query_string = query
        root = self._roots.get(method.upper())
        if root is not None:
            segments = _split(path)
            labels: dict[str, str] = {}
            parsed: list[list[tuple[str, str]]] = []
            route = _walk(root, segments, 0, labels, query_string, parsed)
            if route is not None:
                return route.operation, labels
        raise UnknownOperation("Unknown operation")


def _walk(node: _Node, segments: tuple[str, ...], i: int, labels: dict[str, str],
          query_string: str, parsed: list[list[tuple[str, str]]]) -> Route | None:
    """Depth-first match, literals before labels before greedy labels."""
    if i == len(segments):
        return _pick(node.routes, query_string, parsed)
    segment = segments[i]
    child = node.literals.get(segment)
    if child is not None:
        found = _walk(child, segments, i + 1, labels, query_string, parsed)
        if found is not None:
            return found
    if node.label is not None and segment:
        found = _walk(node.label, segments, i + 1, labels, query_string, parsed)
        if found is not None:
            labels[node.label_name] = _decode(segment)
            return found
    if node.greedy:
        rest = "/".join(segments[i:])
        found = _pick(node.greedy, query_string, parsed)
        if found is not None and rest:
            labels[node.greedy_name] = _decode(rest)
            return found
    return None


def _decode(segment: str) -> str:
    """Percent-decode a label. ARNs arrive with only ``:`` encoded; that case skips ``unquote``,
    which costs a few microseconds on the Invoke path."""
    if "%" not in segment:
        return segment
    fast = segment.replace("%3A", ":").replace("%3a", ":")
    return fast if "%" not in fast else unquote(segment)


def _pick(routes: list[Route], query_string: str,
          parsed: list[list[tuple[str, str]]]) -> Route | None:
    for route in routes:
        if not route.query:
            return route
        if not parsed:
            parsed.append(parse_qsl(query_string, keep_blank_values=True))
        if route.accepts(parsed[0]):
            return route
    return None


@functools.cache
def route_table(service: str = SERVICE_NAME) -> RouteTable:
    """The route table of ``service``, built once."""
    return RouteTable(service_model(service))


def resolve(method: str, raw_path: str,
            query_string: str = "") -> tuple[OperationModel, dict[str, str]]:
    """Resolve a Lambda API request; see ``RouteTable.resolve``."""
    return route_table().resolve(method, raw_path, query_string)


# Where a timestamp travels decides its default wire format (rest-json protocol).
_DEFAULT_TIMESTAMP_FORMAT = {
    "querystring": "iso8601", "uri": "iso8601", "header": "rfc822", "headers": "rfc822",
}


def timestamp_format(shape: Shape, location: str | None) -> str:
    """The wire format of a timestamp ``shape`` at ``location`` (``None``: a JSON body)."""
    explicit = shape.serialization.get("timestampFormat")
    if explicit:
        return explicit.lower()
    return _DEFAULT_TIMESTAMP_FORMAT.get(location or "", "unixtimestamp")
