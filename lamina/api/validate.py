"""Checks an operation's input parameters against the constraints of botocore's model.

botocore's client checks types, required members and minimum lengths, but not ``max``,
``pattern`` or ranges, and other clients check less; AWS checks all of them on the server and
answers ``ValidationException`` in one fixed grammar that scripts and tests match on::

    2 validation errors detected: Value 'bad name!' at 'functionName' failed to satisfy
    constraint: Member must satisfy regular expression pattern: <pattern>; Value null at
    'role' failed to satisfy constraint: Member must not be null

That grammar is reproduced from responses AWS recorded: member paths are lower-camel-cased
and dotted (``vpcConfig.subnetIds``); each failed constraint of a scalar is one error; a list or
map is reported once, as a whole, with every constraint of its members listed
(``Member must satisfy constraint: [..., Member must not be null]``); values are written the way
Java prints them (``[a, b]``, ``{k=v}``, ``1.0``), and left out for sensitive shapes.

Each shape's checks are compiled once into a closure, so validating an Invoke costs a pattern
match and a few comparisons.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Callable
from typing import Any

from botocore.model import OperationModel, ServiceModel, Shape

from lamina.api.patterns import compile_java
from lamina.errors import ValidationError

__all__ = ["member_path", "render", "validate", "validation_message"]

Errors = list[str]
Validator = Callable[[Any, str, Errors], None]

# Lambda limits a bare function name to 64 characters, while the model's max (140) is for the
# full ARN; AWS answers "...less than or equal to 64" for a 65-character name.
_FUNCTION_NAME_SHAPES = frozenset({
    "FunctionName", "NamespacedFunctionName", "UnqualifiedFunctionName",
    "FunctionUrlFunctionName",
})
_BARE_NAME_MAX = 64
_NOT_NULL = "Member must not be null"
_LENGTH_MAX = "Member must have length less than or equal to "
_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,), "integer": (int,), "long": (int,), "boolean": (bool,),
    "double": (int, float), "float": (int, float), "blob": (bytes, bytearray, memoryview),
    "timestamp": (datetime.datetime,), "list": (list, tuple), "map": (dict,),
    "structure": (dict,),
}


def validate(operation: OperationModel, params: dict[str, Any]) -> None:
    """Raise ``ValidationError`` (``ValidationException``, 400) listing every broken constraint
    of ``params`` against the operation's input shape. Members the model does not know are
    ignored."""
    shape = operation.input_shape
    if shape is None:
        return
    errors: Errors = []
    _validators(operation.service_model).get(shape)(params, "", errors)
    if errors:
        raise ValidationError(validation_message(errors))


def validation_message(errors: list[str]) -> str:
    """AWS's summary line for a list of single-error texts."""
    count = len(errors)
    noun = "validation error" if count == 1 else "validation errors"
    return f"{count} {noun} detected: " + "; ".join(errors)


def member_path(parent: str, name: str) -> str:
    """``vpcConfig`` + ``SubnetIds`` -> ``vpcConfig.subnetIds``, as AWS names members."""
    camel = name[:1].lower() + name[1:]
    return f"{parent}.{camel}" if parent else camel


def _java_len(text: str) -> int:
    """String length as Java counts it (UTF-16 code units), which is what AWS limits."""
    if text.isascii():
        return len(text)
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def _java_double(value: float) -> str:
    """``Double.toString``: ``1.0``, ``0.5``, ``1.0E10``."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0 or 1e-3 <= abs(value) < 1e7:
        text = repr(float(value))
        return text if "e" not in text else f"{value:.1f}"
    mantissa, exponent = f"{value:.16e}".split("e")
    mantissa = mantissa.rstrip("0")
    if mantissa.endswith("."):
        mantissa += "0"
    return f"{mantissa}E{int(exponent)}"


def render(value: Any) -> str:
    """A value the way AWS's (Java) messages print it."""
    if value is None:
        return "null"
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _java_double(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        size = len(value)
        return f"java.nio.HeapByteBuffer[pos=0 lim={size} cap={size}]"
    if isinstance(value, datetime.datetime):
        return value.astimezone(datetime.UTC).strftime("%a %b %d %H:%M:%S UTC %Y")
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={render(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(render(v) for v in value) + "]"
    return str(value)


def _error(shape: Shape, value: Any, path: str, constraint: str) -> str:
    if value is None:
        shown = "Value null"
    elif shape.metadata.get("sensitive"):
        shown = "Value"
    else:
        shown = f"Value '{render(value)}'"
    return f"{shown} at '{path}' failed to satisfy constraint: {constraint}"


def _bound(shape: Shape, number: Any) -> str:
    if shape.type_name in ("double", "float"):
        return _java_double(float(number))
    return str(number)


class _Scalar:
    """The constraints of one scalar shape, each a test and AWS's text for it."""

    __slots__ = ("checks", "shape")

    def __init__(self, shape: Shape) -> None:
        self.shape = shape
        self.checks: list[tuple[Callable[[Any], bool], str]] = []
        meta = shape.metadata
        kind = shape.type_name
        low, high = meta.get("min"), meta.get("max")
        if kind in ("string", "blob"):
            size: Callable[[Any], int] = _java_len if kind == "string" else len
            if high is not None:
                self.checks.append((lambda v, h=high: size(v) <= h,
                                    f"Member must have length less than or equal to {high}"))
            if low is not None:
                self.checks.append((lambda v, lo=low: size(v) >= lo,
                                    f"Member must have length greater than or equal to {low}"))
        elif kind in ("integer", "long", "double", "float"):
            if high is not None:
                self.checks.append((lambda v, h=high: v <= h,
                                    f"Member must have value less than or equal to "
                                    f"{_bound(shape, high)}"))
            if low is not None:
                self.checks.append((lambda v, lo=low: v >= lo,
                                    f"Member must have value greater than or equal to "
                                    f"{_bound(shape, low)}"))
        if "pattern" in meta:
            regex = compile_java(meta["pattern"])
            self.checks.append((lambda v, r=regex: r.fullmatch(v) is not None,
                                f"Member must satisfy regular expression pattern: "
                                f"{meta['pattern']}"))
        enum = meta.get("enum")
        if enum:
            allowed = frozenset(enum)
            self.checks.append((lambda v, a=allowed: v in a,
                                f"Member must satisfy enum value set: [{', '.join(enum)}]"))

    def failures(self, value: Any) -> list[str]:
        return [text for test, text in self.checks if not test(value)]


class _Validators:
    """Compiled validators for the shapes of one service model, by shape name."""

    def __init__(self) -> None:
        self._by_name: dict[str, Validator] = {}
        self._scalars: dict[str, _Scalar] = {}

    def get(self, shape: Shape) -> Validator:
        found = self._by_name.get(shape.name)
        if found is None:
            found = self._compile(shape)
        return found

    def scalar(self, shape: Shape) -> _Scalar:
        found = self._scalars.get(shape.name)
        if found is None:
            found = self._scalars[shape.name] = _Scalar(shape)
        return found

    def _compile(self, shape: Shape) -> Validator:
        kind = shape.type_name
        if kind == "structure":
            return self._structure(shape)
        if kind == "list":
            return self._list(shape)
        if kind == "map":
            return self._map(shape)
        validator = self._scalar_validator(shape)
        self._by_name[shape.name] = validator
        return validator

    def _structure(self, shape: Shape) -> Validator:
        member_shapes: dict[str, Shape] = shape.members  # type: ignore[attr-defined]
        required = set(shape.required_members)  # type: ignore[attr-defined]
        # (name, lower-camel name, shape, required); validators are looked up on first use so
        # that recursive shapes compile.
        entries = [(name, member_path("", name), member, name in required)
                   for name, member in member_shapes.items()]
        resolved: dict[str, Validator] = {}
        kinds = _TYPES["structure"]

        def check(value: Any, path: str, errors: Errors) -> None:
            if not isinstance(value, kinds):
                errors.append(_error(shape, value, path or "request",
                                     "Member must be of type structure"))
                return
            for name, camel, member, is_required in entries:
                item = value.get(name)
                if item is None:
                    if is_required:
                        errors.append(_error(member, None, f"{path}.{camel}" if path else camel,
                                             _NOT_NULL))
                    continue
                validator = resolved.get(name)
                if validator is None:
                    validator = resolved[name] = self.get(member)
                validator(item, f"{path}.{camel}" if path else camel, errors)

        self._by_name[shape.name] = check
        return check

    def _list(self, shape: Shape) -> Validator:
        own = self._collection_checks(shape)
        member: Shape = shape.member  # type: ignore[attr-defined]
        scalar_member = member.type_name not in ("structure", "list", "map")
        inner = self._wrapped(member, not_null=True) if scalar_member else None
        kinds = _TYPES["list"]

        def check(value: Any, path: str, errors: Errors) -> None:
            if not isinstance(value, kinds):
                errors.append(_error(shape, value, path, "Member must be of type list"))
                return
            for test, text in own:
                if not test(value):
                    errors.append(_error(shape, value, path, text))
            if inner is not None:
                scalar = self.scalar(member)
                if any(item is None or _wrong_type(member, item) or scalar.failures(item)
                       for item in value):
                    errors.append(_error(shape, value, path,
                                         f"Member must satisfy constraint: {inner}"))
                return
            validator = self.get(member)
            for i, item in enumerate(value, 1):
                item_path = f"{path}.{i}.member"
                if item is None:
                    errors.append(_error(member, None, item_path, _NOT_NULL))
                else:
                    validator(item, item_path, errors)

        self._by_name[shape.name] = check
        return check

    def _map(self, shape: Shape) -> Validator:
        own = self._collection_checks(shape)
        key_shape: Shape = shape.key  # type: ignore[attr-defined]
        value_shape: Shape = shape.value  # type: ignore[attr-defined]
        key_text = self._wrapped(key_shape, not_null=False)
        scalar_value = value_shape.type_name not in ("structure", "list", "map")
        value_text = self._wrapped(value_shape, not_null=True) if scalar_value else None
        kinds = _TYPES["map"]

        def check(value: Any, path: str, errors: Errors) -> None:
            if not isinstance(value, kinds):
                errors.append(_error(shape, value, path, "Member must be of type map"))
                return
            for test, text in own:
                if not test(value):
                    errors.append(_error(shape, value, path, text))
            keys = self.scalar(key_shape)
            if any(_wrong_type(key_shape, k) or keys.failures(k) for k in value):
                errors.append(_error(shape, value, path,
                                     f"Map keys must satisfy constraint: {key_text}"))
            if value_text is not None:
                values = self.scalar(value_shape)
                if any(v is None or _wrong_type(value_shape, v) or values.failures(v)
                       for v in value.values()):
                    errors.append(_error(shape, value, path,
                                         f"Map value must satisfy constraint: {value_text}"))
                return
            validator = self.get(value_shape)
            for key, item in value.items():
                item_path = f"{path}.{key}"
                if item is None:
                    errors.append(_error(value_shape, None, item_path, _NOT_NULL))
                else:
                    validator(item, item_path, errors)

        self._by_name[shape.name] = check
        return check

    def _collection_checks(self, shape: Shape) -> list[tuple[Callable[[Any], bool], str]]:
        meta = shape.metadata
        checks: list[tuple[Callable[[Any], bool], str]] = []
        if meta.get("max") is not None:
            checks.append((lambda v, h=meta["max"]: len(v) <= h,
                           f"Member must have length less than or equal to {meta['max']}"))
        if meta.get("min") is not None:
            checks.append((lambda v, lo=meta["min"]: len(v) >= lo,
                           f"Member must have length greater than or equal to {meta['min']}"))
        return checks

    def _wrapped(self, shape: Shape, not_null: bool) -> str:
        texts = [text for _, text in self.scalar(shape).checks]
        if not_null:
            texts.append(_NOT_NULL)
        return "[" + ", ".join(texts) + "]"

    def _scalar_validator(self, shape: Shape) -> Validator:
        scalar = self.scalar(shape)
        checks = scalar.checks
        kind = shape.type_name
        # A jsonvalue string carries any JSON document, decoded.
        kinds = _ANY if shape.serialization.get("jsonvalue") else _TYPES.get(kind, (object,))
        bare_name_limit = shape.name in _FUNCTION_NAME_SHAPES
        bare_checks = [c for c in checks if not c[1].startswith(_LENGTH_MAX)]
        type_text = f"Member must be of type {kind}"

        def check(value: Any, path: str, errors: Errors) -> None:
            if not isinstance(value, kinds) or (kind in _NUMERIC and isinstance(value, bool)):
                errors.append(_error(shape, value, path, type_text))
                return
            if kinds is _ANY:
                return
            if bare_name_limit and ":" not in value and len(value) > _BARE_NAME_MAX:
                errors.append(_error(shape, value, path, f"{_LENGTH_MAX}{_BARE_NAME_MAX}"))
                checks_left = bare_checks
            else:
                checks_left = checks
            for test, text in checks_left:
                if not test(value):
                    errors.append(_error(shape, value, path, text))

        return check


_NUMERIC = frozenset({"integer", "long", "double", "float"})
_ANY: tuple[type, ...] = (object,)


def _wrong_type(shape: Shape, value: Any) -> bool:
    kinds = _TYPES.get(shape.type_name, (object,))
    return not isinstance(value, kinds) or (shape.type_name in _NUMERIC
                                            and isinstance(value, bool))


_BY_SERVICE: dict[int, tuple[ServiceModel, _Validators]] = {}


def _validators(model: ServiceModel) -> _Validators:
    entry = _BY_SERVICE.get(id(model))
    if entry is None or entry[0] is not model:
        entry = _BY_SERVICE[id(model)] = (model, _Validators())
    return entry[1]
