"""The operator docs name files, links and compose variables that exist."""

from __future__ import annotations

import re

import pytest

from tests.docker.compose import COMPOSE_FILES, ROOT

DOCS = ("docs/QUICK_START.md", "docs/DOCKER_WORKFLOWS.md", "docs/OPERATIONS.md", "docs/TROUBLESHOOTING.md")


@pytest.mark.parametrize("doc", DOCS)
def test_links_and_repository_paths_exist(doc: str) -> None:
    text = (ROOT / doc).read_text()
    folder = (ROOT / doc).parent
    for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", text):
        assert (folder / target).exists(), f"{doc} links to {target}, which does not exist"
    for path in set(re.findall(r"`((?:docker/|docker-compose)[\w./-]*\w)`", text)):
        assert (ROOT / path).exists(), f"{doc} names {path}, which does not exist"


@pytest.mark.parametrize("doc", DOCS)
def test_publish_variables_named_are_the_compose_files(doc: str) -> None:
    compose = "".join((ROOT / name).read_text() for name in COMPOSE_FILES)
    for variable in set(re.findall(r"\b[A-Z_]+_PUBLISH\b", (ROOT / doc).read_text())):
        assert "${" + variable + ":-" in compose, f"{doc} names {variable}, which no compose file reads"


def test_troubleshooting_keeps_a_section_per_component() -> None:
    headings = re.findall(r"^## (.+)$", (ROOT / "docs/TROUBLESHOOTING.md").read_text(), re.M)
    assert headings == ["Collector", "Storage writer", "API", "CLI", "Docker Compose"]
    assert "## Storage" in (ROOT / "docs/OPERATIONS.md").read_text().splitlines()
