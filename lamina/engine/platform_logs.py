"""The platform's own log lines (INIT_START, START, END, REPORT, INIT_REPORT, and for SnapStart
environments RESTORE_START and RESTORE_REPORT), as Lambda has them.

With ``LoggingConfig.LogFormat = Text`` they are the familiar tab-separated lines; with ``JSON``
they become telemetry-style records (``{"time", "type": "platform.report", "record": {...}}``),
which is what CloudWatch shows for JSON-format functions (spec/invoke.md).
"""

from __future__ import annotations

import datetime
import json
import math
from dataclasses import dataclass

RUNTIME_VERSIONS = {
    "python3.11": "python:3.11.v1",
    "nodejs20.x": "nodejs:20.v1",
    "provided.al2023": "provided:al2023.v1",
    "provided.al2": "provided:al2.v1",
}


def iso_now() -> str:
    now = datetime.datetime.now(datetime.UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


@dataclass
class Report:
    request_id: str
    duration_ms: float
    memory_mb: int
    max_memory_mb: int
    init_ms: float | None = None
    restore_ms: float | None = None
    status: str | None = None  # None (success), "error", "timeout"
    error_type: str | None = None

    @property
    def billed_ms(self) -> int:
        return max(1, math.ceil(self.duration_ms + (self.init_ms or 0.0)))

    @property
    def billed_restore_ms(self) -> int:
        """A restore is billed on its own line (``Billed Restore Duration``), as Lambda does
        for SnapStart's Python and .NET runtimes."""
        return math.ceil(self.restore_ms or 0.0)


def _json(kind: str, record: dict[str, object]) -> str:
    return json.dumps({"time": iso_now(), "type": kind, "record": record}, separators=(",", ":"))


class PlatformLines:
    """Formats the platform lines of one function in its configured log format.

    ``LoggingConfig.SystemLogLevel`` (JSON format only) filters them: the lifecycle records
    (start, runtimeDone, initStart, restoreStart, and reports of successful phases) are INFO;
    the reports of phases that failed or timed out are WARN. At WARN only those remain. A
    filtered line is ``None``, which the environment does not write.
    """

    def __init__(self, runtime: str, function_arn: str, json_format: bool,
                 system_log_level: str | None = None) -> None:
        self.runtime_version = RUNTIME_VERSIONS.get(runtime, runtime)
        self.function_arn = function_arn
        self.json_format = json_format
        self.warnings_only = json_format and (system_log_level or "").upper() == "WARN"

    def init_start(self, init_type: str = "on-demand") -> str | None:
        if self.warnings_only:
            return None
        arn = f"arn:aws:lambda:::runtime:{self.runtime_version}"
        if self.json_format:
            return _json("platform.initStart", {
                "initializationType": init_type, "phase": "init",
                "runtimeVersion": self.runtime_version, "runtimeVersionArn": arn,
                "functionName": self.function_arn.rsplit(":", 1)[-1],
            })
        return f"INIT_START Runtime Version: {self.runtime_version}\tRuntime Version ARN: {arn}"

    def restore_start(self, version: str) -> str | None:
        """The first line of an environment forked from a SnapStart snapshot."""
        if self.warnings_only:
            return None
        arn = f"arn:aws:lambda:::runtime:{self.runtime_version}"
        if self.json_format:
            return _json("platform.restoreStart", {
                "runtimeVersion": self.runtime_version, "runtimeVersionArn": arn,
                "functionName": self.function_arn.rsplit(":", 1)[-1],
                "functionVersion": version,
            })
        return f"RESTORE_START Runtime Version: {self.runtime_version}\tRuntime Version ARN: {arn}"

    def restore_report(self, restore_ms: float, status: str = "success",
                       error_type: str | None = None) -> str | None:
        if self.warnings_only and status == "success":
            return None
        if self.json_format:
            record: dict[str, object] = {"status": status,
                                         "metrics": {"durationMs": round(restore_ms, 2)}}
            if error_type:
                record["errorType"] = error_type
            return _json("platform.restoreReport", record)
        line = f"RESTORE_REPORT Restore Duration: {restore_ms:.2f} ms"
        if status != "success":
            line += f"\tStatus: {status}"
        if error_type:
            line += f"\tError Type: {error_type}"
        return line

    def start(self, request_id: str, version: str) -> str | None:
        if self.warnings_only:
            return None
        if self.json_format:
            return _json("platform.start", {"requestId": request_id, "version": version})
        return f"START RequestId: {request_id} Version: {version}"

    def end(self, request_id: str) -> str | None:
        if self.warnings_only:
            return None
        if self.json_format:
            return _json("platform.runtimeDone", {"requestId": request_id, "status": "success"})
        return f"END RequestId: {request_id}"

    def report(self, report: Report) -> str | None:
        if self.warnings_only and not report.status:
            return None
        if self.json_format:
            metrics: dict[str, object] = {
                "durationMs": round(report.duration_ms, 2),
                "billedDurationMs": report.billed_ms,
                "memorySizeMB": report.memory_mb,
                "maxMemoryUsedMB": report.max_memory_mb,
            }
            if report.init_ms is not None:
                metrics["initDurationMs"] = round(report.init_ms, 2)
            if report.restore_ms is not None:
                metrics["restoreDurationMs"] = round(report.restore_ms, 2)
                metrics["billedRestoreDurationMs"] = report.billed_restore_ms
            record: dict[str, object] = {"requestId": report.request_id, "metrics": metrics,
                                         "status": report.status or "success"}
            if report.error_type:
                record["errorType"] = report.error_type
            return _json("platform.report", record)
        # One formatted string for the fields every REPORT has (it is written on every invoke).
        line = (f"REPORT RequestId: {report.request_id}\tDuration: {report.duration_ms:.2f} ms"
                f"\tBilled Duration: {report.billed_ms} ms\tMemory Size: {report.memory_mb} MB"
                f"\tMax Memory Used: {report.max_memory_mb} MB\t")
        if report.init_ms is not None:
            line += f"Init Duration: {report.init_ms:.2f} ms\t"
        if report.restore_ms is not None:
            line += (f"Restore Duration: {report.restore_ms:.2f} ms\t"
                     f"Billed Restore Duration: {report.billed_restore_ms} ms\t")
        if report.status:
            line += f"Status: {report.status}\t"
        if report.error_type:
            line += f"Error Type: {report.error_type}\t"
        return line

    def init_report(self, init_ms: float, phase: str, status: str, error_type: str | None,
                    init_type: str = "on-demand") -> str | None:
        if self.warnings_only and status == "success":
            return None
        if self.json_format:
            record: dict[str, object] = {"initializationType": init_type, "phase": phase,
                                         "status": status,
                                         "metrics": {"durationMs": round(init_ms, 2)}}
            if error_type:
                record["errorType"] = error_type
            return _json("platform.initReport", record)
        line = f"INIT_REPORT Init Duration: {init_ms:.2f} ms\tPhase: {phase}\tStatus: {status}"
        if error_type:
            line += f"\tError Type: {error_type}"
        return line
