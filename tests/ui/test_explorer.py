"""The trace explorer in a real headless Chromium, against a running stack (collector,
writer, API as processes) seeded with known traces (tests/ui/seed.py): sign in, search,
open a trace, walk the waterfall with the keyboard, select the LLM span, and check what is
rendered (bars, nesting, the messages, the cost), the usage charts, labels, keyboard
navigation, the Content-Security-Policy, and that the console stays free of errors and no
request leaves the API's origin. Screenshots land in tests/ui/artifacts/ (UI_TEST_ARTIFACTS)."""

from __future__ import annotations

import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Database, create_database, drop_database
from tests.e2e.conftest import Stack, start_stack
from tests.support import wait_for
from tests.ui import seed
from tests.ui.demo import forget_keys
from tests.ui.browser import chromium, screenshot

pytestmark = pytest.mark.e2e
K = seed.KNOWN


@pytest.fixture(scope="module")
def seeded_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    database: Database = create_database("obs_ui_test")
    prefix = f"obs-test:{uuid.uuid4().hex[:12]}:"
    try:
        stack = start_stack(database, prefix, tmp_path_factory.mktemp("ui-stack"))
        try:
            seed.send(stack.http_url)
            for trace_id, spans in ((K.weather_trace, K.weather_spans), (K.openinference_trace, 2), (K.legacy_trace, 1), (K.events_trace, 1)):
                stack.trace(trace_id, spans)
            yield stack
        finally:
            stack.stop()
    finally:
        drop_database(database.name)
        forget_keys(prefix)


@pytest.fixture(scope="module")
def browser(seeded_stack: Stack) -> Iterator[Any]:
    driver = chromium()
    yield driver
    driver.quit()


def base(stack: Stack) -> str:
    return f"http://127.0.0.1:{stack.api_port}"


def until(driver: Any, script: str, what: str, timeout: float = 15) -> Any:
    """Wait until a JavaScript expression is truthy in the page; return its value."""
    return wait_for(lambda: driver.execute_script(f"return ({script});"), timeout, 0.1, what)


def texts(driver: Any, selector: str) -> list[str]:
    return driver.execute_script(f"return [...document.querySelectorAll({selector!r})].map(e => e.textContent.trim());")


def console_errors(driver: Any) -> list[dict[str, Any]]:
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def test_the_explorer_is_served_with_a_strict_policy(seeded_stack: Stack) -> None:
    with urllib.request.urlopen(base(seeded_stack) + "/ui/", timeout=5) as answer:
        policy = answer.headers["Content-Security-Policy"]
        assert answer.headers["Content-Type"].startswith("text/html") and b'type="module"' in answer.read()
    assert "default-src 'none'" in policy and "script-src 'self'" in policy and "connect-src 'self'" in policy
    assert "unsafe-inline" not in policy and "frame-ancestors 'none'" in policy
    request = urllib.request.Request(base(seeded_stack) + "/", method="GET")
    opener = urllib.request.build_opener(type("NoRedirect", (urllib.request.HTTPRedirectHandler,), {"redirect_request": lambda *a: None}))
    with pytest.raises(urllib.error.HTTPError) as redirect:
        opener.open(request, timeout=5)
    assert redirect.value.code == 302 and redirect.value.headers["Location"] == "/ui/"


def test_sign_in_search_and_open_a_trace(browser: Any, seeded_stack: Stack) -> None:
    driver = browser
    driver.get(base(seeded_stack) + "/ui/")
    until(driver, "location.hash.startsWith('#/signin') && document.getElementById('api-key')", "the sign-in form")
    key_input = driver.find_element("id", "api-key")
    assert driver.execute_script("return arguments[0].labels[0].textContent", key_input).startswith("API key")
    key_input.send_keys(seeded_stack.api_key + "\n")
    until(driver, "document.querySelectorAll('#trace-results tbody tr').length === 4", "four traces listed")
    assert driver.execute_script("return sessionStorage.getItem('observatory.apiKey')") == seeded_stack.api_key
    assert driver.execute_script("return localStorage.length") == 0 and driver.get_cookies() == []

    row = driver.find_element("css selector", f"#trace-results tr[data-trace-id='{K.weather_trace}']")
    cells = [c.text for c in row.find_elements("css selector", "td")]
    assert cells[1] == "web-frontend: POST /ask" and cells[2].startswith("1.80 s")
    assert cells[3:7] == ["5", "1", "1,200 / 400", "$0.000420"]
    assert "llm-gateway" in cells[7] and "retriever" in cells[7]
    unlabeled = driver.execute_script("return [...document.querySelectorAll('input, select, textarea')].filter(e => e.labels.length === 0).map(e => e.id)")
    assert unlabeled == []
    screenshot(driver, "search")

    # the form: a service filter, then a span-attribute filter (which searches spans)
    service = driver.find_element("id", "service")
    service.send_keys("llm-gateway")
    driver.find_element("css selector", "form.filters button[type=submit]").click()
    until(driver, "location.hash.includes('service=llm-gateway') && document.querySelectorAll('#trace-results tbody tr').length === 1", "one llm-gateway trace")
    driver.get(base(seeded_stack) + "/ui/#/traces?range=1h&attr=gen_ai.request.model%3Dgpt-4o")
    until(driver, "document.querySelectorAll('#span-results tbody tr').length === 1", "one span with model gpt-4o")
    assert texts(driver, "#span-results tbody td:nth-child(2)") == ["openai.chat"]

    driver.get(base(seeded_stack) + "/ui/#/traces?range=1h")
    until(driver, "document.querySelectorAll('#trace-results tbody tr').length === 4", "four traces again")
    driver.find_element("css selector", f"#trace-results a[href='#/trace/{K.weather_trace}']").click()
    until(driver, "document.querySelectorAll('#waterfall-tree [role=treeitem]').length === 5", "the waterfall")


def test_waterfall_bars_nesting_and_keyboard(browser: Any, seeded_stack: Stack) -> None:
    driver = browser
    driver.get(base(seeded_stack) + f"/ui/#/trace/{K.weather_trace}")
    until(driver, "document.querySelectorAll('#waterfall-tree [role=treeitem]').length === 5", "the waterfall")
    rows = driver.execute_script("""return [...document.querySelectorAll('#waterfall-tree [role=treeitem]')].map(r => ({
        level: r.getAttribute('aria-level'), label: r.getAttribute('aria-label'), name: r.querySelector('.name').textContent,
        left: parseFloat(r.querySelector('.wf-bar').style.left), width: parseFloat(r.querySelector('.wf-bar').style.width),
        error: r.querySelector('.wf-bar').classList.contains('error'), colour: r.querySelector('.wf-bar').style.backgroundColor}))""")
    assert [(r["name"], r["level"]) for r in rows] == [
        ("POST /ask", "1"), ("retrieve documents", "2"), ("chat gpt-4o-mini", "2"), ("tool get_forecast", "3"), ("render answer", "2")]
    expected = {"POST /ask": (0, 1800), "retrieve documents": (20, 300), "chat gpt-4o-mini": (350, 1200),
                "tool get_forecast": (600, 200), "render answer": (1600, 150)}
    for row in rows:
        start, duration = expected[row["name"]]
        assert row["left"] == pytest.approx(100 * start / 1800, abs=0.01) and row["width"] == pytest.approx(100 * duration / 1800, abs=0.01)
        assert row["error"] == (row["name"] == "render answer")
        assert row["label"].startswith(row["name"] + ", ") and (", error" in row["label"]) == row["error"]
    colours = {r["name"]: r["colour"] for r in rows}
    assert colours["chat gpt-4o-mini"] == colours["tool get_forecast"] != colours["POST /ask"] != colours["retrieve documents"]
    assert driver.execute_script("return document.getElementById('waterfall-tree').getAttribute('aria-label')")

    # keyboard: from the root, down twice to the LLM call, which shows its conversation
    driver.find_element("css selector", "#waterfall-tree [role=treeitem]").click()
    active = lambda: driver.execute_script("return document.activeElement.querySelector('.name').textContent")  # noqa: E731
    assert active() == "POST /ask"
    for _ in range(2):
        driver.switch_to.active_element.send_keys("\ue015")  # ArrowDown
    assert active() == "chat gpt-4o-mini"
    until(driver, "document.querySelector('#span-details h2').textContent === 'chat gpt-4o-mini'", "the LLM span's details")
    assert driver.execute_script("return document.activeElement.getAttribute('aria-selected')") == "true"
    assert f"span={K.weather_llm_span}" in driver.current_url  # the selection is part of the shareable URL
    roles = texts(driver, "#conversation .msg .role")
    assert [r.split(" ")[0].lower() for r in roles] == ["system", "user", "assistant", "tool", "assistant"]
    conversation = driver.find_element("id", "conversation").text
    assert "Will it rain in Lisbon tomorrow?" in conversation and "get_forecast" in conversation and "rain 80%" in conversation
    assert "an 80% chance of rain in Lisbon tomorrow" in conversation
    assert driver.find_element("id", "llm-model").text == "gpt-4o-mini → gpt-4o-mini-2024-07-18"
    tokens = dict(zip(texts(driver, "#llm-tokens th"), texts(driver, "#llm-tokens td")))
    assert tokens == {"Input": "1,200", "Output": "400", "Total": "1,600", "Cache read": "1,024"}
    cost = dict(zip(texts(driver, "#llm-cost th"), texts(driver, "#llm-cost td")))
    assert cost == {"input": "$0.000180", "output": "$0.000240", "total": "$0.000420"}
    screenshot(driver, "trace")
    driver.execute_script("document.getElementById('conversation').scrollIntoView({block: 'start'})")
    screenshot(driver, "conversation")

    # ArrowLeft collapses the expanded LLM span, hiding its tool call; ArrowRight opens it
    driver.switch_to.active_element.send_keys("\ue012")  # ArrowLeft
    assert driver.execute_script("return document.activeElement.getAttribute('aria-expanded')") == "false"
    assert driver.execute_script("return [...document.querySelectorAll('#waterfall-tree [role=treeitem]')].filter(r => !r.hidden).length") == 4
    driver.switch_to.active_element.send_keys("\ue014")  # ArrowRight
    assert driver.execute_script("return [...document.querySelectorAll('#waterfall-tree [role=treeitem]')].filter(r => !r.hidden).length") == 5
    driver.switch_to.active_element.send_keys("\ue014")  # ArrowRight again: to the child
    assert active() == "tool get_forecast"
    driver.switch_to.active_element.send_keys("\ue012")  # ArrowLeft on a leaf: to its parent
    assert active() == "chat gpt-4o-mini"
    driver.switch_to.active_element.send_keys("\ue010")  # End
    assert active() == "render answer"
    details = driver.find_element("id", "span-details").text
    assert "error: template missing" in details


@pytest.mark.parametrize(("trace_id", "says"), [
    (K.openinference_trace, ["Answer briefly.", "Reset my password", "Use the reset link on the login page."]),
    (K.legacy_trace, ["Summarize: the meeting moved to Friday.", "Meeting now on Friday."]),
    (K.events_trace, ["Say hi", "Hi!"]),
])
def test_each_conventions_conversation_is_shown(browser: Any, seeded_stack: Stack, trace_id: str, says: list[str]) -> None:
    browser.get(base(seeded_stack) + f"/ui/#/trace/{trace_id}")
    until(browser, "document.getElementById('conversation')", "the conversation")
    text = browser.find_element("id", "conversation").text
    for line in says:
        assert line in text


def test_usage_page_charts_and_links(browser: Any, seeded_stack: Stack) -> None:
    driver = browser
    driver.get(base(seeded_stack) + "/ui/#/usage?range=1h")
    until(driver, "document.querySelectorAll('#chart-cost-model rect').length > 0", "the cost chart")
    titles = driver.execute_script("return [...document.querySelectorAll('#chart-cost-model rect title')].map(t => t.textContent)")
    assert any(t.startswith("gpt-4o-mini ") for t in titles) and any(t.startswith("claude-3-5-sonnet ") for t in titles)
    assert driver.execute_script("return document.querySelectorAll('#chart-latency polyline').length") == 3
    models = texts(driver, "#totals-model tbody td:first-child")
    assert set(models) == {"gpt-4o-mini", "claude-3-5-sonnet", "gpt-4o", "mistral-small"}
    link = driver.find_element("css selector", "#totals-model a[href*='model=gpt-4o-mini']")
    screenshot(driver, "usage")
    link.click()
    until(driver, "document.querySelectorAll('#trace-results tbody tr').length === 1", "the model's traces")
    assert texts(driver, "#trace-results tbody td:nth-child(2)") == ["web-frontend: POST /ask"]


def test_attribute_values_show_their_otlp_type(browser: Any, seeded_stack: Stack) -> None:
    driver = browser
    driver.get(base(seeded_stack) + f"/ui/#/trace/{K.weather_trace}?span={seed.sid(2).hex()}")
    until(driver, "document.querySelector('#span-details h2') && document.querySelector('#span-details h2').textContent === 'retrieve documents'", "the retrieval span")
    cells = driver.execute_script("""return Object.fromEntries([...document.querySelectorAll('#span-details section[aria-label=Attributes] tr')]
        .map(r => [r.querySelector('th').textContent, [r.querySelector('td').dataset.type, r.querySelector('td').firstChild.textContent]]))""")
    assert cells["retrieval.threshold"] == ["double", "1.0"]  # plain JSON would read 1, an int
    assert cells["retrieval.top_k"] == ["int", "4"]
    assert cells["cache.digest"] == ["bytes", "base64:3q2+7w=="]  # plain JSON: a string that looks like text
    assert cells["retrieval.scores"][0] == "array"


# Span shapes of the conventions the seed does not send, checked on the module itself (the
# explorer reads log records once the API gives a span's `logs`).
CASES = """[
  {attributes: {}, events: [], logs: [
    {event_name: "gen_ai.system.message", body: {content: "Be brief."}},
    {event_name: "gen_ai.user.message", body: {content: "Hi"}},
    {event_name: "gen_ai.choice", body: {index: 0, finish_reason: "stop", message: {role: "assistant", content: "Hello"}}}]},
  {attributes: {}, events: [], logs: [{event_name: "gen_ai.client.inference.operation.details", attributes: {
    "gen_ai.input.messages": [{role: "user", parts: [{type: "text", content: "Q?"}]}],
    "gen_ai.output.messages": [{role: "assistant", parts: [{type: "text", content: "A."}], finish_reason: "stop"}]}}]},
  {attributes: {}, events: [{name: "gen_ai.content.prompt", attributes: {"gen_ai.prompt": "tell a joke"}},
                            {name: "gen_ai.content.completion", attributes: {"gen_ai.completion": "no"}}]},
  {attributes: {"llm.input_messages.0.message.role": "user", "llm.input_messages.0.message.content": "weather?",
                "llm.output_messages.0.message.role": "assistant",
                "llm.output_messages.0.message.tool_calls.0.tool_call.function.name": "lookup",
                "llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments": "{\\"q\\": 1}"}},
  {attributes: {"gen_ai.prompt.0.role": "user", "gen_ai.prompt.0.content": "add 2+2",
                "gen_ai.completion.0.role": "assistant", "gen_ai.completion.0.tool_calls.0.name": "calc",
                "gen_ai.completion.0.tool_calls.0.arguments": "2+2", "gen_ai.completion.0.finish_reason": "tool_calls"}},
  {attributes: {"http.route": "/"}, events: [], logs: []}
]"""


def test_conversation_reads_log_records_and_every_convention(browser: Any, seeded_stack: Stack) -> None:
    driver = browser
    driver.get(base(seeded_stack) + "/ui/#/signin")
    found = driver.execute_async_script(f"""
        const done = arguments[arguments.length - 1];
        import('/ui/js/conversation.js').then(m => done({CASES}.map(span => m.conversation(span)))).catch(e => done(String(e)));""")
    assert isinstance(found, list), found
    logs, details, openlit, openinference, indexed, none = found
    assert logs["source"] == "log records"
    assert [(m["role"], m["parts"][0]["text"]) for m in logs["input"]] == [("system", "Be brief."), ("user", "Hi")]
    assert [(m["role"], m["parts"][0]["text"], m["finish"]) for m in logs["output"]] == [("assistant", "Hello", "stop")]
    assert [m["parts"][0]["text"] for m in details["input"] + details["output"]] == ["Q?", "A."]
    assert openlit["source"] == "span events" and [m["parts"][0]["text"] for m in openlit["input"] + openlit["output"]] == ["tell a joke", "no"]
    assert openinference["output"][0]["parts"] == [{"type": "tool_call", "id": None, "name": "lookup", "args": '{"q": 1}'}]
    assert indexed["output"][0]["parts"] == [{"type": "tool_call", "id": None, "name": "calc", "args": "2+2"}]
    assert indexed["output"][0]["finish"] == "tool_calls"
    assert none == {"input": [], "output": [], "source": None}


# Last: the console log covers every page the tests above opened.
def test_no_console_errors_and_no_other_origin(browser: Any, seeded_stack: Stack) -> None:
    driver = browser
    for fragment in ("#/traces?range=1h", f"#/trace/{K.weather_trace}", "#/usage?range=24h"):
        driver.get(base(seeded_stack) + "/ui/" + fragment)
        until(driver, "document.querySelector('main table, main .waterfall, main .cards')", f"{fragment} rendered")
        origins = driver.execute_script("return [...new Set(performance.getEntriesByType('resource').map(e => new URL(e.name).origin))]")
        assert origins == [base(seeded_stack)]
    assert console_errors(driver) == []
    assert Path(screenshot(driver, "usage-24h")).stat().st_size > 0
