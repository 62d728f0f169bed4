"""Tells the test what it received: POSTs each event to RECORD_URL (the test's collector on the
host's loopback), then acts on event["action"] when the event asks for something, or fails
every time with ALWAYS_FAIL set."""

import json
import os
import time
import urllib.request


def _record(event, context):
    body = {"function": context.function_name, "requestId": context.aws_request_id,
            "invokedArn": context.invoked_function_arn, "at": time.time(), "event": event}
    request = urllib.request.Request(os.environ["RECORD_URL"], data=json.dumps(body).encode(),
                                     method="POST", headers={"content-type": "application/json"})
    urllib.request.urlopen(request, timeout=10).read()


def handler(event, context):
    _record(event, context)
    if os.environ.get("ALWAYS_FAIL"):
        raise RuntimeError("this function always fails")
    action = event.get("action") if isinstance(event, dict) else None
    if action == "fail":
        raise ValueError(event.get("message", "failed on purpose"))
    if action == "sleep":
        time.sleep(event["seconds"])
    return {"handled": event.get("id") if isinstance(event, dict) else None}
