"""Code.S3Bucket/S3Key (and layer Content from S3) against a real S3-compatible server: moto's,
started in this process on a free loopback port."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from support import ROLE, LaminaProcess, function_zip, invoke, unique, wait_ready, zip_directory


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    server_module = pytest.importorskip("moto.server")
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="module")
def s3(s3_endpoint: str) -> Any:
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1",
                          aws_access_key_id="test", aws_secret_access_key="test")
    client.create_bucket(Bucket="deploy")
    return client


@pytest.fixture(scope="module")
def with_s3(tmp_path_factory: pytest.TempPathFactory, s3_endpoint: str) -> Iterator[Any]:
    process = LaminaProcess(tmp_path_factory.mktemp("s3") / "data", extra_env={
        "LAMINA_S3_ENDPOINT": s3_endpoint, "LAMINA_S3_ACCESS_KEY_ID": "test",
        "LAMINA_S3_SECRET_ACCESS_KEY": "test"})
    process.start()
    yield process.client()
    process.stop()


def test_function_and_layer_code_from_s3(with_s3: Any, s3: Any) -> None:
    lam = with_s3
    s3.put_object(Bucket="deploy", Key="one.zip",
                  Body=function_zip("versioned", extra={"mark.txt": "from-s3"}))
    name = unique()
    lam.create_function(FunctionName=name, Runtime="python3.11", Role=ROLE,
                        Handler="app.handler", Code={"S3Bucket": "deploy", "S3Key": "one.zip"})
    wait_ready(lam, name)
    assert invoke(lam, name)[1]["mark"] == "from-s3"
    s3.put_object(Bucket="deploy", Key="two.zip",
                  Body=function_zip("versioned", extra={"mark.txt": "updated-from-s3"}))
    lam.update_function_code(FunctionName=name, S3Bucket="deploy", S3Key="two.zip")
    wait_ready(lam, name)
    assert invoke(lam, name)[1]["mark"] == "updated-from-s3"
    layer_zip = zip_directory(None, extra={"python/mylib.py": "NAME = 'layer from s3'\n"})
    s3.put_object(Bucket="deploy", Key="layer.zip", Body=layer_zip)
    layer = lam.publish_layer_version(LayerName=unique("s3layer"),
                                      Content={"S3Bucket": "deploy", "S3Key": "layer.zip"})
    assert layer["Content"]["CodeSize"] == len(layer_zip)


def test_missing_objects_are_lambda_errors(with_s3: Any, s3: Any) -> None:
    lam = with_s3
    name = unique()
    for code, words in (({"S3Bucket": "deploy", "S3Key": "absent.zip"}, "NoSuchKey"),
                        ({"S3Bucket": "no-such-bucket", "S3Key": "x.zip"}, "NoSuchBucket")):
        with pytest.raises(lam.exceptions.InvalidParameterValueException) as failure:
            lam.create_function(FunctionName=name, Runtime="python3.11", Role=ROLE,
                                Handler="app.handler", Code=code)
        assert words in failure.value.response["Error"]["Message"]
    s3.put_object(Bucket="deploy", Key="not-a-zip", Body=b"hello")
    with pytest.raises(lam.exceptions.InvalidParameterValueException):
        lam.create_function(FunctionName=name, Runtime="python3.11", Role=ROLE,
                            Handler="app.handler",
                            Code={"S3Bucket": "deploy", "S3Key": "not-a-zip"})
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_function(FunctionName=name)


def test_without_an_endpoint_s3_code_is_refused_clearly(lam: Any) -> None:
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as failure:
        lam.create_function(FunctionName=unique(), Runtime="python3.11", Role=ROLE,
                            Handler="app.handler", Code={"S3Bucket": "bucket", "S3Key": "key.zip"})
    assert "LAMINA_S3_ENDPOINT" in failure.value.response["Error"]["Message"]
