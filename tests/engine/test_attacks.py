"""The attack battery: functions that each try one escape. Every attempt must fail, and after
each the server answers its health check, still lists every function and still runs them.

The attacker (``tests/functions/attacker``) carries boto3 in its zip, so it can use the
temporary credentials of its own environment against lamina's API.
"""

from __future__ import annotations

import datetime
import json
import socket
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest
from support import FUNCTIONS, create, ensure_role, function_zip, invoke, unique, zip_directory

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "identity"))
from iam_helpers import allow, client_for, doc, signed_request

PROBE = function_zip("probe")
EPERM = 1


@pytest.fixture(scope="module")
def attacker_zip(boto3_dir: Path) -> bytes:
    extra = {f"vendor/{p.relative_to(boto3_dir).as_posix()}": p.read_bytes()
             for p in boto3_dir.rglob("*")
             if p.is_file() and p.relative_to(boto3_dir).parts[0] not in ("bin",)
             and not p.relative_to(boto3_dir).parts[0].endswith(".dist-info")}
    return zip_directory(FUNCTIONS / "attacker", extra=extra)


@pytest.fixture(scope="module")
def victim(lam: Any) -> str:
    """A function with a secret in its environment, warm while the attacks run."""
    name = create(lam, function_zip("hello"), Environment={"Variables": {
        "VICTIM_SECRET": "s3cr3t-of-the-victim"}})
    invoke(lam, name)
    return name


@pytest.fixture(scope="module")
def role(server: Any, victim: str) -> str:
    """May invoke the victim and nothing else."""
    iam = server.client("iam")
    name = unique("attacker-role")
    arn = ensure_role(iam, name)
    iam.put_role_policy(RoleName=name, PolicyName="invoke-victim", PolicyDocument=doc(allow(
        "lambda:InvokeFunction", f"arn:aws:lambda:us-east-1:000000000000:function:{victim}")))
    return arn


@pytest.fixture(scope="module")
def attacker(lam: Any, attacker_zip: bytes, role: str) -> str:
    return create(lam, attacker_zip, Role=role, Timeout=30, MemorySize=256)


@pytest.fixture(scope="module")
def vpc_attacker(lam: Any, attacker_zip: bytes, role: str) -> str:
    return create(lam, attacker_zip, Role=role, Timeout=30, MemorySize=256,
                  VpcConfig={"SubnetIds": ["subnet-0a1b2c3d"], "SecurityGroupIds": ["sg-1"]})


@pytest.fixture(autouse=True)
def still_healthy(server: Any, lam: Any) -> Iterator[None]:
    """After each attack: healthy, nothing lost, functions still run."""
    before = _names(lam)
    yield
    with urllib.request.urlopen(f"{server.endpoint}/_lamina/health", timeout=10) as answer:
        assert answer.status == 200
    assert before <= _names(lam)
    probe = create(lam, function_zip("hello"))
    assert invoke(lam, probe)[1] == {"hello": "world"}


def _names(lam: Any) -> set[str]:
    names: set[str] = set()
    for page in lam.get_paginator("list_functions").paginate():
        names |= {f["FunctionName"] for f in page["Functions"]}
    return names


def attack(lam: Any, name: str, event: dict[str, Any]) -> Any:
    response, body = invoke(lam, name, event)
    assert "FunctionError" not in response, body
    return body


def test_read_the_data_dir_and_other_functions_code(lam: Any, server: Any, attacker: str,
                                                    victim: str) -> None:
    data = Path(server.data_dir)
    sha = lam.get_function(FunctionName=victim)["Configuration"]["CodeSha256"]
    paths = [str(data / "lamina.db"), str(data / "credentials.json"), str(data / "master.key"),
             str(data / "code"), "/.lamina/code", "/etc/shadow", "/etc/gshadow",
             "/proc/1/root/etc/shadow", str(data / "code" / sha / "app.py")]
    result = attack(lam, attacker, {"action": "read_files", "paths": paths})
    assert all(not r["ok"] for r in result.values()), result


def test_read_another_environments_variables(lam: Any, attacker: str) -> None:
    result = attack(lam, attacker, {"action": "environs"})
    assert "s3cr3t-of-the-victim" not in json.dumps(result)
    assert len(result["environs"]) < 10  # only this environment's own processes


def test_signal_a_process_outside(lam: Any, server: Any, attacker: str) -> None:
    result = attack(lam, attacker, {"action": "signal", "pid": server.process.pid})
    assert result["ok"] is False
    assert server.process.poll() is None


def test_fork_bomb(lam: Any) -> None:
    probe = create(lam, PROBE, Timeout=20, MemorySize=2048)
    body = attack(lam, probe, {"action": "fork_bomb", "count": 5000})
    assert body["failed"] == 1 and body["forked"] < 5000


def test_memory_bomb(lam: Any) -> None:
    probe = create(lam, PROBE, Timeout=20, MemorySize=128)
    response, body = invoke(lam, probe, {"action": "allocate", "mb": 400})
    assert response.get("FunctionError") == "Unhandled"
    assert body["errorType"] in ("Runtime.OutOfMemory", "Runtime.ExitError")


def test_fill_tmp(lam: Any) -> None:
    probe = create(lam, PROBE, Timeout=30, MemorySize=1024)
    body = attack(lam, probe, {"action": "fill_tmp", "mb": 700})
    assert body["ok"] is False and body["written_mb"] <= 512


def test_ptrace_mount_and_other_kernel_interfaces(lam: Any, attacker: str) -> None:
    result = attack(lam, attacker, {"action": "syscalls"})
    assert result.pop("seccomp") == 2 and result.pop("no_new_privs") == 1
    assert all(errno == EPERM for errno in result.values()), result


def test_network_from_a_vpc_function(lam: Any, server: Any, vpc_attacker: str,
                                     victim: str) -> None:
    port = int(server.endpoint.rsplit(":", 1)[1])
    with socket.socket() as listener:  # a host service on another loopback address
        listener.bind(("127.0.0.2", 0))
        listener.listen()
        other = listener.getsockname()[1]
        result = attack(lam, vpc_attacker, {"action": "network", "connect": [
            ["127.0.0.2", other], ["127.0.0.1", other]]})
    assert result["routes"] == [] and result["interfaces"] == ["lo"]
    assert set(result["connect"].values()) == {"ECONNREFUSED"}
    assert port  # lamina's own API is the one way out, and it still checks the role:
    allowed = attack(lam, vpc_attacker, {"action": "call_lamina", "method": "invoke",
                                         "params": {"FunctionName": victim, "Payload": "{}"}})
    assert allowed["ok"] and json.loads(allowed["response"]["Payload"]) == {"hello": "world"}
    denied = attack(lam, vpc_attacker, {"action": "call_lamina", "method": "list_functions"})
    assert denied["code"] == "AccessDeniedException"


def test_call_lamina_beyond_the_role(lam: Any, attacker: str, victim: str) -> None:
    allowed = attack(lam, attacker, {"action": "call_lamina", "method": "invoke",
                                     "params": {"FunctionName": victim, "Payload": "{}"}})
    assert allowed["ok"], allowed
    for call in ({"method": "list_functions"},
                 {"method": "delete_function", "params": {"FunctionName": victim}},
                 {"method": "invoke", "params": {"FunctionName": attacker, "Payload": "{}"}},
                 {"method": "update_function_configuration",
                  "params": {"FunctionName": victim, "Timeout": 1}},
                 {"service": "iam", "method": "create_user", "params": {"UserName": "evil"}},
                 {"service": "iam", "method": "put_role_policy", "params": {
                     "RoleName": "lamina-function", "PolicyName": "x",
                     "PolicyDocument": doc(allow("*"))}}):
        result = attack(lam, attacker, {"action": "call_lamina", **call})
        assert result["ok"] is False and result["code"] in ("AccessDeniedException",
                                                            "AccessDenied"), result
        assert "assumed-role/" in result["message"]
    identity = attack(lam, attacker, {"action": "call_lamina", "service": "sts",
                                      "method": "get_caller_identity"})
    assert identity["response"]["Arn"].endswith(f"/{attacker}")


def test_forged_and_replayed_signatures(lam: Any, server: Any, attacker: str) -> None:
    variables = attack(lam, attacker, {"action": "credentials"})
    key, secret, token = (variables["AWS_ACCESS_KEY_ID"], variables["AWS_SECRET_ACCESS_KEY"],
                          variables["AWS_SESSION_TOKEN"])
    stolen = client_for(server, "lambda", key, secret, token)
    with pytest.raises(botocore.exceptions.ClientError) as failure:
        stolen.list_functions()  # the stolen credentials carry only the role's rights
    assert failure.value.response["Error"]["Code"] == "AccessDeniedException"
    forged = client_for(server, "lambda", key, "not-the-secret", token)
    with pytest.raises(botocore.exceptions.ClientError) as failure:
        forged.invoke(FunctionName=attacker, Payload=b"{}")
    assert failure.value.response["Error"]["Code"] == "InvalidSignatureException"
    stale = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=10)
    status, body = signed_request(server, "lambda", "GET", "/2015-03-31/functions/", b"",
                                  key, secret, when=stale,
                                  headers={"X-Amz-Security-Token": token})
    assert status == 403 and b"Signature expired" in body
    with pytest.raises(botocore.exceptions.ClientError) as failure:
        client_for(server, "lambda", key, secret, token + "x").list_functions()
    assert failure.value.response["Error"]["Code"] == "UnrecognizedClientException"


def test_environments_hold_exactly_their_roles_permissions(server: Any, lam: Any,
                                                           attacker_zip: bytes,
                                                           victim: str) -> None:
    """A role change reaches warm environments at once, both ways."""
    iam = server.client("iam")
    role_name = unique("changing")
    arn = ensure_role(iam, role_name)
    fn = create(lam, attacker_zip, Role=arn, Timeout=30, MemorySize=256)
    call = {"action": "call_lamina", "method": "invoke",
            "params": {"FunctionName": victim, "Payload": "{}"}}
    assert attack(lam, fn, call)["code"] == "AccessDeniedException"
    iam.attach_role_policy(RoleName=role_name,
                           PolicyArn="arn:aws:iam::aws:policy/service-role/AWSLambdaRole")
    assert attack(lam, fn, call)["ok"] is True
    iam.put_role_policy(RoleName=role_name, PolicyName="but-not-the-victim",
                        PolicyDocument=doc({"Effect": "Deny", "Action": "lambda:*",
                                            "Resource": f"arn:aws:lambda:*:*:function:{victim}"}))
    denied = attack(lam, fn, call)
    assert "explicit deny" in denied["message"]
    identity = attack(lam, fn, {"action": "call_lamina", "service": "sts",
                                "method": "get_caller_identity"})["response"]
    assert identity["Arn"] == f"arn:aws:sts::000000000000:assumed-role/{role_name}/{fn}"
