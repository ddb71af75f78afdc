"""The TraceQL subset the Tempo endpoints answer, parsed into SQL conditions on spans.

A query is one spanset filter: `{ }` or `{ COND && COND && ... }`, where every condition must
hold for one and the same span (TraceQL's meaning of `&&` inside braces). A condition is
`FIELD OP VALUE`:

| field | meaning | operators | value |
|---|---|---|---|
| `resource.service.name`, `.service.name` | the span's service | `= != =~ !~` | string |
| `name`, `span:name` | span name | `= != =~ !~` | string |
| `status`, `span:status` | status code | `= !=` | `error`, `ok`, `unset` |
| `statusMessage`, `span:statusMessage` | status message | `= != =~ !~` | string |
| `kind`, `span:kind` | span kind | `= !=` | `server`, `client`, `producer`, `consumer`, `internal`, `unspecified` |
| `duration`, `span:duration` | span duration | `= != > >= < <=` | a duration: `250ms`, `1.5s`, `2m`, `1h`, `300us`, `10ns` |
| `span.KEY` | span attribute KEY | `= !=` (any value), `> >= < <=` (numbers), `=~ !~` (strings) | string, number, `true`/`false` |
| `resource.KEY` | resource attribute KEY | as `span.KEY` | |
| `.KEY` | span or resource attribute KEY | as `span.KEY` | |

`=~` and `!~` match the whole value against a regular expression (PostgreSQL's, anchored at
both ends as TraceQL's are). `!=` and the comparisons hold only for spans that have the
attribute, as in TraceQL. Anything else (`||`, several spansets, pipelines, aggregates,
structural operators) is refused with a 400 naming what is not supported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from psycopg.types.json import Jsonb

from api.problems import bad_parameter
from common.otlp import SPAN_KINDS, STATUS_CODES

_TOKEN = re.compile(r"""
    \s*(?:
      (?P<string>"(?:[^"\\]|\\.)*")
    | (?P<op>=~|!~|!=|>=|<=|&&|\|\||[=<>{}()|])
    | (?P<duration>\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))(?![\w.])
    | (?P<number>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)(?![\w.])
    | (?P<word>[A-Za-z_.:][\w.:/\-]*)
    )""", re.VERBOSE)
_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000}
_STRING_OPS = ("=", "!=", "=~", "!~")
_ORDER_OPS = ("=", "!=", ">", ">=", "<", "<=")
_SQL_OPS = {"=": "=", "!=": "<>", ">": ">", ">=": ">=", "<": "<", "<=": "<=", "=~": "~", "!~": "!~"}
_COLUMNS = {  # intrinsic name -> column
    "name": "name", "span:name": "name", "statusMessage": "status_message", "span:statusMessage": "status_message",
    "resource.service.name": "service_name", ".service.name": "service_name",
}
MAX_CONDITIONS = 20


@dataclass(frozen=True)
class Condition:
    field: str  # as written
    op: str
    value: Any
    sql: str
    args: tuple[Any, ...]


def _tokens(text: str) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    at = 0
    text = text.rstrip()
    while at < len(text):
        match = _TOKEN.match(text, at)
        if match is None or match.end() == at:
            raise bad_parameter("q", f"cannot read the query at {text[at:at + 20]!r}")
        kind = match.lastgroup
        assert kind is not None
        found.append((kind, match.group(kind)))
        at = match.end()
    return found


def _string(raw: str) -> str:
    body = raw[1:-1]
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), body)


def _value(kind: str, raw: str) -> Any:
    if kind == "string":
        return _string(raw)
    if kind == "duration":
        number, unit = re.fullmatch(r"(\d+(?:\.\d+)?)(\D+)", raw).groups()  # type: ignore[union-attr]
        return ("duration", round(float(number) * _UNITS[unit]))
    if kind == "number":
        return float(raw) if any(c in raw for c in ".eE") else int(raw)
    if raw in ("true", "false"):
        return raw == "true"
    return ("keyword", raw)


def parse(text: str | None) -> list[Condition]:
    """The conditions of a spanset filter; [] matches every span."""
    text = (text or "").strip()
    if text in ("", "{}", "{ }"):
        return []
    tokens = _tokens(text)
    if tokens[0] != ("op", "{") or tokens[-1] != ("op", "}"):
        raise bad_parameter("q", "must be one spanset filter in braces, like { resource.service.name = \"checkout\" && duration > 100ms }")
    inner = tokens[1:-1]
    if ("op", "{") in inner or ("op", "}") in inner:
        raise bad_parameter("q", "only one spanset filter { … } is supported (no spanset operators or pipelines)")
    if inner == [("word", "true")]:
        return []
    conditions: list[Condition] = []
    at = 0
    while at < len(inner):
        if len(inner) - at < 3:
            raise bad_parameter("q", "each condition is FIELD OP VALUE")
        (field_kind, field), (op_kind, op), (value_kind, raw) = inner[at:at + 3]
        if field_kind != "word" or op_kind != "op" or op not in _SQL_OPS:
            raise bad_parameter("q", f"expected FIELD OP VALUE, got {field!r} {op!r} {raw!r}")
        conditions.append(condition(field, op, _value(value_kind, raw)))
        at += 3
        if at < len(inner):
            if inner[at] == ("op", "||"):
                raise bad_parameter("q", "|| is not supported; run one search per alternative, or use =~ \"a|b\"")
            if inner[at] != ("op", "&&"):
                raise bad_parameter("q", f"expected && between conditions, got {inner[at][1]!r}")
            at += 1
            if at == len(inner):
                raise bad_parameter("q", "a condition must follow &&")
    if len(conditions) > MAX_CONDITIONS:
        raise bad_parameter("q", f"at most {MAX_CONDITIONS} conditions")
    return conditions


def _anchored(pattern: Any, field: str) -> str:
    if not isinstance(pattern, str):
        raise bad_parameter("q", f"{field}: a regular expression must be a string")
    return f"^(?:{pattern})$"


def condition(field: str, op: str, value: Any) -> Condition:
    def need(ops: tuple[str, ...]) -> None:
        if op not in ops:
            raise bad_parameter("q", f"{field} takes {' '.join(ops)}, not {op}")

    if field in _COLUMNS:
        need(_STRING_OPS)
        if not isinstance(value, str):
            raise bad_parameter("q", f"{field} compares with a quoted string")
        column = _COLUMNS[field]
        arg = _anchored(value, field) if op in ("=~", "!~") else value
        return Condition(field, op, value, f"coalesce({column}, '') {_SQL_OPS[op]} %s", (arg,))
    if field in ("status", "span:status", "kind", "span:kind"):
        need(("=", "!="))
        names = STATUS_CODES if field.endswith("status") else SPAN_KINDS
        word = value[1] if isinstance(value, tuple) and value[0] == "keyword" else None
        if word not in names:
            raise bad_parameter("q", f"{field} is one of {', '.join(names)}")
        column = "status_code" if field.endswith("status") else "kind"
        return Condition(field, op, word, f"{column} {_SQL_OPS[op]} %s", (names.index(word),))
    if field in ("duration", "span:duration"):
        need(_ORDER_OPS)
        if not (isinstance(value, tuple) and value[0] == "duration"):
            raise bad_parameter("q", f"{field} compares with a duration such as 100ms or 1.5s")
        return Condition(field, op, value[1], f"duration_ns {_SQL_OPS[op]} %s", (value[1],))
    for prefix, columns in (("span.", ("attributes",)), ("resource.", ("resource_attributes",)), (".", ("attributes", "resource_attributes"))):
        if field.startswith(prefix) and len(field) > len(prefix):
            key = field[len(prefix):]
            parts = [_attribute(column, key, op, value, field) for column in columns]
            sql = " OR ".join(p[0] for p in parts)
            return Condition(field, op, value, f"({sql})", tuple(a for p in parts for a in p[1]))
    raise bad_parameter("q", f"{field!r} is not in the supported subset (see docs/EXPLORER.md)")


def _attribute(column: str, key: str, op: str, value: Any, field: str) -> tuple[str, tuple[Any, ...]]:
    if isinstance(value, tuple):
        if value[0] == "keyword":
            raise bad_parameter("q", f"{field}: quote the value {value[1]!r}")
        raise bad_parameter("q", f"{field}: attributes compare with strings, numbers or booleans")
    if op == "=":
        return f"{column} @> %s", (Jsonb({key: value}),)
    if op == "!=":
        return f"({column} ? %s AND NOT {column} @> %s)", (key, Jsonb({key: value}))
    if op in ("=~", "!~"):
        return (f"(jsonb_typeof({column} -> %s) = 'string' AND ({column} ->> %s) {_SQL_OPS[op]} %s)",
                (key, key, _anchored(value, field)))
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise bad_parameter("q", f"{field} {op} compares with a number")
    number = f"CASE WHEN jsonb_typeof({column} -> %s) = 'number' THEN ({column} ->> %s)::numeric END"
    return f"{number} {_SQL_OPS[op]} %s", (key, key, value)


def tag_filters(tags: str) -> list[Condition]:
    """Tempo's older `tags=` search (logfmt `key=value` pairs) as equality conditions:
    service.name and name by their columns, anything else as a span or resource attribute."""
    conditions = []
    for key, quoted, bare in re.findall(r'([^\s=]+)=(?:"((?:[^"\\]|\\.)*)"|(\S*))', tags):
        value = _string(f'"{quoted}"') if quoted else bare
        field = {"service.name": ".service.name", "name": "name", "status": "status"}.get(key, "." + key)
        conditions.append(condition(field, "=", ("keyword", value) if field == "status" else value))
    return conditions
