"""What authorization costs on the invoke path, per call.

    .venv/bin/python bench/authorize.py [--calls 200000]

Measures ``Authorizer.check`` for an ``Invoke`` as ``LaminaApp._invoke`` calls it:
* root: the single comparison;
* a role session, decision cached (the steady state of a warm function calling another);
* a role session, evaluated afresh (first call after a policy change): identity (inline and
  managed policies) and the function's resource policy;
* an IAM user, cached;
with an empty loop as the baseline. Figures in microseconds per call (median of 5 runs).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from lamina.api.auth import Principal
from lamina.identity.authorize import Authorizer
from lamina.identity.directory import Directory
from lamina.identity.sessions import SessionRegistry
from lamina.store.iam import ROLE, USER, AccessKeyRecord, RoleRecord, SqlIamStore, UserRecord
from lamina.store.registry import open_store

FN = "arn:aws:lambda:us-east-1:000000000000:function:target"
POLICY = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
     "Resource": "*"},
    {"Effect": "Allow", "Action": "lambda:InvokeFunction",
     "Resource": "arn:aws:lambda:us-east-1:000000000000:function:tar*"},
    {"Effect": "Deny", "Action": "lambda:Delete*", "Resource": "*"}]})


def per_call_us(fn: Callable[[], None], calls: int) -> float:
    runs = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        runs.append((time.perf_counter() - start) / calls * 1e6)
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=200_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        store = open_store(f"sqlite:///{Path(directory) / 'iam.db'}")
        iam = SqlIamStore(store)  # type: ignore[arg-type]
        identities = Directory(iam, "000000000000")
        identities.bootstrap()
        iam.create_role(RoleRecord("worker", "AROAWORKER0000000000", "/", 0.0,
                                   '{"Version":"2012-10-17","Statement":[{"Effect":"Allow",'
                                   '"Principal":{"Service":"lambda.amazonaws.com"},'
                                   '"Action":"sts:AssumeRole"}]}'))
        iam.put_inline(ROLE, "worker", "p", POLICY)
        iam.attach(ROLE, "worker",
                   "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole")
        iam.create_user(UserRecord("bob", "AIDABOB0000000000000", "/", 0.0))
        iam.put_inline(USER, "bob", "p", POLICY)
        iam.create_key(AccessKeyRecord("AKIABOB0000000000000", "bob", "Active", 0.0,
                                       identities.seal_secret("AKIABOB0000000000000", "s")))
        identities.reload()
        sessions = SessionRegistry()
        authorizer = Authorizer("AKIAROOT000000000000", sessions, identities)
        session = sessions.issue("arn:aws:sts::000000000000:assumed-role/worker/fn",
                                 role_name="worker", session_name="fn", bound=True)
        root = Principal("AKIAROOT000000000000", "lambda")
        role = Principal(session.access_key_id, "lambda", session.session_token)
        user = Principal("AKIABOB0000000000000", "lambda")
        check = authorizer.check

        def fresh() -> None:
            authorizer._decisions.clear()
            check(role, "Invoke", FN)

        rows = {
            "baseline (empty call)": per_call_us(lambda: None, args.calls),
            "root": per_call_us(lambda: check(root, "Invoke", FN), args.calls),
            "role session, cached": per_call_us(lambda: check(role, "Invoke", FN), args.calls),
            "IAM user, cached": per_call_us(lambda: check(user, "Invoke", FN), args.calls),
            "role session, evaluated": per_call_us(fresh, max(1000, args.calls // 20)),
        }
        store.close()
    for name, value in rows.items():
        print(f"  {name:28s} {value:6.2f} µs per call")


if __name__ == "__main__":
    main()
