"""The platform's SnapStart lines in both log formats (RESTORE_START, RESTORE_REPORT, REPORT)."""

from __future__ import annotations

import json

from lamina.engine.platform_logs import PlatformLines, Report

ARN = "arn:aws:lambda:us-east-1:000000000000:function:f"


def test_text_lines_of_a_restored_environment() -> None:
    lines = PlatformLines("python3.11", ARN, json_format=False)
    assert lines.restore_start("3") == ("RESTORE_START Runtime Version: python:3.11.v1\t"
                                        "Runtime Version ARN: "
                                        "arn:aws:lambda:::runtime:python:3.11.v1")
    assert lines.restore_report(12.345) == "RESTORE_REPORT Restore Duration: 12.35 ms"
    assert lines.restore_report(3.0, "error", "Runtime.AfterRestoreError") == (
        "RESTORE_REPORT Restore Duration: 3.00 ms\tStatus: error\t"
        "Error Type: Runtime.AfterRestoreError")
    report = lines.report(Report("r1", 1.2, 128, 40, restore_ms=4.21))
    assert "\tRestore Duration: 4.21 ms\tBilled Restore Duration: 5 ms\t" in report
    assert "Init Duration" not in report and "\tBilled Duration: 2 ms\t" in report


def test_json_lines_of_a_restored_environment() -> None:
    lines = PlatformLines("python3.11", ARN, json_format=True)
    start = json.loads(lines.restore_start("3"))
    assert start["type"] == "platform.restoreStart"
    assert start["record"]["functionName"] == "f" and start["record"]["functionVersion"] == "3"
    done = json.loads(lines.restore_report(7.5))
    assert done["type"] == "platform.restoreReport"
    assert done["record"] == {"status": "success", "metrics": {"durationMs": 7.5}}
    report = json.loads(lines.report(Report("r1", 1.2, 128, 40, restore_ms=4.21)))
    assert report["record"]["metrics"]["restoreDurationMs"] == 4.21
    assert report["record"]["metrics"]["billedRestoreDurationMs"] == 5
    assert "initDurationMs" not in report["record"]["metrics"]
    init = json.loads(lines.init_report(10.0, "init", "success", None, "snap-start"))
    assert init["record"]["initializationType"] == "snap-start"
