"""GenAI content as messages: the events opentelemetry-instrumentation-openai-v2 itself builds
(its message_to_event / choice_to_event on an OpenAI response object), and the conventions'
attributes as JSON strings on a span, all in the one shape the API answers."""

from __future__ import annotations

import json

from openai.types.chat import ChatCompletion
from opentelemetry.instrumentation.openai_v2.utils import choice_to_event, message_to_event

from common.genai_events import from_attributes, span_messages

TOOL_CALL = {"id": "call_1", "type": "function", "function": {"name": "lookup_order", "arguments": '{"order": 1234}'}}


def _record(event: object) -> dict:
    """A log record as the API serializes it: event name, attributes, body as JSON."""
    return {"event_name": event.event_name, "attributes": dict(event.attributes or {}),  # type: ignore[attr-defined]
            "body": json.loads(json.dumps(event.body))}  # type: ignore[attr-defined]


def test_the_instrumentations_own_events_become_messages_with_tool_calls_and_results() -> None:
    response = ChatCompletion.model_validate({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "finish_reason": "tool_calls",
                     "message": {"role": "assistant", "content": None, "tool_calls": [TOOL_CALL]}}],
    })
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Where is order 1234?"},
        {"role": "assistant", "content": None, "tool_calls": [TOOL_CALL]},
        {"role": "tool", "content": "shipped", "tool_call_id": "call_1"},
    ]
    records = [_record(message_to_event(m, True)) for m in messages] + [_record(choice_to_event(c, True)) for c in response.choices]
    got = span_messages({}, [], records)
    call = {"type": "tool_call", "id": "call_1", "name": "lookup_order", "arguments": {"order": 1234}}
    assert got == [
        {"role": "system", "parts": [{"type": "text", "content": "Be brief."}], "direction": "system", "source": "log"},
        {"role": "user", "parts": [{"type": "text", "content": "Where is order 1234?"}], "direction": "input", "source": "log"},
        {"role": "assistant", "parts": [call], "direction": "input", "source": "log"},
        {"role": "tool", "parts": [{"type": "tool_call_response", "id": "call_1", "response": "shipped"}], "direction": "input", "source": "log"},
        {"role": "assistant", "parts": [call], "direction": "output", "source": "log", "finish_reason": "tool_calls", "index": 0},
    ]


def test_conventions_attributes_as_json_strings_on_a_span_give_the_same_shape() -> None:
    attributes = {
        "gen_ai.system_instructions": json.dumps([{"type": "text", "content": "Be brief."}]),
        "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [{"type": "text", "content": "Hi"}]}]),
        "gen_ai.output.messages": json.dumps([{"role": "assistant", "finish_reason": "stop",
                                               "parts": [{"type": "text", "content": "Hello"}]}]),
    }
    assert from_attributes(attributes, "span") == [
        {"role": "system", "parts": [{"type": "text", "content": "Be brief."}], "direction": "system", "source": "span"},
        {"role": "user", "parts": [{"type": "text", "content": "Hi"}], "direction": "input", "source": "span"},
        {"role": "assistant", "parts": [{"type": "text", "content": "Hello"}], "direction": "output", "source": "span",
         "finish_reason": "stop"},
    ]


def test_text_that_is_not_json_and_events_without_content_are_kept_as_they_are() -> None:
    assert from_attributes({"gen_ai.input.messages": "plain prompt"}, "span") == [
        {"role": None, "parts": [{"type": "text", "content": "plain prompt"}], "direction": "input", "source": "span"}]
    # Content capture off: the instrumentation's event has no body; the message keeps its role.
    record = _record(message_to_event({"role": "user", "content": "secret"}, False))
    assert span_messages({}, [], [record]) == [{"role": "user", "parts": [], "direction": "input", "source": "log"}]
