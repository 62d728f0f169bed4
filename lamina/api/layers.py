"""Layers as functions use them: ARNs, the ``Layers`` a function may reference, the size and
compatibility rules, and the merged tree mounted read-only at ``/opt``.

A function's stored ``Layers`` entries are Lambda's ``{"Arn", "CodeSize"}`` plus two members the
model does not have (so no answer shows them): the layer zip's ``CodeSha256`` (hex) and its
``UnzippedSize``. The function keeps working from those even after its layer versions are
deleted, as on AWS. The merged tree of one ordered list of layers is built once, under
``<data>/layers/<sha256 of the digests in order>``: each layer is unpacked once (under
``unpacked/``) and the trees are merged in order, a later layer's file replacing an earlier
one's.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lamina.api.catalog import catalog
from lamina.api.code import MAX_UNZIPPED_BYTES
from lamina.errors import InvalidParameterValue
from lamina.store.api import BlobStore
from lamina.store.archives import inspect_archive, unpack
from lamina.store.layers import LayerVersionRecord

if TYPE_CHECKING:
    from lamina.api.context import ApiContext
    from lamina.api.naming import Naming

MAX_LAYERS = 5
_VERSION_ARN = re.compile(
    r"^arn:aws[a-zA-Z-]*:lambda:([a-z0-9-]+):(\d{12}):layer:([a-zA-Z0-9-_]+):([0-9]+)$")
_LAYER_ARN = re.compile(r"^arn:aws[a-zA-Z-]*:lambda:([a-z0-9-]+):(\d{12}):layer:([a-zA-Z0-9-_]+)$")


def layer_arn(naming: Naming, name: str) -> str:
    return f"arn:aws:lambda:{naming.region}:{naming.account_id}:layer:{name}"


def version_arn(naming: Naming, name: str, version: int) -> str:
    return f"{layer_arn(naming, name)}:{version}"


def parse_version_arn(naming: Naming, arn: str) -> tuple[str, int] | None:
    """(layer name, version) of a layer version ARN of this deployment, else ``None``."""
    match = _VERSION_ARN.match(arn)
    if match is None or match[1] != naming.region or match[2] != naming.account_id:
        return None
    return match[3], int(match[4])


def layer_name(naming: Naming, text: str) -> str | None:
    """A ``LayerName`` parameter (a name or a layer ARN) as a name; ``None`` when the ARN is of
    another region or account (no such layer here)."""
    if not text.startswith("arn:"):
        return text
    match = _LAYER_ARN.match(text)
    if match is None or match[1] != naming.region or match[2] != naming.account_id:
        return None
    return match[3]


async def function_layers(context: ApiContext, arns: Sequence[str],
                          runtime: str | None, architectures: Sequence[str]
                          ) -> list[dict[str, Any]]:
    """The stored ``Layers`` entries for a function's ``Layers`` parameter, after Lambda's
    checks: at most five, each existing, one version per layer, compatible with the runtime
    and architecture."""
    if len(arns) > MAX_LAYERS:
        raise InvalidParameterValue(f"Cannot reference more than {MAX_LAYERS} layers.")
    entries: list[dict[str, Any]] = []
    seen: dict[str, str] = {}
    for arn in arns:
        parsed = parse_version_arn(context.naming, arn)
        record = None
        if parsed is not None:
            record = await context.db(catalog(context).layers.get, *parsed)
        if parsed is None or record is None:
            raise InvalidParameterValue(f"Layer version {arn} does not exist.")
        if parsed[0] in seen:
            raise InvalidParameterValue(
                "Two different versions of the same layer are not allowed to be referenced in "
                f"the same function. {seen[parsed[0]]} and {arn} are versions of the same "
                "layer.")
        seen[parsed[0]] = arn
        _check_compatible(record, arn, runtime, architectures)
        entries.append({"Arn": arn, "CodeSize": record.code_size, "CodeSha256": record.digest,
                        "UnzippedSize": record.unzipped_size})
    return entries


async def recheck_layers(context: ApiContext, entries: Sequence[Mapping[str, Any]],
                         runtime: str) -> None:
    """A new runtime must still suit the layers a function already has. A layer version
    deleted since is kept by the function as it was, so it is not checked again."""
    for entry in entries:
        parsed = parse_version_arn(context.naming, entry["Arn"])
        if parsed is None:
            continue
        record = await context.db(catalog(context).layers.get, *parsed)
        if record is not None:
            _check_compatible(record, entry["Arn"], runtime, ())


def _check_compatible(record: LayerVersionRecord, arn: str, runtime: str | None,
                      architectures: Sequence[str]) -> None:
    if record.runtimes and runtime is not None and runtime not in record.runtimes:
        raise InvalidParameterValue(
            f"Layer version {arn} is not compatible with runtime {runtime}; its compatible "
            f"runtimes are {', '.join(record.runtimes)}.")
    wrong = [a for a in architectures if record.architectures and a not in record.architectures]
    if wrong:
        raise InvalidParameterValue(
            f"Layer version {arn} is not compatible with architecture {wrong[0]}; its "
            f"compatible architectures are {', '.join(record.architectures)}.")


async def check_total_size(blobs: BlobStore, code_sha256: str,
                           config: Mapping[str, Any]) -> None:
    """The function's code and its layers, unzipped, must fit in Lambda's 250 MB."""
    layers = config.get("Layers") or []
    if not layers:
        return
    code = await asyncio.to_thread(blobs.read, code_sha256)
    size = (await asyncio.to_thread(inspect_archive, code)).unzipped_size
    size += sum(int(entry.get("UnzippedSize", 0)) for entry in layers)
    if size > MAX_UNZIPPED_BYTES:
        raise InvalidParameterValue(
            "Function code combined with layers exceeds the maximum allowed size of "
            f"{MAX_UNZIPPED_BYTES} bytes. The actual size is {size} bytes.")


def opt_dir(layers_root: Path, config: Mapping[str, Any]) -> Path | None:
    """Where the merged tree of the function's layers is (or will be); ``None`` without."""
    digests = [str(entry["CodeSha256"]) for entry in config.get("Layers") or []]
    if not digests:
        return None
    return layers_root / hashlib.sha256("\n".join(digests).encode()).hexdigest()


async def ensure_opt(blobs: BlobStore, layers_root: Path | None,
                     config: Mapping[str, Any]) -> Path | None:
    """Build the merged layer tree of ``config`` unless it exists already."""
    if layers_root is None:
        return None
    target = opt_dir(layers_root, config)
    if target is None or target.exists():
        return target
    digests = [str(entry["CodeSha256"]) for entry in config["Layers"]]
    await asyncio.to_thread(_build, blobs, layers_root, digests, target)
    return target


def _build(blobs: BlobStore, layers_root: Path, digests: list[str], target: Path) -> None:
    parts = []
    for digest in digests:
        part = layers_root / "unpacked" / digest
        unpack(blobs.path(digest), part, max_unzipped=MAX_UNZIPPED_BYTES)
        parts.append(part)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.merge-", dir=layers_root))
    try:
        for part in parts:
            _merge(part, tmp)
        os.chmod(tmp, 0o755)
        try:
            os.rename(tmp, target)
        except OSError:
            if not target.exists():  # else another builder won the rename: same contents
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _merge(source: Path, dest: Path) -> None:
    """Lay ``source`` over ``dest``: its files replace whatever ``dest`` has at their paths."""
    for directory, subdirs, files in os.walk(source):
        relative = Path(directory).relative_to(source)
        here = dest / relative
        for name in subdirs:
            path, origin = here / name, Path(directory) / name
            if origin.is_symlink():
                _replace_with(origin, path)
                continue
            if path.is_symlink() or (path.exists() and not path.is_dir()):
                path.unlink()
            path.mkdir(mode=0o755, exist_ok=True)
        for name in files:
            _replace_with(Path(directory) / name, here / name)


def _replace_with(origin: Path, path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    if origin.is_symlink():
        os.symlink(os.readlink(origin), path)
        return
    try:
        os.link(origin, path)  # the unpacked layers are never written again: share the inode
    except OSError:
        shutil.copy2(origin, path)
