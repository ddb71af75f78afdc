"""Declared parameters: one list per route drives both validation and the OpenAPI description.

Every value is checked against its declaration; a bad value, an unknown name or a name
given twice is a 400 naming the parameter. Times are RFC 3339 (any number of fractional
digits) or integer unix nanoseconds, and become unix nanoseconds.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from api.problems import bad_parameter
from common.otlp import parse_hex_id

_RFC3339 = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})$"
)
MAX_NANOS = 2**63 - 1
ATTR_PREFIX = "attr."
MAX_ATTR_FILTERS = 10
MAX_TEXT = 512
MAX_REPEAT = 20  # values of a repeatable parameter, unless it declares fewer
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class Param:
    name: str
    kind: str  # time | int | number | text | enum | trace_id | span_id | cursor | list
    description: str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    default: Any = None
    repeat: bool = False  # may be given several times (list of values)
    max_items: int = MAX_REPEAT  # most values of a repeated parameter


def parse_time(name: str, raw: str) -> int:
    if re.fullmatch(r"-?\d{1,19}", raw):
        value = int(raw)
        if not 0 <= value <= MAX_NANOS:
            raise bad_parameter(name, "unix nanoseconds must be between 0 and 2^63-1")
        return value
    match = _RFC3339.match(raw)
    if not match:
        raise bad_parameter(name, f"must be an RFC 3339 time (2025-01-31T12:00:00Z) or unix nanoseconds, got {raw[:64]!r}")
    day, clock, fraction, offset = match.groups()
    try:
        moment = datetime.fromisoformat(f"{day}T{clock}{'+00:00' if offset in 'Zz' else offset}")
    except ValueError as exc:
        raise bad_parameter(name, f"is not a valid time: {exc}") from None
    # Subtracting aware datetimes never leaves the datetime range (converting to UTC first
    # would, for 0001-01-01 east of UTC or 9999-12-31 west of it).
    since_epoch = moment - _EPOCH
    nanos = (since_epoch.days * 86_400 + since_epoch.seconds) * 1_000_000_000 + int((fraction or "0").ljust(9, "0"))
    if not 0 <= nanos <= MAX_NANOS:
        raise bad_parameter(name, "must be between 1970 and 2262")
    return nanos


def _number(param: Param, raw: str) -> int | float:
    try:
        value: int | float = int(raw) if param.kind == "int" else float(raw)
    except ValueError:
        kind = "an integer" if param.kind == "int" else "a number"
        raise bad_parameter(param.name, f"must be {kind}, got {raw[:64]!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise bad_parameter(param.name, "must be a finite number")
    if param.minimum is not None and value < param.minimum:
        raise bad_parameter(param.name, f"must be at least {param.minimum:g}, got {raw[:64]}")
    if param.maximum is not None and value > param.maximum:
        raise bad_parameter(param.name, f"must be at most {param.maximum:g}, got {raw[:64]}")
    return value


def _one(param: Param, raw: str) -> Any:
    if "\x00" in raw:
        raise bad_parameter(param.name, "must not contain NUL characters")
    if param.kind == "time":
        return parse_time(param.name, raw)
    if param.kind in ("int", "number"):
        return _number(param, raw)
    if param.kind in ("enum", "list"):
        if raw not in param.choices:
            raise bad_parameter(param.name, f"must be one of {', '.join(param.choices)}, got {raw[:64]!r}")
        return raw
    if param.kind in ("trace_id", "span_id"):
        try:
            return parse_hex_id(raw.lower(), 16 if param.kind == "trace_id" else 8)
        except ValueError as exc:
            raise bad_parameter(param.name, str(exc)) from None
    if len(raw) > MAX_TEXT or (param.kind == "text" and not raw):
        raise bad_parameter(param.name, f"must be 1 to {MAX_TEXT} characters")
    return raw


def _attr_values(name: str, value: Any, from_query: bool) -> list[Any]:
    """The JSON values an attribute filter matches: a query-string value also matches the
    number or boolean it spells, since attributes keep their OTLP types."""
    key = name[len(ATTR_PREFIX):]
    if not key or len(key) > MAX_TEXT or "\x00" in key:
        raise bad_parameter(name, f"the attribute key after {ATTR_PREFIX!r} must be 1 to {MAX_TEXT} characters")
    if not from_query:
        if isinstance(value, (dict, list)) or value is None:
            raise bad_parameter(name, "must be a string, number or boolean")
        return [value]
    if "\x00" in value or len(value) > MAX_TEXT:
        raise bad_parameter(name, f"must be at most {MAX_TEXT} characters without NUL")
    values: list[Any] = [value]
    try:
        typed = json.loads(value)
    except ValueError:
        return values
    if isinstance(typed, (bool, int, float)) and not isinstance(typed, str):
        values.append(typed)
    return values


def parse(
    declared: Sequence[Param], given: Mapping[str, list[Any]], *, attrs: bool = False, from_query: bool = True,
) -> dict[str, Any]:
    """Checked values by name (declared defaults filled in); attribute filters under "attrs"."""
    by_name = {p.name: p for p in declared}
    values: dict[str, Any] = {p.name: ([] if p.repeat else p.default) for p in declared}
    attr_filters: dict[str, list[Any]] = {}
    for name, raws in given.items():
        if attrs and name.startswith(ATTR_PREFIX):
            if len(raws) != 1:
                raise bad_parameter(name, "may be given once")
            attr_filters[name[len(ATTR_PREFIX):]] = _attr_values(name, raws[0], from_query)
            continue
        param = by_name.get(name)
        if param is None:
            raise bad_parameter(name[:64], "unknown parameter")
        if not param.repeat and len(raws) != 1:
            raise bad_parameter(name, "may be given once")
        if len(raws) > param.max_items:
            raise bad_parameter(name, f"may be given at most {param.max_items} times, got {len(raws)}")
        checked = [_one(param, _text(param.name, raw)) for raw in raws]
        values[name] = checked if param.repeat else checked[0]
    if len(attr_filters) > MAX_ATTR_FILTERS:
        raise bad_parameter("attr.*", f"at most {MAX_ATTR_FILTERS} attribute filters")
    if attrs:
        values["attrs"] = attr_filters
    return values


def _text(name: str, raw: Any) -> str:
    """A JSON body value as the text a query string would carry."""
    if isinstance(raw, str):
        return raw
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        raise bad_parameter(name, f"must be a string or a number, got {type(raw).__name__}")
    return str(raw)


def query_values(query: Mapping[str, str], getall: Any) -> dict[str, list[str]]:
    return {name: list(getall(name)) for name in dict.fromkeys(query.keys())}


MAX_BODY_DEPTH = 2  # an object of parameters, each a scalar or a list of scalars


def _check_depth(body: dict[str, Any]) -> None:
    """Refuse a body nested deeper than a search can be, before anything else reads it."""
    for value in body.values():
        if isinstance(value, (dict, list)):
            children = value.values() if isinstance(value, dict) else value
            if any(isinstance(child, (dict, list)) for child in children):
                raise bad_parameter(
                    "body", f"is nested deeper than {MAX_BODY_DEPTH} levels (an object whose values are scalars or lists of scalars)",
                )


def body_values(body: Any) -> dict[str, list[Any]]:
    if not isinstance(body, dict):
        raise bad_parameter("body", "must be a JSON object of search parameters")
    _check_depth(body)
    # A list stands for a repeated parameter; an attribute filter takes one scalar, so its
    # value is passed whole (and a list is refused there).
    return {
        name: (value if isinstance(value, list) and not name.startswith(ATTR_PREFIX) else [value])
        for name, value in body.items()
    }
