"""The explorer's trace page over a trace longer than one answer of GET /api/v1/traces/{id}:
in a real headless Chromium, against a stack whose API pages traces by 2 spans
(API_TRACE_PAGE_SPANS=2), the page says how many of the spans it shows and loads the rest
on demand, and the waterfall ends as the whole trace's tree (tests/ui/seed.py)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import Database, create_database, drop_database
from tests.e2e.conftest import Stack, start_stack
from tests.support import wait_for
from tests.ui import seed
from tests.ui.browser import chromium
from tests.ui.demo import forget_keys

pytestmark = pytest.mark.e2e
K = seed.KNOWN
WHOLE_TREE = [("POST /ask", "1"), ("retrieve documents", "2"), ("chat gpt-4o-mini", "2"), ("tool get_forecast", "3"), ("render answer", "2")]


@pytest.fixture(scope="module")
def paged_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    database: Database = create_database("obs_ui_paging")
    prefix = f"obs-test:{uuid.uuid4().hex[:12]}:"
    try:
        stack = start_stack(database, prefix, tmp_path_factory.mktemp("ui-paging"), API_TRACE_PAGE_SPANS="2")
        try:
            seed.send(stack.http_url)
            wait_for(lambda: stack.api_get(f"/api/v1/traces/{K.weather_trace}")[1].get("span_count") == K.weather_spans,
                     20, 0.1, "the weather trace stored whole")
            yield stack
        finally:
            stack.stop()
    finally:
        drop_database(database.name)
        forget_keys(prefix)


@pytest.fixture(scope="module")
def browser(paged_stack: Stack) -> Iterator[Any]:
    driver = chromium()
    yield driver
    driver.quit()


def until(driver: Any, script: str, what: str, timeout: float = 15) -> Any:
    return wait_for(lambda: driver.execute_script(f"return ({script});"), timeout, 0.1, what)


def tree(driver: Any) -> list[tuple[str, str]]:
    rows = driver.execute_script("""return [...document.querySelectorAll('#waterfall-tree [role=treeitem]')]
        .map(r => [r.querySelector('.name').textContent, r.getAttribute('aria-level')])""")
    return [tuple(row) for row in rows]


def test_a_paged_trace_says_so_and_loads_the_rest_on_demand(browser: Any, paged_stack: Stack) -> None:
    driver = browser
    base = f"http://127.0.0.1:{paged_stack.api_port}/ui/"
    driver.get(base)
    driver.execute_script("sessionStorage.setItem('observatory.apiKey', arguments[0])", paged_stack.api_key)
    driver.get(base + f"#/trace/{K.weather_trace}?span={K.weather_llm_span}")
    until(driver, "document.querySelectorAll('#waterfall-tree [role=treeitem]').length === 2", "the first page")
    assert driver.find_element("id", "trace-loaded").text == "Showing the first 2 of 5 spans (by start time)."
    assert driver.find_element("id", "trace-span-count").text == "5"  # the summary is over the whole trace
    assert tree(driver) == [("POST /ask", "1"), ("retrieve documents", "2")]

    driver.find_element("id", "load-more-spans").click()
    until(driver, "document.querySelectorAll('#waterfall-tree [role=treeitem]').length === 4", "the second page")
    assert driver.find_element("id", "trace-loaded").text == "Showing the first 4 of 5 spans (by start time)."
    # the span named in the URL arrived with this page and is now selected
    until(driver, f"document.querySelector('#span-details')?.dataset.spanId === '{K.weather_llm_span}'", "the LLM span selected")

    driver.find_element("id", "load-more-spans").click()
    until(driver, "document.querySelectorAll('#waterfall-tree [role=treeitem]').length === 5 && !document.getElementById('trace-partial')",
          "the whole trace, and no notice")
    assert tree(driver) == WHOLE_TREE
    assert driver.find_elements("id", "load-more-spans") == []
    assert driver.execute_script("return document.querySelector('#span-details').dataset.spanId") == K.weather_llm_span
    assert [e for e in driver.get_log("browser") if e["level"] == "SEVERE"] == []
