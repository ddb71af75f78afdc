"""OTLP/JSON decoding: the specification's mapping, the Collector's leniency, clear errors."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest, ExportTraceServiceResponse
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from collector.receivers.otlp_json import OtlpJsonError, decode_request, encode_message, encode_request
from tests.collector.otlp import make_request, to_json

TRACE = "5b8efff798038103d269b633813fc60c"
SPAN = "eee19b7ec3c1b174"


def one_span(**span: object) -> bytes:
    document = {"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": TRACE, "spanId": SPAN, **span}]}]}]}
    return json.dumps(document).encode()


def decoded_span(**span: object) -> Span:
    return decode_request(one_span(**span)).resource_spans[0].scope_spans[0].spans[0]


def test_the_specification_example_decodes() -> None:
    # The example from the OTLP specification (examples/trace.json), abridged.
    body = b"""{"resourceSpans": [{
      "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "my.service"}}]},
      "scopeSpans": [{
        "scope": {"name": "my.library", "version": "1.0.0",
                  "attributes": [{"key": "my.scope.attribute", "value": {"stringValue": "some scope attribute"}}]},
        "spans": [{
          "traceId": "5B8EFFF798038103D269B633813FC60C", "spanId": "EEE19B7EC3C1B174",
          "parentSpanId": "EEE19B7EC3C1B173", "name": "I'm a server span",
          "startTimeUnixNano": "1544712660000000000", "endTimeUnixNano": "1544712661000000000",
          "kind": 2,
          "attributes": [{"key": "my.span.attr", "value": {"stringValue": "some value"}}]
        }]
      }]
    }]}"""
    request = decode_request(body)
    rs = request.resource_spans[0]
    assert rs.resource.attributes[0].value.string_value == "my.service"
    assert rs.scope_spans[0].scope.attributes[0].key == "my.scope.attribute"
    span = rs.scope_spans[0].spans[0]
    assert span.trace_id.hex() == TRACE  # ids are hex, case-insensitive
    assert span.span_id.hex() == SPAN and span.parent_span_id.hex() == "eee19b7ec3c1b173"
    assert span.start_time_unix_nano == 1544712660000000000
    assert span.kind == Span.SPAN_KIND_SERVER


def test_round_trip_of_every_value_kind() -> None:
    request = make_request(spans=2)
    span = request.resource_spans[0].scope_spans[0].spans[0]
    values = span.attributes
    values.add(key="s").value.string_value = "text"
    values.add(key="b").value.bool_value = True
    values.add(key="d").value.double_value = 2.5
    values.add(key="i").value.int_value = -(2**63)
    values.add(key="bytes").value.bytes_value = b"\x00\xffraw"
    array = values.add(key="a").value.array_value.values
    array.add().string_value = "x"
    array.add().int_value = 7
    kv = values.add(key="kv").value.kvlist_value.values.add(key="inner")
    kv.value.double_value = 1.0
    values.add(key="empty")  # an AnyValue with nothing set
    event = span.events.add(time_unix_nano=5, name="exception")
    event.attributes.add(key="exception.message").value.string_value = "boom"
    link = span.links.add(trace_id=bytes(range(16)), span_id=bytes(range(1, 9)), trace_state="a=b", flags=257)
    link.attributes.add(key="l").value.int_value = 1
    span.status.code = Status.STATUS_CODE_ERROR
    span.status.message = "bad"
    span.trace_state = "ot=th:8"
    span.flags = 0x301
    span.dropped_attributes_count = 4
    assert decode_request(json.dumps(to_json(request)).encode()) == request


@pytest.mark.parametrize(("key_style", "kind"), [
    ({"start_time_unix_nano": "5", "end_time_unix_nano": 6}, {"kind": "SPAN_KIND_CLIENT"}),
    ({"startTimeUnixNano": 5, "endTimeUnixNano": "6"}, {"kind": 3}),
])
def test_collector_leniency_snake_case_keys_enum_names_int64_as_either(key_style: dict, kind: dict) -> None:
    span = decoded_span(**key_style, **kind, parent_span_id="EEE19B7EC3C1B173", status={"code": "STATUS_CODE_ERROR"})
    assert (span.start_time_unix_nano, span.end_time_unix_nano) == (5, 6)
    assert span.kind == Span.SPAN_KIND_CLIENT
    assert span.parent_span_id.hex() == "eee19b7ec3c1b173"
    assert span.status.code == Status.STATUS_CODE_ERROR


def test_unknown_fields_and_nulls_are_ignored() -> None:
    span = decoded_span(name="n", futureField={"deep": [1, 2]}, droppedEventsCount=None, kind=None)
    assert span.name == "n" and span.kind == 0
    assert decode_request(b'{"resourceSpans": [], "somethingNew": 1}') == ExportTraceServiceRequest()


def test_special_doubles_and_integral_floats() -> None:
    span = decoded_span(attributes=[
        {"key": "nan", "value": {"doubleValue": "NaN"}},
        {"key": "inf", "value": {"doubleValue": "-Infinity"}},
        {"key": "int-as-double", "value": {"doubleValue": 3}},
        {"key": "float-int", "value": {"intValue": 3.0}},
    ])
    values = [kv.value for kv in span.attributes]
    assert math.isnan(values[0].double_value) and values[1].double_value == -math.inf
    assert values[2].double_value == 3.0 and values[3].int_value == 3


def test_unknown_enum_numbers_are_kept_as_proto3_does() -> None:
    assert decoded_span(kind=9).kind == 9


@pytest.mark.parametrize(("span", "message"), [
    ({"traceId": "W46/95gDgQPSabYzgT/GDA=="}, "spans[0].traceId: must be 32 hex characters"),
    ({"spanId": "eee19b7ec3c1b1"}, "spans[0].spanId: must be 16 hex characters, got 14"),
    ({"parentSpanId": "eee19b7ec3c1b1zz"}, "spans[0].parentSpanId: must be hexadecimal"),
    ({"traceId": 12}, "traceId: must be a hex string, got a number"),
    ({"kind": "SERVER"}, "kind: a string of 6 characters that is not a SpanKind name"),
    ({"kind": True}, "kind: must be an integer, got a boolean"),
    ({"startTimeUnixNano": "soon"}, "startTimeUnixNano: must be an integer, got a string of 4 characters"),
    ({"startTimeUnixNano": -1}, "startTimeUnixNano: "),  # fixed64 cannot be negative
    ({"startTimeUnixNano": 1.5}, "startTimeUnixNano: must be an integer"),
    ({"name": 5}, "name: must be a string, got a number"),
    ({"attributes": {"key": "x"}}, "attributes: must be an array, got an object"),
    ({"attributes": ["x"]}, "attributes[0]: must be an object, got a string"),
    ({"attributes": [{"key": "b", "value": {"boolValue": "true"}}]}, "attributes[0].value.boolValue: must be true or false"),
    ({"attributes": [{"key": "b", "value": {"bytesValue": "%%%"}}]}, "attributes[0].value.bytesValue: must be base64"),
    ({"attributes": [{"key": "a", "value": {"arrayValue": {"values": [{"intValue": "x"}]}}}]},
     "attributes[0].value.arrayValue.values[0].intValue: must be an integer"),
    ({"status": "error"}, "spans[0].status: must be an object, got a string"),
])
def test_bad_values_name_their_place(span: dict, message: str) -> None:
    with pytest.raises(OtlpJsonError) as caught:
        decode_request(one_span(**span))
    assert message in str(caught.value)
    assert str(caught.value).startswith("resourceSpans[0].scopeSpans[0].spans[0].")


@pytest.mark.parametrize(("body", "message"), [
    (b"", "body is not valid JSON"),
    (b"{\"resourceSpans\": [", "body is not valid JSON"),
    (b"[]", "body must be a JSON object"),
    (b"\"text\"", "body must be a JSON object"),
    (b"{\"resourceSpans\": {}}", "resourceSpans: must be an array, got an object"),
])
def test_bodies_that_are_not_requests(body: bytes, message: str) -> None:
    with pytest.raises(OtlpJsonError, match=message):
        decode_request(body)


def test_base64_bytes_values_in_both_alphabets_with_or_without_padding() -> None:
    span = decoded_span(attributes=[
        {"key": "std", "value": {"bytesValue": "+/8="}},
        {"key": "url", "value": {"bytesValue": "-_8"}},
    ])
    assert [kv.value.bytes_value for kv in span.attributes] == [b"\xfb\xff", b"\xfb\xff"]


def test_requests_are_encoded_with_hex_ids_and_integer_enums() -> None:
    request = make_request(spans=1)
    span = request.resource_spans[0].scope_spans[0].spans[0]
    span.parent_span_id = bytes(range(8))
    span.links.add(trace_id=bytes(range(16)), span_id=bytes(range(8, 16)))
    written = json.loads(encode_request(request))["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert (written["traceId"], written["spanId"], written["parentSpanId"]) == (span.trace_id.hex(), span.span_id.hex(), "0001020304050607")
    assert written["links"][0] == {"traceId": bytes(range(16)).hex(), "spanId": "08090a0b0c0d0e0f"}
    assert written["kind"] == span.kind and written["startTimeUnixNano"] == str(span.start_time_unix_nano)


def test_answers_are_lower_camel_case_with_int64_as_strings() -> None:
    response = ExportTraceServiceResponse()
    response.partial_success.rejected_spans = 3
    response.partial_success.error_message = "m"
    assert json.loads(encode_message(response)) == {"partialSuccess": {"rejectedSpans": "3", "errorMessage": "m"}}
    assert encode_message(ExportTraceServiceResponse()) == b"{}"


ids = st.binary(min_size=16, max_size=16)


@settings(max_examples=200, deadline=None)
@given(
    trace_id=ids, name=st.text(), attrs=st.dictionaries(st.text(), st.one_of(st.text(), st.integers(-(2**63), 2**63 - 1), st.booleans())),
    upper=st.booleans(),
)
def test_any_sdk_written_request_decodes_to_the_same_message(trace_id: bytes, name: str, attrs: dict, upper: bool) -> None:
    request = make_request(spans=1, trace_id=trace_id)
    span = request.resource_spans[0].scope_spans[0].spans[0]
    span.name = name
    for key, value in attrs.items():
        target = span.attributes.add(key=key).value
        if isinstance(value, bool):
            target.bool_value = value
        elif isinstance(value, int):
            target.int_value = value
        else:
            target.string_value = value
    document = to_json(request)
    if upper:
        for span_doc in document["resourceSpans"][0]["scopeSpans"][0]["spans"]:
            span_doc["traceId"] = span_doc["traceId"].upper()
    assert decode_request(json.dumps(document).encode()) == request


@pytest.mark.parametrize(("value", "message"), [
    ({"intValue": "99999999999999999999"}, "intValue: "),  # over int64
    ({"intValue": "²"}, "intValue: must be an integer"),  # a digit to str.isdigit, not to int()
    ({"intValue": True}, "intValue: must be an integer, got a boolean"),
    ({"stringValue": 5}, "stringValue: must be a string"),
    ({"doubleValue": "fast"}, "doubleValue: must be a number"),
])
def test_attribute_values_are_checked_on_the_fast_path_too(value: dict, message: str) -> None:
    with pytest.raises(OtlpJsonError) as caught:
        decoded_span(attributes=[{"key": "ok", "value": {"intValue": 1}}, {"key": "k", "value": value}])
    assert f"spans[0].attributes[1].value.{message}" in str(caught.value)


def test_attributes_of_unusual_shape_take_the_general_path() -> None:
    span = decoded_span(attributes=[
        {"value": {"stringValue": "no key"}},
        {"key": "no value"},
        {"key": "k", "value": {"stringValue": "s", "extra": 1}},
        {"key": "neg", "value": {"intValue": "-5"}},
        {"key": "arr", "value": {"arrayValue": {"values": [{"stringValue": "a"}]}}},
    ])
    assert [(kv.key, kv.value.WhichOneof("value")) for kv in span.attributes] == [
        ("", "string_value"), ("no value", None), ("k", "string_value"), ("neg", "int_value"), ("arr", "array_value"),
    ]
    assert span.attributes[3].value.int_value == -5


@pytest.mark.parametrize("span", [
    {"startTimeUnixNano": "jane.roe@example.org"},
    {"kind": "jane.roe@example.org"},
    {"traceId": "jane.roe@example.org" * 2},
    {"status": {"code": "jane.roe@example.org"}},
    {"attributes": [{"key": "k", "value": {"intValue": "jane.roe@example.org"}}]},
    {"attributes": [{"key": "k", "value": {"bytesValue": "jane.roe@example.org!"}}]},
])
def test_errors_never_echo_the_bad_value(span: dict) -> None:
    with pytest.raises(OtlpJsonError) as caught:
        decode_request(one_span(**span))
    assert "jane" not in str(caught.value) and "example" not in str(caught.value)


def test_a_body_that_is_not_json_is_answered_by_position_only() -> None:
    with pytest.raises(OtlpJsonError) as caught:
        decode_request(b'{"resourceSpans": [jane.roe@example.org]}')
    assert "example" not in str(caught.value) and "line 1" in str(caught.value)
