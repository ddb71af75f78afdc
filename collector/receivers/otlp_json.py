"""OTLP/JSON to protobuf messages, as the OTLP specification maps it, and back for answers.

The protobuf JSON mapping with OTLP's differences: trace and span ids are hex strings (not
base64), enums are integers. Like the OpenTelemetry Collector we also take snake_case keys
and enum names, 64-bit integers as strings or numbers, and ignore unknown keys. Anything
else that does not fit the schema is an `OtlpJsonError` naming where it is
(`resourceSpans[0].scopeSpans[0].spans[2].traceId: ...`), which the receiver answers with
400: the whole request is refused, as the Collector does, because a request we cannot read
has no spans we could keep.

The decoder is driven by the message descriptors (so new OTLP fields decode without code
changes) through per-type tables built once; it fills upb messages directly, with no
intermediate dict-to-message pass.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Callable
from typing import Any

import orjson
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

# Array and kvlist values nested deeper than this are replaced by DEPTH_MARK. A message built
# here, unlike one parsed from protobuf, has no depth limit, and the writer's protobuf parser
# stops at 100 message levels: 20 levels of kvlist (3 messages each) inside an event stay
# well below it. Deeper values are cut rather than refused, so the rest of the request and
# the span itself are kept.
MAX_VALUE_DEPTH = 20
DEPTH_MARK = f"[value nested deeper than {MAX_VALUE_DEPTH} levels removed]"
_ANY_VALUE = AnyValue.DESCRIPTOR.full_name
_depth = [0]  # AnyValue nesting of the value being decoded (decoding is synchronous)

# bytes fields the OTLP mapping writes as hex, with the length each must decode to.
HEX_IDS = {"trace_id": 16, "span_id": 8, "parent_span_id": 8}


class OtlpJsonError(ValueError):
    """The body is not an OTLP/JSON export request; the message says where."""

    def __init__(self, problem: str, parts: tuple[str, ...] = ()) -> None:
        self.problem = problem
        self.parts = parts
        super().__init__(f"{self.path}: {problem}" if parts else problem)

    @property
    def path(self) -> str:
        """`resourceSpans[0].scopeSpans[1].spans[2].traceId`"""
        return "".join(p if p.startswith("[") or i == 0 else f".{p}" for i, p in enumerate(self.parts))

    def within(self, part: str) -> "OtlpJsonError":
        """The same error one level further out: a key, or an `[index]`."""
        return OtlpJsonError(self.problem, (part, *self.parts))


def decode_request(body: bytes | bytearray | memoryview, request_type: type[Message] = ExportTraceServiceRequest) -> Any:
    """An Export{Trace,Logs,Metrics}ServiceRequest (`request_type`) from its OTLP/JSON body."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        # Position only: the parser's message can quote the body, and answers and logs never echo span content.
        raise OtlpJsonError(f"body is not valid JSON (line {exc.lineno}, column {exc.colno})") from None
    if not isinstance(document, dict):
        raise OtlpJsonError(f"body must be a JSON object (an {request_type.DESCRIPTOR.name}), got {_kind(document)}")
    request = request_type()
    _merge(request, document, _plan(request.DESCRIPTOR))
    return request


def encode_message(message: Message) -> bytes:
    """A response or google.rpc.Status as OTLP/JSON (lowerCamelCase, int64 as strings)."""
    return orjson.dumps(MessageToDict(message, preserving_proto_field_name=False))


def encode_request(request: Message) -> bytes:
    """A request of any signal as an SDK writes OTLP/JSON (hex ids, enums as integers); for
    tools and tests."""
    document = MessageToDict(request, use_integers_for_enums=True)
    _hex_ids(document)
    return orjson.dumps(document)


_JSON_IDS = ("traceId", "spanId", "parentSpanId")


def _hex_ids(node: Any) -> None:
    """The ids of spans, links, log records and exemplars, base64 → hex, wherever they are."""
    if isinstance(node, list):
        for item in node:
            _hex_ids(item)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key in _JSON_IDS and isinstance(value, str):
                node[key] = base64.b64decode(value).hex()
            elif isinstance(value, (dict, list)):
                _hex_ids(value)


# --- the decoder ----------------------------------------------------------------------

Apply = Callable[[Message, Any], None]
_PLANS: dict[str, dict[str, Apply]] = {}


def _merge(message: Message, document: dict, plan: dict[str, Apply]) -> None:
    for key, value in document.items():
        apply = plan.get(key)
        if apply is None or value is None:
            continue  # unknown keys are ignored and null means "default", as the mapping says
        try:
            apply(message, value)
        except OtlpJsonError as exc:
            raise exc.within(key) from None


def _plan(descriptor: Descriptor) -> dict[str, Apply]:
    """Key (lowerCamelCase and snake_case) -> how to put a JSON value into that field."""
    plan = _PLANS.get(descriptor.full_name)
    if plan is None:
        plan = _PLANS[descriptor.full_name] = {}  # registered first: the types are recursive
        for field in descriptor.fields:
            apply = _field_apply(descriptor, field)
            plan[field.json_name] = plan[field.name] = apply
    return plan


def _field_apply(owner: Descriptor, field: FieldDescriptor) -> Apply:
    name = field.name
    repeated = field.is_repeated
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        if repeated and field.message_type.full_name == KeyValue.DESCRIPTOR.full_name:
            return _key_values(name)
        return _repeated_message(name, field.message_type) if repeated else _singular_message(name, field.message_type)
    convert = _converter(owner, field)
    if repeated:
        def apply_list(message: Message, value: Any) -> None:
            getattr(message, name).extend(_each(value, convert))
        return apply_list

    def apply_scalar(message: Message, value: Any) -> None:
        converted = convert(value)
        try:
            setattr(message, name, converted)
        except (TypeError, ValueError):  # upb's own range checks, whose message quotes the value
            raise OtlpJsonError("is out of range for this field") from None
    return apply_scalar


def _any_value_merge(child: Message, value: dict, plan: dict[str, Apply]) -> None:
    """Merge one AnyValue, or put DEPTH_MARK in its place past MAX_VALUE_DEPTH."""
    if _depth[0] >= MAX_VALUE_DEPTH:
        child.string_value = DEPTH_MARK  # type: ignore[attr-defined]
        return
    _depth[0] += 1
    try:
        _merge(child, value, plan)
    finally:
        _depth[0] -= 1


def _singular_message(name: str, descriptor: Descriptor) -> Apply:
    merge = _any_value_merge if descriptor.full_name == _ANY_VALUE else _merge

    def apply(message: Message, value: Any) -> None:
        if not isinstance(value, dict):
            raise OtlpJsonError(f"must be an object, got {_kind(value)}")
        child = getattr(message, name)
        child.SetInParent()  # `{}` still sets the field (and the oneof member, for AnyValue)
        merge(child, value, _plan(descriptor))
    return apply


def _repeated_message(name: str, descriptor: Descriptor) -> Apply:
    merge = _any_value_merge if descriptor.full_name == _ANY_VALUE else _merge

    def apply(message: Message, value: Any) -> None:
        if not isinstance(value, list):
            raise OtlpJsonError(f"must be an array, got {_kind(value)}")
        container = getattr(message, name)
        plan = _plan(descriptor)
        for index, item in enumerate(value):
            if not isinstance(item, dict):
                raise OtlpJsonError(f"must be an object, got {_kind(item)}", (f"[{index}]",))
            try:
                merge(container.add(), item, plan)
            except OtlpJsonError as exc:
                raise exc.within(f"[{index}]") from None
    return apply


def _key_values(name: str) -> Apply:
    """Attribute lists are most of a request: the common shape takes a direct path."""
    def apply(message: Message, value: Any) -> None:
        if not isinstance(value, list):
            raise OtlpJsonError(f"must be an array, got {_kind(value)}")
        container = getattr(message, name)
        plan = _plan(KeyValue.DESCRIPTOR)
        for index, item in enumerate(value):
            try:
                if not _simple_key_value(container, item):
                    if not isinstance(item, dict):
                        raise OtlpJsonError(f"must be an object, got {_kind(item)}")
                    _merge(container.add(), item, plan)
            except OtlpJsonError as exc:
                raise exc.within(f"[{index}]") from None
    return apply


def _simple_key_value(container: Any, item: Any) -> bool:
    """Add `{"key": str, "value": {"<scalar>Value": v}}` and say True; False for any other
    shape (or a value that needs checking), which the generic path then decodes."""
    if type(item) is not dict or len(item) != 2:
        return False
    key, value = item.get("key"), item.get("value")
    if type(key) is not str or type(value) is not dict or len(value) != 1:
        return False
    ((kind, scalar),) = value.items()
    scalar_type = type(scalar)
    if kind == "stringValue" and scalar_type is str:
        container.add(key=key).value.string_value = scalar
    elif kind == "intValue" and (scalar_type is int or (scalar_type is str and scalar.isascii() and scalar.isdigit())):
        if scalar_type is str:
            scalar = int(scalar)
        if not -(2**63) <= scalar < 2**63:
            return False
        container.add(key=key).value.int_value = scalar
    elif kind == "boolValue" and scalar_type is bool:
        container.add(key=key).value.bool_value = scalar
    elif kind == "doubleValue" and (scalar_type is float or scalar_type is int):
        container.add(key=key).value.double_value = scalar
    else:
        return False
    return True


def _each(value: Any, convert: Callable[[Any], Any]) -> list[Any]:
    if not isinstance(value, list):
        raise OtlpJsonError(f"must be an array, got {_kind(value)}")
    out = []
    for index, item in enumerate(value):
        try:
            out.append(convert(item))
        except OtlpJsonError as exc:
            raise exc.within(f"[{index}]") from None
    return out


# --- scalar conversions ---------------------------------------------------------------

_INTEGER_TYPES = {
    FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_UINT32,
    FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_SINT32, FieldDescriptor.TYPE_SINT64,
    FieldDescriptor.TYPE_FIXED32, FieldDescriptor.TYPE_FIXED64, FieldDescriptor.TYPE_SFIXED32,
    FieldDescriptor.TYPE_SFIXED64,
}


def _converter(owner: Descriptor, field: FieldDescriptor) -> Callable[[Any], Any]:
    kind = field.type
    if kind in _INTEGER_TYPES:
        return _integer
    if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return _double
    if kind == FieldDescriptor.TYPE_BOOL:
        return _bool
    if kind == FieldDescriptor.TYPE_STRING:
        return _string
    if kind == FieldDescriptor.TYPE_ENUM:
        return _enum(field.enum_type)
    if kind == FieldDescriptor.TYPE_BYTES:
        length = HEX_IDS.get(field.name)
        return _hex_id(length) if length is not None else _base64
    raise TypeError(f"no OTLP/JSON conversion for {owner.full_name}.{field.name}")


def _integer(value: Any) -> int:
    if isinstance(value, bool):  # bool is an int in Python, never in JSON
        raise OtlpJsonError("must be an integer, got a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip(), 10)
        except ValueError:
            raise OtlpJsonError(f"must be an integer, got {_describe(value)}") from None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise OtlpJsonError(f"must be an integer, got {_describe(value)}")


_SPECIAL_DOUBLES = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def _double(value: Any) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        special = _SPECIAL_DOUBLES.get(value)
        if special is not None:
            return special
        try:
            return float(value)
        except ValueError:
            pass
    raise OtlpJsonError(f"must be a number, got {_describe(value)}")


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise OtlpJsonError(f"must be true or false, got {_describe(value)}")


def _string(value: Any) -> str:
    if isinstance(value, str):
        return value
    raise OtlpJsonError(f"must be a string, got {_describe(value)}")


def _enum(enum: EnumDescriptor) -> Callable[[Any], int]:
    by_name = {value.name: value.number for value in enum.values}

    def convert(value: Any) -> int:
        if isinstance(value, str):
            number = by_name.get(value)
            if number is None:
                raise OtlpJsonError(f"{_describe(value)} that is not a {enum.name} name")
            return number
        return _integer(value)  # proto3 enums are open: unknown numbers are kept
    return convert


def _hex_id(length: int) -> Callable[[Any], bytes]:
    def convert(value: Any) -> bytes:
        if not isinstance(value, str):
            raise OtlpJsonError(f"must be a hex string, got {_kind(value)}")
        if not value:
            return b""  # absent id; validation decides whether the span can be kept
        if len(value) != length * 2:
            raise OtlpJsonError(f"must be {length * 2} hex characters, got {len(value)} (OTLP/JSON ids are hex, not base64)")
        try:
            raw = bytes.fromhex(value)
        except ValueError:
            raise OtlpJsonError(f"must be hexadecimal, got {_describe(value)}") from None
        if len(raw) != length:  # fromhex skips spaces
            raise OtlpJsonError(f"must be hexadecimal, got {_describe(value)}")
        return raw
    return convert


def _base64(value: Any) -> bytes:
    if not isinstance(value, str):
        raise OtlpJsonError(f"must be a base64 string, got {_kind(value)}")
    padded = value + "=" * (-len(value) % 4)
    try:
        if "-" in value or "_" in value:
            return base64.urlsafe_b64decode(padded)
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        raise OtlpJsonError(f"must be base64, got {_describe(value)}") from None


def _kind(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )


def _describe(value: Any) -> str:
    """What a bad value is, never what it says: error answers and logs must not echo span content."""
    if isinstance(value, str):
        return f"a string of {len(value)} characters"
    return _kind(value)
