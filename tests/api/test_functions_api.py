"""The function operations through boto3 against a real server: shapes, states, errors."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import urllib.request
from typing import Any

import botocore.exceptions
import pytest
from support import ROLE, create, function_zip, unique, wait_ready, zip_directory

HELLO = function_zip("hello")


def error_code(exc: botocore.exceptions.ClientError) -> str:
    return exc.response["Error"]["Code"]


def test_create_function_answers_pending_then_becomes_active(lam: Any) -> None:
    name = unique()
    created = lam.create_function(FunctionName=name, Runtime="python3.11", Role=ROLE,
                                  Handler="app.handler", Code={"ZipFile": HELLO},
                                  Description="greets", Timeout=7, MemorySize=256,
                                  Environment={"Variables": {"GREETING": "hi"}})
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert created["State"] == "Pending"
    assert created["StateReasonCode"] == "Creating"
    assert created["FunctionArn"] == f"arn:aws:lambda:us-east-1:000000000000:function:{name}"
    assert created["CodeSha256"] == base64.b64encode(hashlib.sha256(HELLO).digest()).decode()
    assert created["CodeSize"] == len(HELLO)
    assert created["Version"] == "$LATEST"
    assert created["Timeout"] == 7 and created["MemorySize"] == 256
    assert created["Environment"] == {"Variables": {"GREETING": "hi"}}
    assert created["PackageType"] == "Zip"
    assert created["Architectures"] == ["x86_64"]
    # LastModified in Lambda's own format: 2026-11-25T10:00:00.000+0000
    assert created["LastModified"][10] == "T" and created["LastModified"].endswith("+0000")
    active = wait_ready(lam, name)
    assert active["State"] == "Active"
    assert active["LastUpdateStatus"] == "Successful"
    assert active["RevisionId"] != created["RevisionId"]
    waiter = lam.get_waiter("function_active_v2")
    waiter.wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 5})


def test_get_function_code_location_downloads_the_zip_without_credentials(lam: Any) -> None:
    name = create(lam, HELLO)
    got = lam.get_function(FunctionName=name)
    assert got["Configuration"]["FunctionName"] == name
    assert got["Code"]["RepositoryType"] == "S3"
    with urllib.request.urlopen(got["Code"]["Location"], timeout=10) as response:
        assert response.read() == HELLO
    tampered = got["Code"]["Location"].replace("Signature=", "Signature=0")
    with pytest.raises(urllib.error.HTTPError) as failure:
        urllib.request.urlopen(tampered, timeout=10)
    assert failure.value.code == 403


def test_function_can_be_named_by_name_partial_arn_and_full_arn(lam: Any) -> None:
    name = create(lam, HELLO)
    arn = f"arn:aws:lambda:us-east-1:000000000000:function:{name}"
    for reference in (name, f"000000000000:function:{name}", arn, f"{arn}:$LATEST"):
        assert lam.get_function_configuration(FunctionName=reference)["FunctionName"] == name


def test_list_functions_paginates_with_marker(lam: Any) -> None:
    names = {create(lam, HELLO, name=unique("page"), wait=False) for _ in range(5)}
    seen: list[str] = []
    marker = None
    while True:
        kwargs = {"MaxItems": 2}
        if marker:
            kwargs["Marker"] = marker
        page = lam.list_functions(**kwargs)
        assert len(page["Functions"]) <= 2
        seen.extend(f["FunctionName"] for f in page["Functions"])
        marker = page.get("NextMarker")
        if not marker:
            break
    assert names <= set(seen)
    assert len(seen) == len(set(seen))
    paginated = [f["FunctionName"] for p in lam.get_paginator("list_functions").paginate(
        PaginationConfig={"PageSize": 3}) for f in p["Functions"]]
    assert paginated == seen


def test_update_code_and_configuration_change_revision_and_guard_it(lam: Any) -> None:
    name = create(lam, HELLO)
    before = lam.get_function_configuration(FunctionName=name)
    # Unpacking 1,500 files keeps the update InProgress for a few hundred ms: long enough to
    # observe the conflict on a busy machine.
    ballast: dict[str, str | bytes] = {f"ballast/{i}.bin": os.urandom(1024) for i in range(1500)}
    other = zip_directory(None, extra={"app.py": "def handler(e, c):\n    return 2\n",
                                       **ballast}, stored=True)
    updated = lam.update_function_code(FunctionName=name, ZipFile=other,
                                       RevisionId=before["RevisionId"])
    assert updated["LastUpdateStatus"] == "InProgress"
    assert updated["CodeSha256"] == base64.b64encode(hashlib.sha256(other).digest()).decode()
    with pytest.raises(lam.exceptions.ResourceConflictException):
        lam.update_function_configuration(FunctionName=name, Timeout=9)
    settled = wait_ready(lam, name)
    assert settled["RevisionId"] not in (before["RevisionId"], updated["RevisionId"])
    with pytest.raises(lam.exceptions.PreconditionFailedException):
        lam.update_function_configuration(FunctionName=name, Timeout=9,
                                          RevisionId=before["RevisionId"])
    changed = lam.update_function_configuration(FunctionName=name, Timeout=9, MemorySize=512,
                                                RevisionId=settled["RevisionId"])
    assert changed["Timeout"] == 9 and changed["MemorySize"] == 512
    assert wait_ready(lam, name)["Timeout"] == 9
    lam.get_waiter("function_updated_v2").wait(FunctionName=name)


def test_delete_function_then_it_is_gone(lam: Any) -> None:
    name = create(lam, HELLO)
    response = lam.delete_function(FunctionName=name)
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(lam.exceptions.ResourceNotFoundException) as failure:
        lam.get_function(FunctionName=name)
    assert name in str(failure.value)
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.delete_function(FunctionName=name)


def test_create_twice_conflicts_and_keeps_the_first(lam: Any) -> None:
    name = create(lam, HELLO, Description="first")
    with pytest.raises(lam.exceptions.ResourceConflictException) as failure:
        lam.create_function(FunctionName=name, Runtime="python3.11", Role=ROLE,
                            Handler="app.handler", Code={"ZipFile": HELLO},
                            Description="second")
    assert "already exist" in str(failure.value)
    assert lam.get_function_configuration(FunctionName=name)["Description"] == "first"


@pytest.mark.parametrize(("changes", "exception", "fragment"), [
    ({"Runtime": "java21"}, "InvalidParameterValueException", "Supported runtimes"),
    ({"Runtime": "cobol"}, "ValidationException", "runtime"),
    ({"Handler": "nodot"}, "InvalidParameterValueException", "Handler"),
    ({"Timeout": 901}, "InvalidParameterValueException", "Timeout"),
    ({"Timeout": 0}, "ValidationException", "timeout"),
    ({"MemorySize": 64}, "ValidationException", "memorySize"),
    ({"MemorySize": 10241}, "InvalidParameterValueException", "MemorySize"),
    ({"Environment": {"Variables": {"AWS_REGION": "x"}}}, "InvalidParameterValueException",
     "AWS_REGION"),
    ({"Environment": {"Variables": {"BIG": "x" * 5000}}}, "InvalidParameterValueException",
     "4KB"),
    ({"FunctionName": "bad name!"}, "ValidationException", "functionName"),
    ({"FunctionName": "x" * 65}, "ValidationException", "functionName"),
    ({"Role": "not-an-arn"}, "ValidationException", "role"),
    ({"Code": {"ZipFile": b"not a zip"}}, "InvalidParameterValueException", "unzip"),
])
def test_bad_create_requests_get_lambda_errors_and_store_nothing(
        server: Any, lam: Any, changes: dict[str, Any], exception: str, fragment: str) -> None:
    # Without boto3's own checks, so that the server's validation is what answers.
    unchecked = server.client(parameter_validation=False)
    name = unique("bad")
    request = {"FunctionName": name, "Runtime": "python3.11", "Role": ROLE,
               "Handler": "app.handler", "Code": {"ZipFile": HELLO}, **changes}
    with pytest.raises(botocore.exceptions.ClientError) as failure:
        unchecked.create_function(**request)
    assert error_code(failure.value) == exception
    assert failure.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert fragment in failure.value.response["Error"]["Message"]
    names = {f["FunctionName"] for page in lam.get_paginator("list_functions").paginate()
             for f in page["Functions"]}
    assert request["FunctionName"] not in names


@pytest.mark.parametrize("entries", [
    {"../escape.py": "x"},
    {"/etc/evil.py": "x"},
])
def test_malicious_zips_are_refused(lam: Any, entries: dict[str, str]) -> None:
    package = zip_directory(None, extra={"app.py": "def handler(e, c): return 1\n", **entries})
    with pytest.raises(lam.exceptions.InvalidParameterValueException):
        create(lam, package, wait=False)


def test_zip_bomb_is_refused(lam: Any) -> None:
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("app.py", "def handler(e, c): return 1\n")
        with archive.open("zeros.bin", "w", force_zip64=True) as handle:
            chunk = b"\0" * (1 << 20)
            for _ in range(300):
                handle.write(chunk)
    with pytest.raises(lam.exceptions.InvalidParameterValueException):
        create(lam, buffer.getvalue(), wait=False)


def test_unknown_functions_and_bad_names(lam: Any) -> None:
    with pytest.raises(lam.exceptions.ResourceNotFoundException) as failure:
        lam.get_function(FunctionName="does-not-exist")
    assert "Function not found: arn:aws:lambda:us-east-1:000000000000:function:does-not-exist" \
        in str(failure.value)
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.invoke(FunctionName="does-not-exist")
    with pytest.raises(botocore.exceptions.ClientError) as failure:
        lam.get_function(FunctionName="bad name!")
    assert error_code(failure.value) == "ValidationException"


def test_malformed_json_body_is_invalid_request_content(server: Any) -> None:
    import botocore.auth
    import botocore.awsrequest
    import botocore.credentials

    key, secret = server.credentials()
    request = botocore.awsrequest.AWSRequest(
        method="POST", url=server.endpoint + "/2015-03-31/functions", data=b"{not json",
        headers={"Content-Type": "application/json"})
    botocore.auth.SigV4Auth(botocore.credentials.Credentials(key, secret), "lambda",
                            "us-east-1").add_auth(request)
    prepared = urllib.request.Request(request.url, data=request.body, method="POST",
                                      headers=dict(request.headers.items()))
    with pytest.raises(urllib.error.HTTPError) as failure:
        urllib.request.urlopen(prepared, timeout=10)
    assert failure.value.code == 400
    assert failure.value.headers["x-amzn-ErrorType"].startswith("InvalidRequestContentException")
    assert "message" in json.loads(failure.value.read())


def test_account_settings_and_reserved_concurrency(lam: Any) -> None:
    name = create(lam, HELLO)
    settings = lam.get_account_settings()
    assert settings["AccountLimit"]["ConcurrentExecutions"] == 1000
    before = settings["AccountLimit"]["UnreservedConcurrentExecutions"]
    assert settings["AccountUsage"]["FunctionCount"] >= 1
    assert lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=5)[
        "ReservedConcurrentExecutions"] == 5
    assert lam.get_function_concurrency(FunctionName=name)["ReservedConcurrentExecutions"] == 5
    assert lam.get_function(FunctionName=name)["Concurrency"] == {
        "ReservedConcurrentExecutions": 5}
    after = lam.get_account_settings()["AccountLimit"]["UnreservedConcurrentExecutions"]
    assert after == before - 5
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as failure:
        lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=950)
    assert "UnreservedConcurrentExecution below its minimum value of [100]" in str(failure.value)
    assert lam.get_function_concurrency(FunctionName=name)["ReservedConcurrentExecutions"] == 5
    lam.delete_function_concurrency(FunctionName=name)
    assert "ReservedConcurrentExecutions" not in lam.get_function_concurrency(FunctionName=name)


def test_request_body_over_the_limit_is_refused(lam: Any) -> None:
    too_big = os.urandom(54 * 1024 * 1024)  # base64 in JSON: over the 70 MB body limit
    with pytest.raises(botocore.exceptions.ClientError) as failure:
        lam.create_function(FunctionName=unique("huge"), Runtime="python3.11", Role=ROLE,
                            Handler="app.handler", Code={"ZipFile": too_big})
    assert failure.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413
    assert error_code(failure.value) == "RequestEntityTooLargeException"


def test_concurrent_updates_never_interleave(lam: Any) -> None:
    from concurrent.futures import ThreadPoolExecutor

    name = create(lam, HELLO)

    def update(index: int) -> str:
        try:
            lam.update_function_configuration(FunctionName=name, Description=f"writer-{index}",
                                              Timeout=10 + index)
            return f"writer-{index}"
        except lam.exceptions.ResourceConflictException:
            return "conflict"

    with ThreadPoolExecutor(6) as pool:
        outcomes = list(pool.map(update, range(6)))
    winners = [o for o in outcomes if o != "conflict"]
    assert winners, outcomes
    final = wait_ready(lam, name)
    assert final["Description"] in winners
    assert final["Timeout"] == 10 + int(final["Description"].split("-")[1])
