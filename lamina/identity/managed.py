"""What every lamina has from its first start: the AWS-managed policies deployment tools
attach by ARN, and the default execution role ``lamina-function``.

The default role trusts ``lambda.amazonaws.com`` and carries ``AWSLambdaBasicExecutionRole``,
so ``lamina deploy`` (and any script written before roles were checked) has a role to name.
It is re-created at start when missing; its policies are the operator's to change.
"""

from __future__ import annotations

import json
import time

from lamina.store.iam import PolicyRecord, RoleRecord

DEFAULT_ROLE = "lamina-function"
LAMBDA_SERVICE = "lambda.amazonaws.com"

_MANAGED = {
    "service-role/AWSLambdaBasicExecutionRole": (
        "ANPAJNCQGXC42545SKXIK",
        "Provides write permissions to CloudWatch Logs.",
        [{"Effect": "Allow", "Action": ["logs:CreateLogGroup", "logs:CreateLogStream",
                                        "logs:PutLogEvents"], "Resource": "*"}]),
    "service-role/AWSLambdaRole": (
        "ANPAJX4DPCRGTC4NFDUXI",
        "Default policy for AWS Lambda service role.",
        [{"Effect": "Allow", "Action": ["lambda:InvokeFunction"], "Resource": ["*"]}]),
    "AdministratorAccess": (
        "ANPAIWMBCKSKIEE64ZLYK",
        "Provides full access to AWS services and resources.",
        [{"Effect": "Allow", "Action": "*", "Resource": "*"}]),
}

BASIC_EXECUTION_ARN = "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"


def lambda_trust_policy() -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": LAMBDA_SERVICE},
        "Action": "sts:AssumeRole"}]})


def aws_managed_policies() -> list[PolicyRecord]:
    created = 1_420_070_400.0  # AWS-managed policies predate any lamina
    records = []
    for path_name, (policy_id, description, statements) in _MANAGED.items():
        path, _, name = path_name.rpartition("/")
        records.append(PolicyRecord(
            arn=f"arn:aws:iam::aws:policy/{path_name}", name=name, id=policy_id,
            path=f"/{path}/" if path else "/",
            document=json.dumps({"Version": "2012-10-17", "Statement": statements}),
            description=description, created=created, updated=created, aws_managed=True))
    return records


def default_role(role_id: str) -> RoleRecord:
    return RoleRecord(name=DEFAULT_ROLE, id=role_id, path="/", created=time.time(),
                      trust_policy=lambda_trust_policy(),
                      description="lamina's default execution role")
