"""A SnapStart function: what its Init, its hooks and each restored environment saw."""

import os
import random
import time

from snapshot_restore_py import register_after_restore, register_before_snapshot

INIT = {
    "pid": os.getpid(),
    "random": random.random(),
    "init_type": os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE"),
    "before": 0,
    "after": [],
}
print(f"snapstart init ran {INIT['random']}", flush=True)

if os.environ.get("FAIL_INIT"):
    raise RuntimeError("init failed on purpose")
if os.environ.get("SLOW_INIT"):
    time.sleep(float(os.environ["SLOW_INIT"]))


@register_before_snapshot
def before():
    INIT["before"] += 1
    print("before-snapshot hook ran", flush=True)


@register_after_restore
def after():
    if os.environ.get("FAIL_RESTORE"):
        raise ValueError("restore failed on purpose")
    INIT["after"].append(random.random())
    print("after-restore hook ran", flush=True)


def handler(event, context):
    action = event.get("action", "describe")
    if "write" in event:
        with open("/tmp/" + event["write"], "w") as f:
            f.write("x")
    if action == "sleep":
        time.sleep(event.get("seconds", 0.5))
    if action == "alloc":
        block = bytearray(event["mb"] << 20)
        for i in range(0, len(block), 4096):
            block[i] = 1
        return {"allocated": len(block)}
    if action == "read_path":
        try:
            return {"ok": True, "entries": sorted(os.listdir(event["path"]))}
        except OSError as exc:
            return {"ok": False, "error": str(exc)}
    return {
        "init": INIT,
        "uid": os.getuid(),
        "pid": os.getpid(),
        "pids": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
        "random": random.random(),
        "init_type": os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE"),
        "stream": context.log_stream_name,
        "tmp": sorted(os.listdir("/tmp")),
        "version": context.function_version,
    }
