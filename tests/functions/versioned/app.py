"""Says which code (mark.txt, added by each test's zip) and which version answered."""

import os

MARK = open(os.path.join(os.path.dirname(__file__), "mark.txt")).read().strip()


def handler(event, context):
    if event.get("die"):
        os._exit(1)
    if event.get("sleep"):
        import time

        time.sleep(event["sleep"])
    return {
        "mark": MARK,
        "version": context.function_version,
        "env_version": os.environ.get("AWS_LAMBDA_FUNCTION_VERSION"),
        "arn": context.invoked_function_arn,
        "stream": os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME"),
        "init": os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE"),
        "variables": {k: v for k, v in os.environ.items() if k.startswith("APP_")},
    }
