"""The explorer's files (api/ui.py): served without a credential under a strict CSP, only the
shipped files, and shipped in the wheel `pip install` installs."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from api.ui import UI_DIR

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted(p.relative_to(UI_DIR).as_posix() for p in UI_DIR.rglob("*") if p.is_file())


async def test_root_redirects_to_the_explorer(client: TestClient) -> None:
    for path in ("/", "/ui"):
        answer = await client.get(path, allow_redirects=False)
        assert answer.status == 302 and answer.headers["Location"] == "/ui/"


@pytest.mark.parametrize("name", SHIPPED)
async def test_every_file_is_served_without_credentials_under_the_policy(client: TestClient, name: str) -> None:
    answer = await client.get("/ui/" + name)
    assert answer.status == 200
    assert await answer.read() == (UI_DIR / name).read_bytes()
    policy = answer.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "connect-src 'self'" in policy and "'unsafe" not in policy
    assert answer.headers["X-Content-Type-Options"] == "nosniff" and answer.headers["Referrer-Policy"] == "no-referrer"
    kind = {"html": "text/html", "css": "text/css", "js": "text/javascript"}[name.rsplit(".", 1)[1]]
    assert answer.content_type == kind


@pytest.mark.parametrize("path", ["/ui/nope.js", "/ui/../api/ui.py", "/ui/%2e%2e/ui.py", "/ui/js/../../ui.py", "/ui/js/"])
async def test_only_shipped_files_are_served(client: TestClient, path: str) -> None:
    answer = await client.get(path)
    assert answer.status == 404 and b"import" not in await answer.read()


def test_the_page_has_no_inline_script_or_style_and_loads_only_its_own_files() -> None:
    html = (UI_DIR / "index.html").read_text()
    assert re.findall(r"<script[^>]*>", html) == ['<script type="module" src="js/main.js">']
    assert "style=" not in html and "<style" not in html and "http" not in html.replace('http-equiv', '')
    for script in (UI_DIR / "js").glob("*.js"):
        text = script.read_text()
        assert "innerHTML" not in text and "eval(" not in text and "localStorage.set" not in text, script.name
        assert not re.search(r"fetch\(\s*['\"`]https?:", text), script.name  # data goes to this origin only
        for imported in re.findall(r'from "\./([\w.]+)"', text):
            assert (UI_DIR / "js" / imported).is_file(), f"{script.name} imports {imported}, which is not shipped"


def test_the_wheel_ships_the_explorer(tmp_path: Path) -> None:
    # pip builds it as `pip install .` would (an isolated build with the build-system's setuptools).
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
                           capture_output=True, text=True, timeout=300)
    if built.returncode != 0 and re.search(r"Could not find a version|No matching distribution|NewConnectionError", built.stderr):
        pytest.skip(f"pip cannot fetch the build backend here: {built.stderr.strip().splitlines()[-1]}")
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {f"api/ui/{name}" for name in SHIPPED} <= names
