"""GenAI content as messages, whether the SDK put it on the span or in log records.

The shapes instrumentations use (semantic-conventions-genai, late 2026):
- span attributes `gen_ai.input.messages`, `gen_ai.output.messages` and
  `gen_ai.system_instructions` (structured values, or JSON strings on spans);
- one log record named `gen_ai.client.inference.operation.details` carrying the same three
  as attributes (structured AnyValues);
- the older per-message events `gen_ai.system.message`, `gen_ai.user.message`,
  `gen_ai.assistant.message`, `gen_ai.tool.message` (body `{content, tool_calls, id}`) and
  `gen_ai.choice` (body `{index, finish_reason, message: {role, content, tool_calls}}`), as
  log records (or span events, in older SDKs).

All become one shape: `{"role", "parts": [{"type": "text", "content"} | {"type":
"tool_call", "id", "name", "arguments"} | {"type": "tool_call_response", "id",
"response"}], "finish_reason"?, "direction": "system" | "input" | "output", "source":
"span" | "log" | "event"}`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson

OPERATION_DETAILS = "gen_ai.client.inference.operation.details"
ROLE_EVENTS = {
    "gen_ai.system.message": "system",
    "gen_ai.user.message": "user",
    "gen_ai.assistant.message": "assistant",
    "gen_ai.tool.message": "tool",
}
CHOICE = "gen_ai.choice"
CONTENT_EVENTS = frozenset({OPERATION_DETAILS, CHOICE, *ROLE_EVENTS})
INPUT_MESSAGES, OUTPUT_MESSAGES, SYSTEM_INSTRUCTIONS = "gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.system_instructions"


def _structured(value: Any) -> Any:
    """A value that may be a JSON string (spans allow that) as the structure it holds."""
    if isinstance(value, str):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
    return value


def _parts(parts: Any) -> list[dict[str, Any]]:
    """A parts list as it came (the conventions' shape), or plain text made one part."""
    parts = _structured(parts)
    if isinstance(parts, list):
        return [p if isinstance(p, dict) else {"type": "text", "content": p} for p in parts]
    if parts is None:
        return []
    return [{"type": "text", "content": parts}]


def _conventional(messages: Any, direction: str, source: str) -> list[dict[str, Any]]:
    """gen_ai.input.messages / gen_ai.output.messages: [{role, parts, finish_reason?}]."""
    out = []
    messages = _structured(messages)
    if not isinstance(messages, list):
        return [{"role": None, "parts": _parts(messages), "direction": direction, "source": source}] if messages else []
    for message in messages:
        if not isinstance(message, dict):
            out.append({"role": None, "parts": _parts(message), "direction": direction, "source": source})
            continue
        role = message.get("role")
        # A system prompt is "system" however it came: in gen_ai.system_instructions, as a
        # system-role input message, or as a gen_ai.system.message event.
        entry: dict[str, Any] = {"role": role, "parts": _parts(message.get("parts")),
                                 "direction": "system" if role == "system" else direction, "source": source}
        if message.get("finish_reason") is not None:
            entry["finish_reason"] = message["finish_reason"]
        out.append(entry)
    return out


def _system(instructions: Any, source: str) -> list[dict[str, Any]]:
    parts = _parts(instructions)
    return [{"role": "system", "parts": parts, "direction": "system", "source": source}] if parts else []


def from_attributes(attributes: Mapping[str, Any], source: str) -> list[dict[str, Any]]:
    """The messages held in gen_ai.* content attributes (of a span or an operation-details record)."""
    out: list[dict[str, Any]] = []
    if SYSTEM_INSTRUCTIONS in attributes:
        out += _system(attributes[SYSTEM_INSTRUCTIONS], source)
    if INPUT_MESSAGES in attributes:
        out += _conventional(attributes[INPUT_MESSAGES], "input", source)
    if OUTPUT_MESSAGES in attributes:
        out += _conventional(attributes[OUTPUT_MESSAGES], "output", source)
    return out


def _tool_calls(calls: Any) -> list[dict[str, Any]]:
    parts = []
    for call in calls if isinstance(calls, list) else []:
        if not isinstance(call, dict):
            continue
        function = call.get("function") if isinstance(call.get("function"), dict) else {}
        parts.append({"type": "tool_call", "id": call.get("id"), "name": function.get("name"), "arguments": _structured(function.get("arguments"))})
    return parts


def _event_message(role: str | None, body: Mapping[str, Any]) -> tuple[str | None, list[dict[str, Any]]]:
    parts: list[dict[str, Any]] = []
    content = body.get("content")
    if role == "tool":
        if content is not None or body.get("id") is not None:
            parts.append({"type": "tool_call_response", "id": body.get("id"), "response": content})
    elif content is not None:
        parts += _parts(content)
    parts += _tool_calls(body.get("tool_calls"))
    return role, parts


def from_event(name: str, attributes: Mapping[str, Any], body: Any, source: str) -> list[dict[str, Any]]:
    """The messages of one GenAI event (a log record, or a span event, by name)."""
    if name == OPERATION_DETAILS:
        return from_attributes(attributes, source)
    body = body if isinstance(body, Mapping) else ({"content": body} if body is not None else {})
    if name in ROLE_EVENTS:
        role = ROLE_EVENTS[name]
        role, parts = _event_message(body.get("role") or role, body)
        return [{"role": role, "parts": parts, "direction": "system" if role == "system" else "input", "source": source}]
    if name == CHOICE:
        message = body.get("message") if isinstance(body.get("message"), Mapping) else {}
        role, parts = _event_message(message.get("role") or "assistant", message)
        entry: dict[str, Any] = {"role": role, "parts": parts, "direction": "output", "source": source}
        if body.get("finish_reason") is not None:
            entry["finish_reason"] = body["finish_reason"]
        if body.get("index") is not None:
            entry["index"] = body["index"]
        return [entry]
    return []


def span_messages(attributes: Mapping[str, Any], events: Iterable[Mapping[str, Any]],
                  records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Every message of one span: its attributes, then its events, then its log records, in
    their time order (the caller passes events and records sorted)."""
    out = from_attributes(attributes, "span")
    for event in events:
        out += from_event(event.get("name") or "", event.get("attributes") or {}, None, "event")
    for record in records:
        name = record.get("event_name") or (record.get("attributes") or {}).get("event.name") or ""
        out += from_event(name, record.get("attributes") or {}, record.get("body"), "log")
    return out
