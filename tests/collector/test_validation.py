"""The validation stage: every value the database cannot hold is normalized or its span
rejected, with a message naming the field and never the span's content."""

from __future__ import annotations

import os

import orjson
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from collector.pipeline import SpanBatch
from collector.processors.validation import INDEXED_TEXT_BYTES, MAX_TOKENS, TRUNCATED_MARK, Limits, Validator
from collector.receivers.otlp_json import DEPTH_MARK, MAX_VALUE_DEPTH, decode_request, encode_request
from common.otlp import any_value, key_value

NOW = 1_800_000_000_000_000_000
SECRET = "s3cr3t-content"


def run(spans: list[Span], service: object = "svc", window: float = 3600) -> tuple[SpanBatch, list[Span]]:
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    rs.resource.attributes.append(key_value("service.name", service))
    rs.scope_spans.add().spans.extend(spans)
    batch = Validator(Limits(future_window_s=window), clock=lambda: NOW).process(SpanBatch(request, NOW, "test"))
    return batch, list(batch.request.resource_spans[0].scope_spans[0].spans)


def span(**fields: object) -> Span:
    base: dict = {"trace_id": os.urandom(16), "span_id": os.urandom(8), "name": "op",
                  "start_time_unix_nano": NOW, "end_time_unix_nano": NOW + 1000}
    base.update(fields)
    attributes = base.pop("attributes", {})
    out = Span(**base)
    out.attributes.extend(key_value(k, v) for k, v in attributes.items())
    return out


def attrs(s: Span) -> dict:
    return {kv.key: any_value(kv.value) for kv in s.attributes}


def test_ordinary_spans_pass_untouched() -> None:
    good = span(attributes={"gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 12})
    before = good.SerializeToString()
    batch, kept = run([good])
    assert batch.rejected == 0 and [s.SerializeToString() for s in kept] == [before]


def test_times_beyond_int64_and_the_future_window_reject_only_that_span() -> None:
    spans = [
        span(name=SECRET, start_time_unix_nano=2**63, end_time_unix_nano=2**63 + 1),
        span(end_time_unix_nano=2**64 - 1),
        span(start_time_unix_nano=NOW + 8 * 86400 * 10**9, end_time_unix_nano=NOW + 8 * 86400 * 10**9),
        span(end_time_unix_nano=NOW + 7200 * 10**9),
        span(name="kept"),
    ]
    spans[1].events.add(time_unix_nano=NOW)
    with_event = span(name="bad-event")
    with_event.events.add(time_unix_nano=2**64 - 1, name="e")
    batch, kept = run([*spans, with_event])
    assert [s.name for s in kept] == ["kept"]
    assert batch.rejected == 5
    message = "; ".join(batch.messages)
    assert "3 span(s) had a start, end or event time past 2^63-1 ns" in message
    assert "2 span(s) started or ended more than FUTURE_SPAN_WINDOW=3600s ahead" in message
    assert SECRET not in message


def test_a_span_within_the_window_is_kept() -> None:
    _, kept = run([span(start_time_unix_nano=NOW + 3000 * 10**9, end_time_unix_nano=NOW + 3500 * 10**9)])
    assert len(kept) == 1


def test_token_counts_are_clamped_whatever_their_type() -> None:
    huge = span(attributes={
        "gen_ai.usage.input_tokens": 2**63 - 1, "gen_ai.usage.output_tokens": str(2**62),
        "llm.token_count.total": float(2**60), "gen_ai.usage.cache_read.input_tokens": 5,
    })
    batch, kept = run([huge])
    got = attrs(kept[0])
    assert batch.rejected == 0
    assert got["gen_ai.usage.input_tokens"] == MAX_TOKENS
    assert got["gen_ai.usage.output_tokens"] == MAX_TOKENS
    assert got["llm.token_count.total"] == MAX_TOKENS
    assert got["gen_ai.usage.cache_read.input_tokens"] == 5


def test_nul_is_replaced_in_every_text_column() -> None:
    s = span(name="a\x00b", trace_state="k=v\x00", attributes={
        "gen_ai.request.model": "gpt\x00-4o", "gen_ai.system": "open\x00ai", "gen_ai.operation.name": "\x00chat"})
    s.status.message = "boom\x00"
    s.events.add(time_unix_nano=NOW, name="ev\x00")
    s.links.add(trace_id=os.urandom(16), span_id=os.urandom(8), trace_state="x\x00")
    batch, kept = run([s], service="check\x00out")
    k = kept[0]
    assert batch.rejected == 0
    texts = [k.name, k.trace_state, k.status.message, k.events[0].name, k.links[0].trace_state,
             *[str(v) for v in attrs(k).values()],
             any_value(batch.request.resource_spans[0].resource.attributes[0].value)]
    assert all("\x00" not in t for t in texts), texts
    assert k.name == "a\ufffdb" and attrs(k)["gen_ai.request.model"] == "gpt\ufffd-4o"


def test_indexed_texts_are_cut_with_a_mark_at_a_character_boundary() -> None:
    long_model = "é" * 5000  # 2 bytes each
    s = span(attributes={"gen_ai.request.model": long_model, "gen_ai.response.model": ["x" * 3000]})
    batch, kept = run([s], service="ß" * 3000)
    got = attrs(kept[0])
    service = any_value(batch.request.resource_spans[0].resource.attributes[0].value)
    for text in (got["gen_ai.request.model"], got["gen_ai.response.model"], service):
        assert isinstance(text, str) and text.endswith(TRUNCATED_MARK)
        assert len(text.encode()) <= INDEXED_TEXT_BYTES
    assert got["gen_ai.request.model"].startswith("éé")


def test_an_all_zero_parent_means_root_and_a_short_parent_is_rejected() -> None:
    batch, kept = run([span(name="root", parent_span_id=bytes(8)), span(name="bad", parent_span_id=b"\x01\x02")])
    assert [(s.name, s.parent_span_id) for s in kept] == [("root", b"")]
    assert batch.rejected == 1 and "parent_span_id" in batch.messages[0]


def test_json_nesting_past_the_limit_is_cut_and_the_writer_can_parse_it() -> None:
    def nest(levels: int, kvlist: bool) -> str:  # as text: deeper than orjson.dumps goes
        opening, closing = ('{"kvlistValue":{"values":[{"key":"k","value":', "}]}}") if kvlist else ('{"arrayValue":{"values":[', "]}}")
        return opening * levels + '{"stringValue":"leaf"}' + closing * levels

    for kvlist in (False, True):
        request = ExportTraceServiceRequest()
        request.resource_spans.add().scope_spans.add().spans.append(span())
        document = orjson.loads(encode_request(request))
        target = document["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
        target["attributes"] = target["events"] = "@"
        text = orjson.dumps(document).decode()
        text = text.replace('"attributes":"@"', f'"attributes":[{{"key":"deep","value":{nest(250, kvlist)}}},'
                                                f'{{"key":"shallow","value":{nest(3, kvlist)}}}]')
        text = text.replace('"events":"@"', f'"events":[{{"timeUnixNano":"{NOW}","attributes":[{{"key":"deep","value":{nest(250, kvlist)}}}]}}]')
        decoded = decode_request(text.encode())
        parsed = ExportTraceServiceRequest.FromString(decoded.SerializeToString())  # what the writer does
        got = attrs(parsed.resource_spans[0].scope_spans[0].spans[0])
        assert DEPTH_MARK in orjson.dumps(got["deep"]).decode()
        assert "leaf" in orjson.dumps(got["shallow"]).decode()
        depth, value = 0, got["deep"]
        while isinstance(value, (list, dict)):
            value = value[0] if isinstance(value, list) else value["k"]
            depth += 1
        assert depth == MAX_VALUE_DEPTH and value == DEPTH_MARK


def test_a_changed_text_makes_redaction_read_the_request_as_it_now_is() -> None:
    # Redaction's single pass reads SpanBatch.wire, the bytes as received; once validation
    # has changed a text those bytes no longer say what will be stored.
    def wired(spans: list[Span], service: str) -> SpanBatch:
        request = ExportTraceServiceRequest()
        rs = request.resource_spans.add()
        rs.resource.attributes.append(key_value("service.name", service))
        rs.scope_spans.add().spans.extend(spans)
        batch = SpanBatch(request, NOW, "test", wire=request.SerializeToString())
        return Validator(Limits(future_window_s=3600), clock=lambda: NOW).process(batch)

    assert wired([span()], "svc").wire is not None
    assert wired([span(name="a\x00b")], "svc").wire is None
    assert wired([span()], "x" * (INDEXED_TEXT_BYTES + 10)).wire is None
