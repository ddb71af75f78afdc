"""The trace explorer: static HTML, CSS and JavaScript modules shipped in api/ui/ and served
on the API port under /ui/ (`/` redirects there).

The files need no credential; every data call they make goes to this API's own routes with
the key the user signed in with (kept in the browser's sessionStorage). The Content
Security Policy lets the page load only its own files and talk only to this origin, so no
data can be sent anywhere else, and no inline script or style runs.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from aiohttp import web

from api.problems import not_found

UI_DIR = Path(__file__).parent / "ui"
UI_PREFIX = "/ui/"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
    "Cross-Origin-Opener-Policy": "same-origin",
}
TYPES = {".html": "text/html", ".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml", ".png": "image/png"}
UI_FILES = web.AppKey("ui_files", dict)


def load_files(root: Path = UI_DIR) -> dict[str, tuple[bytes, str]]:
    """Every file of the explorer by its path under /ui/, read once at start: a request can
    only ever name one of these, never a path on disk."""
    files: dict[str, tuple[bytes, str]] = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.suffix in TYPES:
            kind = TYPES[path.suffix] or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            files[path.relative_to(root).as_posix()] = (path.read_bytes(), kind)
    return files


def _file(request: web.Request, name: str) -> web.Response:
    found = request.app[UI_FILES].get(name)
    if found is None:
        raise not_found(f"no explorer file {name[:100]!r}")
    body, kind = found
    charset = "utf-8" if kind.startswith("text/") or kind.endswith("+xml") else None
    return web.Response(body=body, content_type=kind, charset=charset, headers=HEADERS)


async def root(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound(UI_PREFIX)


async def index(request: web.Request) -> web.Response:
    return _file(request, "index.html")


async def asset(request: web.Request) -> web.Response:
    return _file(request, request.match_info["path"])


def add_routes(app: web.Application) -> dict[str, str | None]:
    """The explorer's routes; none needs a credential (the files hold no data)."""
    app[UI_FILES] = load_files()
    app.router.add_get("/", root)
    app.router.add_get("/ui", root)
    app.router.add_get(UI_PREFIX, index)
    app.router.add_get(UI_PREFIX + "{path:.+}", asset)
    return {"/": None, "/ui": None, UI_PREFIX: None, UI_PREFIX + "{path}": None}
