"""The rest-json features Lambda's model does not use today, on a small model of our own.

Lambda has no greedy labels, presence-only query literals, typed or jsonvalue headers, header
maps or query maps; a newer Lambda model (or the ``iam``/``sts`` work) may. Each is checked here
against botocore's own serializer and parser, so "the inverse of botocore" stays true.
"""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from botocore.awsrequest import HeadersDict, create_request_object, prepare_request_dict
from botocore.model import ServiceModel
from botocore.parsers import create_parser
from botocore.serialize import create_serializer
from test_protocol_support import to_lamina_request

from lamina.api.model import RouteTable
from lamina.api.parse import parse_request
from lamina.api.serialize import serialize_response
from lamina.api.validate import validate
from lamina.errors import UnknownOperation, ValidationError

STRING = {"shape": "String"}
WIDGETS = {
    "version": "2.0",
    "metadata": {"apiVersion": "2020-01-01", "endpointPrefix": "widgets",
                 "protocol": "rest-json", "serviceId": "Widgets", "signatureVersion": "v4",
                 "uid": "widgets-2020-01-01", "signingName": "widgets"},
    "operations": {
        "TagWidget": {"name": "TagWidget",
                      "http": {"method": "PUT", "requestUri": "/widgets/{Bucket}/{Key+}?tag"},
                      "input": {"shape": "WidgetRequest"}, "output": {"shape": "WidgetResponse"}},
        "PutWidget": {"name": "PutWidget",
                      "http": {"method": "PUT", "requestUri": "/widgets/{Bucket}/{Key+}",
                               "responseCode": 201},
                      "input": {"shape": "WidgetRequest"}, "output": {"shape": "WidgetResponse"}},
    },
    "shapes": {
        "WidgetRequest": {"type": "structure", "required": ["Bucket", "Key"], "members": {
            "Bucket": {"shape": "String", "location": "uri", "locationName": "Bucket"},
            "Key": {"shape": "String", "location": "uri", "locationName": "Key"},
            "Count": {"shape": "Integer", "location": "header", "locationName": "X-Count"},
            "Big": {"shape": "Long", "location": "header", "locationName": "X-Big"},
            "Flag": {"shape": "Boolean", "location": "header", "locationName": "X-Flag"},
            "Ratio": {"shape": "Double", "location": "header", "locationName": "X-Ratio"},
            "When": {"shape": "Timestamp", "location": "header", "locationName": "X-When"},
            "Doc": {"shape": "JsonDoc", "location": "header", "locationName": "X-Doc"},
            "Names": {"shape": "Strings", "location": "header", "locationName": "X-Names"},
            "Meta": {"shape": "StringMap", "location": "headers", "locationName": "x-meta-"},
            "Limit": {"shape": "Integer", "location": "querystring", "locationName": "limit"},
            "On": {"shape": "Boolean", "location": "querystring", "locationName": "on"},
            "Since": {"shape": "Timestamp", "location": "querystring", "locationName": "since"},
            "Ids": {"shape": "Strings", "location": "querystring", "locationName": "id"},
            "Extra": {"shape": "StringMap", "location": "querystring"},
            "Title": {"shape": "Title"},
            "Data": {"shape": "Blob"},
            "At": {"shape": "Timestamp"},
            "Nested": {"shape": "Nested"},
        }},
        "WidgetResponse": {"type": "structure", "members": {
            "Status": {"shape": "Integer", "location": "statusCode"},
            "ETag": {"shape": "String", "location": "header", "locationName": "ETag"},
            "Count": {"shape": "Integer", "location": "header", "locationName": "X-Count"},
            "Flag": {"shape": "Boolean", "location": "header", "locationName": "X-Flag"},
            "When": {"shape": "Timestamp", "location": "header", "locationName": "X-When"},
            "Meta": {"shape": "StringMap", "location": "headers", "locationName": "x-meta-"},
            "Title": {"shape": "Title"},
            "Data": {"shape": "Blob"},
            "At": {"shape": "Timestamp"},
            "Nested": {"shape": "Nested"},
        }},
        "Nested": {"type": "structure", "members": {"Items": {"shape": "NestedList"},
                                                    "Self": {"shape": "Nested"}}},
        "NestedList": {"type": "list", "member": {"shape": "Nested"}},
        "String": {"type": "string"},
        "Title": {"type": "string", "min": 2, "max": 5, "pattern": "[A-Z][a-z]+"},
        "Integer": {"type": "integer"},
        "Long": {"type": "long"},
        "Boolean": {"type": "boolean"},
        "Double": {"type": "double"},
        "Timestamp": {"type": "timestamp"},
        "Blob": {"type": "blob"},
        "JsonDoc": {"type": "string", "jsonvalue": True},
        "Strings": {"type": "list", "member": STRING},
        "StringMap": {"type": "map", "key": STRING, "value": STRING},
    },
}
MODEL = ServiceModel(WIDGETS, "widgets")
TABLE = RouteTable(MODEL)
WHEN = datetime.datetime(2024, 2, 3, 4, 5, 6, tzinfo=datetime.UTC)
PARAMS: dict[str, Any] = {
    "Bucket": "b 1", "Key": "dir/sub dir/file+1.txt", "Count": 3, "Big": 2**40, "Flag": False,
    "Ratio": 0.25, "When": WHEN, "Doc": {"a": [1, 2], "b": None},
    "Names": ["plain", "with,comma", 'with"quote'], "Meta": {"color": "red", "size": "L"},
    "Limit": 10, "On": True, "Since": WHEN, "Ids": ["1", "2"], "Extra": {"free": "form"},
    "Title": "Hello", "Data": b"\x00\x01binary", "At": WHEN,
    "Nested": {"Items": [{"Self": {}}], "Self": {"Items": []}},
}


def botocore_request(name: str, params: dict[str, Any]) -> Any:
    op = MODEL.operation_model(name)
    request_dict = create_serializer("rest-json").serialize_to_request(params, op)
    prepare_request_dict(request_dict, "http://127.0.0.1:9000")
    return to_lamina_request(create_request_object(request_dict).prepare())


@pytest.mark.parametrize("name", ["PutWidget", "TagWidget"])
def test_every_location_and_type_round_trips(name: str) -> None:
    request = botocore_request(name, PARAMS)
    op, labels = TABLE.resolve(request.method, request.path, request.query_string)
    assert op.name == name
    assert labels == {"Bucket": "b 1", "Key": "dir/sub dir/file+1.txt"}
    params = parse_request(op, labels, request)
    assert params == PARAMS
    validate(op, params)


def test_greedy_labels_need_at_least_one_segment() -> None:
    with pytest.raises(UnknownOperation):
        TABLE.resolve("PUT", "/widgets/b")
    op, labels = TABLE.resolve("PUT", "/widgets/b/k", "tag")
    assert op.name == "TagWidget" and labels == {"Bucket": "b", "Key": "k"}


def test_recursive_shapes_validate() -> None:
    op = MODEL.operation_model("PutWidget")
    with pytest.raises(ValidationError) as caught:
        validate(op, {"Bucket": "b", "Key": "k",
                      "Nested": {"Items": [{"Items": [{"Self": {"Items": "x"}}]}]}})
    assert "at 'nested.items.1.member.items.1.member.self.items'" in caught.value.message


def test_output_locations_round_trip_through_botocores_parser() -> None:
    op = MODEL.operation_model("PutWidget")
    output = {"Status": 202, "ETag": '"abc"', "Count": 7, "Flag": True, "When": WHEN,
              "Meta": {"color": "blue"}, "Title": "Ok", "Data": b"\xffbytes", "At": WHEN,
              "Nested": {"Items": [{}]}}
    response = serialize_response(op, output, "rid")
    assert response.status == 202
    parsed = create_parser("rest-json").parse(
        {"status_code": response.status, "headers": HeadersDict(dict(response.headers)),
         "body": response.body}, op.output_shape)
    parsed.pop("ResponseMetadata")
    assert parsed == {**output, "Status": 202}


def test_response_code_is_the_default_status() -> None:
    response = serialize_response(MODEL.operation_model("PutWidget"), {"Title": "Ok"})
    assert response.status == 201
