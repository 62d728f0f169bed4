"""What the IAM operations share: store failures in IAM's words, resource ARNs, policy checks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

from lamina.api.iam import IamServices
from lamina.api.query import (
    DeleteConflict,
    EntityAlreadyExists,
    InvalidInput,
    LimitExceeded,
    MalformedPolicyDocument,
    NoSuchEntity,
)
from lamina.identity.authorize import Identity
from lamina.identity.errors import MalformedPolicy
from lamina.identity.policy import Kind, Policy, parse_policy
from lamina.store.api import AlreadyExists, InUse, NotFound, StoreError
from lamina.store.api import LimitExceeded as StoreLimit
from lamina.store.iam import ROLE, USER

_KIND_WORD = {USER: "user", ROLE: "role"}
T = TypeVar("T")


async def stored(services: IamServices, about: tuple[str, ...], method: Callable[..., T],
                 *args: Any) -> T:
    """``method(*args)`` on the IAM store, off the loop; a refusal raised in IAM's words about
    ``about`` = (kind, name[, detail]) (``refuse``)."""
    try:
        return await services.db(method, *args)
    except StoreError as exc:
        refuse(exc, *about)


async def store_change(services: IamServices, about: tuple[str, ...],
                       method: Callable[..., Any], *args: Any) -> None:
    """``stored`` for a change: the IAM view is rebuilt before the caller answers."""
    await stored(services, about, method, *args)
    await services.changed()


def checked_policy(document: str, kind: Kind = Kind.IDENTITY) -> Policy:
    try:
        return parse_policy(document, kind)
    except MalformedPolicy as exc:
        raise MalformedPolicyDocument(str(exc)) from None


def owner_arn(services: IamServices, kind: str, name: str, path: str | None = None) -> str:
    """The ARN of a user or role: from the directory when it exists, else from ``path``."""
    directory = services.directory
    record = directory.user(name) if kind == USER else directory.role(name)
    if record is not None:
        return services.arn(kind, record.name, record.path)
    return services.arn(kind, name, path or "/")


def user_resource(services: IamServices, params: dict[str, Any], identity: Identity) -> str:
    return owner_arn(services, USER, caller_user(params, identity), params.get("Path"))


def role_resource(services: IamServices, params: dict[str, Any], identity: Identity) -> str:
    return owner_arn(services, ROLE, params["RoleName"], params.get("Path"))


def caller_user(params: dict[str, Any], identity: Identity) -> str:
    """``UserName``, or the calling user's own name when it is left out (as IAM does)."""
    name = params.get("UserName")
    if name:
        return str(name)
    if identity.kind == "user":
        return identity.name
    raise InvalidInput("Must specify userName when calling with non-User credentials")


def list_resource(kind: str) -> Any:
    def resource(services: IamServices, params: dict[str, Any], identity: Identity) -> str:
        return services.arn(kind, "")
    return resource


def refuse(error: StoreError, kind: str, name: str, detail: str = "") -> NoReturn:
    """Raise IAM's error for a store refusal about entity ``name`` of ``kind``."""
    word = _KIND_WORD.get(kind, kind)
    what = str(error)
    if isinstance(error, AlreadyExists):
        raise EntityAlreadyExists(f"{word.capitalize()} with name {name} already exists.")
    if isinstance(error, NotFound):
        if what in (USER, ROLE):
            raise NoSuchEntity(f"The {_KIND_WORD[what]} with name {name} cannot be found.")
        if what == "policy" and detail:
            raise NoSuchEntity(f"The {word} policy with name {detail} cannot be found.")
        if what == "attachment":
            raise NoSuchEntity(f"Policy {detail} was not found.")
        if what == "access key":
            raise NoSuchEntity(f"The Access Key with id {detail} cannot be found.")
        raise NoSuchEntity(f"Policy {detail or name} does not exist or is not attachable.")
    if isinstance(error, InUse):
        if what == "attachments":
            raise DeleteConflict("Cannot delete a policy attached to entities.")
        if what == "access keys":
            raise DeleteConflict("Cannot delete entity, must delete access keys first.")
        if what == "policies":
            raise DeleteConflict("Cannot delete entity, must delete policies first.")
        raise DeleteConflict("Cannot delete entity, must detach all policies first.")
    if isinstance(error, StoreLimit):
        raise LimitExceeded("Cannot exceed quota for AccessKeysPerUser: 2")
    raise error
