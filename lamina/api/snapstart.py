"""SnapStart as the API has it: which versions it applies to, their snapshot made at publish (and
again at start-up), and what a version shows (``SnapStart.OptimizationStatus``, ``State``).

It applies to published versions of python3.11 functions configured with
``SnapStart: {ApplyOn: PublishedVersions}``; ``$LATEST`` never (its ``OptimizationStatus`` is
``Off``). Other runtimes are refused when configured, with Lambda's words. PublishVersion runs
the new version's Init once in its snapshot before it answers; when that Init fails or overruns
its 10 s, the version stays, marked ``State: Failed`` with the reason, and PublishVersion fails
with ``SnapStartException`` / ``SnapStartTimeoutException``. A version published along with a
create or an update (``Publish: true``) gets its snapshot at its first cold start.

This module holds the rules (a leaf: the configuration and the engine's target read them);
``snapstart_publish`` does the work at publish and at start-up.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lamina.errors import InvalidParameterValue

LATEST = "$LATEST"
RUNTIMES = frozenset({"python3.11"})
PUBLISHED_VERSIONS = "PublishedVersions"


def configured(config: Mapping[str, Any]) -> bool:
    return (config.get("SnapStart") or {}).get("ApplyOn") == PUBLISHED_VERSIONS


def applies(version: str, config: Mapping[str, Any]) -> bool:
    """Whether environments of this version are forks of a snapshot."""
    return version != LATEST and configured(config) and config.get("Runtime") in RUNTIMES


def check(config: Mapping[str, Any]) -> None:
    """Refuse SnapStart where lamina cannot apply it (Create/UpdateFunctionConfiguration)."""
    if not configured(config):
        return
    runtime = config.get("Runtime")
    if runtime not in RUNTIMES:
        raise InvalidParameterValue(f"{runtime} is not supported for SnapStart enabled "
                                    "functions.")
    if (config.get("VpcConfig") or {}).get("SubnetIds"):
        raise InvalidParameterValue("lamina does not support SnapStart for functions with "
                                    "VpcConfig yet.")


def shown(version: str, config: Mapping[str, Any]) -> dict[str, str]:
    """The ``SnapStart`` member of a version's configuration, as Lambda shows it."""
    on = applies(version, config) and config.get("State") != "Failed"
    return {"ApplyOn": (config.get("SnapStart") or {}).get("ApplyOn", "None"),
            "OptimizationStatus": "On" if on else "Off"}
