"""PII redaction of log records and metric data points, with the span redactor's rules.

The same `Redactor` (collector/processors/redaction.py) and so the same detectors, key rules,
strategies and summary attributes as for spans: resource and scope attributes, a log
record's attributes, its body whatever AnyValue shape it has (a string, or the structured
maps and arrays GenAI events carry: every string in it at any depth, key rules applied to
the keys of its maps), its event name; a data point's and its exemplars' attributes. With
REDACTION_DROP_LLM_CONTENT the bodies of GenAI content events are deleted as the content
attributes of spans are.

`_Walk` is the one place that calls into the redactor: through its per-request entry points
(`new_scan`, `redact_attributes`, `redact_value`, `redact_text`, `summarise`) where the
redactor has them, else through the attribute and value methods its span pass uses.
"""

from __future__ import annotations

from typing import Any

from collector.pipeline import Batch
from collector.processors.redaction import CONTENT_RULE, Redactor, Tally, _Remove
from common.genai_events import CONTENT_EVENTS
from common.signals import metric_points

BODY_KEY = "body"  # how a body is named in summaries and metrics


class _Walk:
    """One request's redaction, with the tally of the item being walked."""

    def __init__(self, redactor: Redactor) -> None:
        self.redactor = redactor
        self.scan = redactor.new_scan() if hasattr(redactor, "new_scan") else None
        self.tally = Tally()

    def item(self) -> Tally:
        """Start the summary of a new item (a record, a point, a resource)."""
        self.tally = Tally()
        if self.scan is not None:
            self.scan.tally = self.tally
        return self.tally

    def attributes(self, attributes: Any) -> None:
        if self.scan is not None:
            self.redactor.redact_attributes(attributes, self.scan)
        else:
            self.redactor._attributes(attributes, self.tally)

    def value(self, value: Any, key: str) -> None:
        """Redact an AnyValue in place; raises _Remove when it must go."""
        if self.scan is not None:
            self.redactor.redact_value(value, key, self.scan)
        else:
            self.redactor._value(value, key, self.tally)

    def text(self, text: str, where: str) -> str:
        """The redacted text ("" when a rule removes it)."""
        if not text:
            return text
        try:
            if self.scan is not None:
                redacted = self.redactor.redact_text(text, where, self.scan)
            else:
                redacted = self.redactor._text(text, where, self.tally)
        except _Remove:
            return ""
        return text if redacted is None else redacted

    def summarise(self, attributes: Any, tally: Tally) -> None:
        summarise = getattr(self.redactor, "summarise", None) or self.redactor._summarise
        summarise(attributes, tally)


def _scope(walk: _Walk, scope: Any) -> None:
    scope.name = walk.text(scope.name, "scope.name")
    scope.version = walk.text(scope.version, "scope.version")
    walk.attributes(scope.attributes)


class LogRedaction:
    name = "redaction"

    def __init__(self, redactor: Redactor) -> None:
        self.redactor = redactor

    def process(self, batch: Batch) -> Batch:
        walk = _Walk(self.redactor)
        for resource_logs in batch.request.resource_logs:
            resource_tally = walk.item()
            walk.attributes(resource_logs.resource.attributes)
            for scope_logs in resource_logs.scope_logs:
                walk.tally = resource_tally
                if walk.scan is not None:
                    walk.scan.tally = resource_tally
                _scope(walk, scope_logs.scope)
                for record in scope_logs.log_records:
                    self._record(walk, record)
            walk.summarise(resource_logs.resource.attributes, resource_tally)
        return batch

    def _record(self, walk: _Walk, record: Any) -> None:
        tally = walk.item()
        walk.attributes(record.attributes)
        if record.HasField("body"):
            if self.redactor.config.drop_llm_content and record.event_name in CONTENT_EVENTS:
                tally.add(CONTENT_RULE, BODY_KEY, "remove")
                record.ClearField("body")
            else:
                try:
                    walk.value(record.body, BODY_KEY)
                except _Remove:
                    record.ClearField("body")
        record.event_name = walk.text(record.event_name, "event_name")
        record.severity_text = walk.text(record.severity_text, "severity_text")
        walk.summarise(record.attributes, tally)


class MetricRedaction:
    name = "redaction"

    def __init__(self, redactor: Redactor) -> None:
        self.redactor = redactor

    def process(self, batch: Batch) -> Batch:
        walk = _Walk(self.redactor)
        for resource_metrics in batch.request.resource_metrics:
            resource_tally = walk.item()
            walk.attributes(resource_metrics.resource.attributes)
            for scope_metrics in resource_metrics.scope_metrics:
                walk.tally = resource_tally
                if walk.scan is not None:
                    walk.scan.tally = resource_tally
                _scope(walk, scope_metrics.scope)
                for metric in scope_metrics.metrics:
                    metric.description = walk.text(metric.description, "description")
                    for point in metric_points(metric):
                        tally = walk.item()
                        walk.attributes(point.attributes)
                        for exemplar in getattr(point, "exemplars", ()):
                            walk.attributes(exemplar.filtered_attributes)
                        walk.summarise(point.attributes, tally)
            walk.summarise(resource_metrics.resource.attributes, resource_tally)
        return batch
