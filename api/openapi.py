"""The OpenAPI 3.1 description, generated from the route table and the parameter
declarations that also drive validation, so the two cannot disagree."""

from __future__ import annotations

from typing import Any

from api import schemas
from api.params import ATTR_PREFIX, MAX_TEXT, Param
from api.routes import PREFIX, ROUTES, Route
from api.settings import ApiSettings
from api.specs import TRACE_LIMIT

_PROBLEM = {"content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}
_ERRORS = {
    "400": "A parameter is invalid or unknown (the body names it)",
    "401": "No credential, or one that does not verify",
    "403": "The credential lacks the route's scope",
    "404": "Nothing has that id",
    "429": "Over the rate limit; see Retry-After",
    "503": "The database did not answer in time",
}


def _schema(param: Param, settings: ApiSettings) -> dict[str, Any]:
    kind = param.kind
    if kind == "time":
        one: dict[str, Any] = {"anyOf": [{"type": "string", "format": "date-time"}, {"type": "string", "pattern": r"^\d{1,19}$"}]}
    elif kind in ("int", "number"):
        one = {"type": "integer" if kind == "int" else "number"}
        one.update({k: v for k, v in (("minimum", param.minimum), ("maximum", param.maximum)) if v is not None})
        if param.name == "limit":
            one["maximum"] = settings.trace_page_spans if param is TRACE_LIMIT else settings.max_limit
    elif kind == "enum":
        one = {"type": "string", "enum": list(param.choices)}
    elif kind in ("trace_id", "span_id"):
        length = 32 if kind == "trace_id" else 16
        one = {"type": "string", "pattern": f"^[0-9a-fA-F]{{{length}}}$"}
    else:
        one = {"type": "string", "minLength": 1, "maxLength": MAX_TEXT}
    if param.default is not None:
        one["default"] = param.default
    return {"type": "array", "items": one, "maxItems": param.max_items} if param.repeat else one


def _parameters(route: Route, settings: ApiSettings) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for name in ("trace_id", "span_id"):
        if "{" + name + "}" in route.path:
            found.append({"name": name, "in": "path", "required": True, "schema": _schema(Param(name, name, ""), settings)})
    if route.method == "GET":
        for param in route.params:
            entry = {"name": param.name, "in": "query", "required": False, "description": param.description, "schema": _schema(param, settings)}
            if param.repeat:
                entry.update(style="form", explode=True)
            found.append(entry)
    return found


def _body(route: Route, settings: ApiSettings) -> dict[str, Any]:
    properties = {p.name: _schema(p, settings) for p in route.params}
    schema = {
        "type": "object",
        "properties": properties,
        "patternProperties": {"^" + ATTR_PREFIX.replace(".", r"\.") + ".+": {"type": ["string", "number", "boolean"]}},
        "additionalProperties": False,
    }
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _operation(route: Route, settings: ApiSettings) -> dict[str, Any]:
    responses: dict[str, Any] = {"200": {"description": "Success", "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{route.answer}"}}}}}
    codes = ["400", "503"] + (["401", "403", "429"] if route.scope else []) + (["404"] if "{" in route.path else [])
    if route.path == "/ready":
        responses["503"] = {"description": "A dependency does not answer", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Ready"}}}}
        codes.remove("503")
    responses.update({code: {"description": _ERRORS[code], **_PROBLEM} for code in sorted(codes)})
    if route.method == "POST":
        responses["415"] = {"description": "The body is not application/json", **_PROBLEM}
    operation: dict[str, Any] = {
        "operationId": route.handler.__name__,
        "summary": route.summary,
        "parameters": _parameters(route, settings),
        "responses": responses,
        "security": [{"bearer": []}, {"apiKey": []}] if route.scope and not settings.api_auth_disabled else [],
    }
    if route.scope:
        operation["x-scope"] = route.scope
    if route.attrs:
        operation["description"] = (
            f"Attribute filters: `{ATTR_PREFIX}KEY=VALUE` (span attribute KEY equals VALUE; a query-string VALUE that is a "
            "JSON number or boolean also matches that typed value), at most 10. `has_attr=KEY` keeps spans having KEY."
        )
    if route.method == "POST":
        operation["requestBody"] = _body(route, settings)
    if route.cached:
        operation["description"] = "Cached in Redis for API_CACHE_TTL seconds; the Cache-Status header says hit or miss."
    return operation


def document(settings: ApiSettings) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        paths.setdefault(PREFIX + route.path, {})[route.method.lower()] = _operation(route, settings)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "LLM Observatory query API", "version": "1.0.0",
            "description": "Read-only access to traces, spans and LLM usage stored by LLM Observatory. See docs/API.md.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas.COMPONENTS,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "An API key or an HS256 JWT (claims sub, exp, scope)"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
        },
    }
