"""A function's configuration: Lambda's defaults, the semantic checks the model cannot express,
and the ``FunctionConfiguration`` document every function operation answers with.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import platform
from collections.abc import Mapping
from typing import Any

from lamina.api import snapstart
from lamina.api.naming import Naming
from lamina.engine.envvars import check_user_variables
from lamina.engine.platform_logs import RUNTIME_VERSIONS
from lamina.engine.runtimes import resolve_runtime
from lamina.errors import InvalidParameterValue
from lamina.invoke.destinations import parse_function_arn
from lamina.store.api import FunctionRecord

DEFAULT_TIMEOUT = 3
DEFAULT_MEMORY = 128
MIN_MEMORY, MAX_MEMORY = 128, 10_240
MIN_TIMEOUT, MAX_TIMEOUT = 1, 900
MIN_EPHEMERAL, MAX_EPHEMERAL = 512, 10_240

# Members of Create/UpdateFunctionConfiguration that are stored as given.
_PLAIN = ("Role", "Handler", "Description", "Timeout", "MemorySize", "Runtime", "KMSKeyArn",
          "TracingConfig", "DeadLetterConfig", "EphemeralStorage", "LoggingConfig")


def host_architecture() -> str:
    machine = platform.machine().lower()
    return "arm64" if machine in ("aarch64", "arm64") else "x86_64"


def lambda_timestamp(moment: datetime.datetime | None = None) -> str:
    """Lambda's ``LastModified`` format: ``2026-11-25T10:00:00.000+0000``."""
    moment = moment or datetime.datetime.now(datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


def new_config(params: Mapping[str, Any]) -> dict[str, Any]:
    """The stored configuration of a function being created, from CreateFunction's params."""
    if params.get("PackageType", "Zip") != "Zip" or params.get("Code", {}).get("ImageUri"):
        raise InvalidParameterValue("lamina runs .zip packages only; PackageType Image is not "
                                    "supported.")
    config: dict[str, Any] = {
        "Description": "",
        "Timeout": DEFAULT_TIMEOUT,
        "MemorySize": DEFAULT_MEMORY,
        "PackageType": "Zip",
        "Architectures": [host_architecture()],
        "EphemeralStorage": {"Size": 512},
        "TracingConfig": {"Mode": "PassThrough"},
        "SnapStart": {"ApplyOn": "None", "OptimizationStatus": "Off"},
    }
    if "Runtime" not in params:
        raise InvalidParameterValue("Runtime is required for .zip deployment packages.")
    if "Handler" not in params:
        raise InvalidParameterValue("Handler is required for .zip deployment packages.")
    architectures = params.get("Architectures")
    if architectures:
        check_architectures(architectures)
        config["Architectures"] = list(architectures)
    return apply_changes(config, params)


def check_architectures(architectures: list[str]) -> None:
    if len(architectures) != 1:
        raise InvalidParameterValue("Architectures must hold exactly one value.")
    if architectures[0] != host_architecture():
        raise InvalidParameterValue(
            f"Architecture {architectures[0]} cannot run on this host ({host_architecture()}).")


def apply_changes(config: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` with the configuration members of ``params`` applied and checked."""
    updated = dict(config)
    for key in _PLAIN:
        if key in params:
            updated[key] = params[key]
    if "Environment" in params:
        variables = params["Environment"].get("Variables") or {}
        check_user_variables(variables)
        updated["Environment"] = {"Variables": dict(variables)}
    if "Layers" in params:
        # Already checked and resolved to stored entries by the operation (the checks need
        # the store): lamina.api.layers.function_layers. An empty list removes them.
        updated["Layers"] = [dict(entry) for entry in params["Layers"] or []]
        if not updated["Layers"]:
            del updated["Layers"]
    if "VpcConfig" in params:
        vpc = vpc_config(params["VpcConfig"] or {})
        if vpc is None:
            updated.pop("VpcConfig", None)
        else:
            updated["VpcConfig"] = vpc
    if "SnapStart" in params:
        apply_on = params["SnapStart"].get("ApplyOn", "None")
        updated["SnapStart"] = {"ApplyOn": apply_on, "OptimizationStatus": "Off"}
    _check(updated)
    return updated


def vpc_config(given: Mapping[str, Any]) -> dict[str, Any] | None:
    """Lambda's ``VpcConfigResponse`` for a ``VpcConfig``; ``None`` when it names no subnet.

    lamina has no VPCs: a function with subnets runs in a network namespace of its own whose
    only route leads to lamina's API (as a VPC function without a NAT gateway reaches only the
    endpoints inside its VPC). The ``VpcId`` is derived from the subnets, so it is stable.
    """
    subnets = list(given.get("SubnetIds") or [])
    if not subnets:
        return None
    digest = hashlib.sha256(",".join(sorted(subnets)).encode()).hexdigest()[:17]
    return {"SubnetIds": subnets, "SecurityGroupIds": list(given.get("SecurityGroupIds") or []),
            "VpcId": f"vpc-{digest}",
            "Ipv6AllowedForDualStack": bool(given.get("Ipv6AllowedForDualStack", False))}


def _check(config: Mapping[str, Any]) -> None:
    resolve_runtime(config["Runtime"])
    snapstart.check(config)
    handler = config.get("Handler", "")
    if config["Runtime"].startswith(("python", "nodejs")) and "." not in handler:
        raise InvalidParameterValue(
            f"Handler {handler!r} must be of the form module.function (file.export for node).")
    timeout = config["Timeout"]
    if not MIN_TIMEOUT <= timeout <= MAX_TIMEOUT:
        raise InvalidParameterValue(
            f"Timeout must be between {MIN_TIMEOUT} and {MAX_TIMEOUT} seconds; got {timeout}.")
    memory = config["MemorySize"]
    if not MIN_MEMORY <= memory <= MAX_MEMORY:
        raise InvalidParameterValue(
            f"MemorySize must be between {MIN_MEMORY} and {MAX_MEMORY} MB; got {memory}.")
    size = config.get("EphemeralStorage", {}).get("Size", 512)
    if not MIN_EPHEMERAL <= size <= MAX_EPHEMERAL:
        raise InvalidParameterValue(
            f"EphemeralStorage.Size must be between {MIN_EPHEMERAL} and {MAX_EPHEMERAL} MB.")
    _check_dead_letter(config.get("DeadLetterConfig") or {})
    logging = config.get("LoggingConfig") or {}
    if logging.get("LogFormat", "Text") == "Text" and (
            logging.get("ApplicationLogLevel") or logging.get("SystemLogLevel")):
        raise InvalidParameterValue(
            "To set ApplicationLogLevel or SystemLogLevel, LogFormat must be JSON.")


def _check_dead_letter(dead_letter: Mapping[str, Any]) -> None:
    """lamina's dead-letter targets are functions (no SQS or SNS); an empty ARN removes it."""
    arn = dead_letter.get("TargetArn") or ""
    if arn and parse_function_arn(arn) is None:
        raise InvalidParameterValue(
            f"The DeadLetterConfig target {arn} is invalid: lamina sends dead letters to Lambda "
            "functions only (arn:aws:lambda:<region>:<account>:function:<name>).")


def describe(record: FunctionRecord, naming: Naming) -> dict[str, Any]:
    """The ``FunctionConfiguration`` of a stored function version, as Lambda shows it."""
    config = dict(record.config)
    qualifier = None if record.version == "$LATEST" else record.version
    logging = {"LogFormat": "Text", "LogGroup": f"/aws/lambda/{record.name}"}
    logging.update(config.get("LoggingConfig") or {})
    config["LoggingConfig"] = logging
    runtime_version = RUNTIME_VERSIONS.get(config.get("Runtime", ""), "")
    if "SnapStart" in config:
        config["SnapStart"] = snapstart.shown(record.version, config)
    config.update({
        "FunctionName": record.name,
        "FunctionArn": naming.function_arn(record.name, qualifier),
        "CodeSize": record.code_size,
        "CodeSha256": base64.b64encode(bytes.fromhex(record.code_sha256)).decode(),
        "LastModified": record.last_modified,
        "Version": record.version,
        "RevisionId": record.revision_id,
        "RuntimeVersionConfig": {
            "RuntimeVersionArn": f"arn:aws:lambda:{naming.region}::runtime:{runtime_version}"},
    })
    return config
