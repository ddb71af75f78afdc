"""PII redaction of log records and metric data points, with the span redactor's rules.

The same `Redactor` (collector/processors/redaction.py) and so the same detectors, key rules,
strategies and summary attributes as for spans: resource and scope attributes, a log
record's attributes, its body whatever AnyValue shape it has (a string, or the structured
maps and arrays GenAI events carry: every string in it at any depth, key rules applied to
the keys of its maps), its event name; a data point's and its exemplars' attributes. With
REDACTION_DROP_LLM_CONTENT the bodies of GenAI content events are deleted as the content
attributes of spans are.
"""

from __future__ import annotations

from typing import Any

from collector.pipeline import Batch
from collector.processors.redaction import CONTENT_RULE, Redactor, Tally, _Remove
from common.genai_events import CONTENT_EVENTS
from common.signals import metric_points

BODY_KEY = "body"  # how a body is named in summaries and metrics


class LogRedaction:
    name = "redaction"

    def __init__(self, redactor: Redactor) -> None:
        self.redactor = redactor

    def process(self, batch: Batch) -> Batch:
        redactor = self.redactor
        for resource_logs in batch.request.resource_logs:
            resource_tally = Tally()
            redactor._attributes(resource_logs.resource.attributes, resource_tally)
            for scope_logs in resource_logs.scope_logs:
                redactor._attributes(scope_logs.scope.attributes, resource_tally)
                for record in scope_logs.log_records:
                    self._record(record)
            redactor._summarise(resource_logs.resource.attributes, resource_tally)
        return batch

    def _record(self, record: Any) -> None:
        redactor = self.redactor
        tally = Tally()
        redactor._attributes(record.attributes, tally)
        if record.HasField("body"):
            if redactor.config.drop_llm_content and record.event_name in CONTENT_EVENTS:
                tally.add(CONTENT_RULE, BODY_KEY, "remove")
                record.ClearField("body")
            else:
                try:
                    redactor._value(record.body, BODY_KEY, tally)
                except _Remove:
                    record.ClearField("body")
        if record.event_name:
            try:
                redacted = redactor._text(record.event_name, "event_name", tally)
            except _Remove:
                redacted = ""
            if redacted is not None:
                record.event_name = redacted
        redactor._summarise(record.attributes, tally)


class MetricRedaction:
    name = "redaction"

    def __init__(self, redactor: Redactor) -> None:
        self.redactor = redactor

    def process(self, batch: Batch) -> Batch:
        redactor = self.redactor
        for resource_metrics in batch.request.resource_metrics:
            resource_tally = Tally()
            redactor._attributes(resource_metrics.resource.attributes, resource_tally)
            for scope_metrics in resource_metrics.scope_metrics:
                redactor._attributes(scope_metrics.scope.attributes, resource_tally)
                for metric in scope_metrics.metrics:
                    for point in metric_points(metric):
                        tally = Tally()
                        redactor._attributes(point.attributes, tally)
                        for exemplar in getattr(point, "exemplars", ()):
                            redactor._attributes(exemplar.filtered_attributes, tally)
                        redactor._summarise(point.attributes, tally)
            redactor._summarise(resource_metrics.resource.attributes, resource_tally)
        return batch
