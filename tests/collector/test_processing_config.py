"""The processing stages from CollectorSettings: order, switches, and bad settings named at start."""

from __future__ import annotations

from pathlib import Path

import pytest

from collector.app import build_pipeline
from collector.processors import configure
from collector.settings import CollectorSettings
from common.settings import SettingsError, load


def _names(environ: dict[str, str]) -> list[str]:
    return [p.name for p in build_pipeline(load(CollectorSettings, environ), None).processors]  # type: ignore[arg-type]


def test_defaults_follow_the_design_redaction_and_cost_on_sampling_off() -> None:
    assert _names({}) == ["validation", "redaction", "cost"]


def test_every_stage_on_runs_in_the_order_of_the_architecture_picture() -> None:
    everything = {"ENABLE_SAMPLING": "true", "TAIL_SAMPLING": "true"}
    assert _names(everything) == ["validation", "head_sampling", "redaction", "cost", "tail_sampling"]
    assert _names({"ENABLE_PII_DETECTION": "false", "ENABLE_COST_CALCULATION": "false"}) == ["validation"]


def test_settings_reach_the_stages(tmp_path: Path) -> None:
    patterns = tmp_path / "patterns.json"
    patterns.write_text('{"ticket": "TCK-[0-9]+"}')
    settings = load(CollectorSettings, {
        "SAMPLING_SERVICE_PERCENTAGES": "checkout=100, noisy=1.5", "REDACTION_RULE_STRATEGIES": "email:hash,card:remove",
        "REDACTION_HASH_KEY": "a-secret-of-16-chars", "REDACTION_PATTERNS_FILE": str(patterns),
        "REDACTION_IGNORED_KEYS": "order.id", "TAIL_KEEP_SERVICES": "pay.*",
    })
    assert configure.head_sampling(settings).service_percentages == {"checkout": 100.0, "noisy": 1.5}
    redaction = configure.redaction(settings)
    assert redaction.strategies == {"email": "hash", "card": "remove"} and redaction.custom_patterns == {"ticket": "TCK-[0-9]+"}
    assert redaction.ignored_keys == ("order.id",)  # nothing is ignored unless listed: service.name is scanned too
    assert configure.tail_sampling(settings).keep_services == ("pay.*",)


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"SAMPLING_SERVICE_PERCENTAGES": "checkout"}, "SAMPLING_SERVICE_PERCENTAGES entries must look like name=value, got 'checkout'"),
        ({"SAMPLING_SERVICE_PERCENTAGES": "a=lots"}, "SAMPLING_SERVICE_PERCENTAGES percentages must be numbers, got 'lots'"),
        ({"SAMPLING_SERVICE_PERCENTAGES": "a=150"}, "between 0 and 100"),
        ({"SAMPLING_PERCENTAGE": "150"}, "SAMPLING_PERCENTAGE percentages must be between 0 and 100"),
        ({"SAMPLING_MODE": "random"}, "SAMPLING_MODE must be one of hash_seed, proportional"),
        ({"REDACTION_RULE_STRATEGIES": "email"}, "REDACTION_RULE_STRATEGIES entries must look like name:value"),
        ({"REDACTION_PATTERNS_FILE": "/nonexistent.json"}, "REDACTION_PATTERNS_FILE='/nonexistent.json' cannot be read"),
        ({"REDACTION_BLOCKED_KEYS": "(unclosed"}, "REDACTION_BLOCKED_KEYS has an invalid regular expression '\\(unclosed'"),
        ({"TAIL_KEEP_SPAN_NAMES": "[x"}, "TAIL_KEEP_SPAN_NAMES has an invalid regular expression"),
        ({"REDACTION_DETECTORS": "email,dna"}, "unknown detector\\(s\\) dna"),
        ({"REDACTION_STRATEGY": "hash"}, "REDACTION_HASH_KEY of at least 16 characters"),
        ({"PRICING_FILE": "/nonexistent.json"}, "PRICING_FILE='/nonexistent.json' cannot be read"),
        ({"TAIL_KEEP_ATTRIBUTES": "tier"}, "must be key=value"),
    ],
)
def test_bad_settings_stop_the_collector_with_a_message_naming_the_variable(environ: dict[str, str], message: str) -> None:
    environ = {"ENABLE_SAMPLING": "true", "TAIL_SAMPLING": "true", **environ}
    with pytest.raises((SettingsError, ValueError), match=message):
        build_pipeline(load(CollectorSettings, environ), None)  # type: ignore[arg-type]


def test_patterns_file_must_hold_names_and_regexes(tmp_path: Path) -> None:
    bad = tmp_path / "p.json"
    for text, message in (("[1, 2]", "must be a JSON object of name → regex strings"), ("{nope", "is not JSON")):
        bad.write_text(text)
        with pytest.raises(SettingsError, match=message):
            configure.redaction(load(CollectorSettings, {"REDACTION_PATTERNS_FILE": str(bad)}))
