"""RFC 9457 problem-details answers, raised as exceptions from anywhere below a route."""

from __future__ import annotations

from aiohttp import web

PROBLEM_TYPE = "application/problem+json"


class Problem(Exception):
    """An answer other than success; the middleware turns it into problem+json."""

    def __init__(
        self, status: int, title: str, detail: str, *, parameter: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.parameter = parameter
        self.headers = headers or {}

    def response(self, instance: str) -> web.Response:
        body: dict[str, object] = {
            "type": "about:blank", "title": self.title, "status": self.status, "detail": self.detail,
            "instance": instance,
        }
        if self.parameter is not None:
            body["parameter"] = self.parameter
        return web.json_response(body, status=self.status, content_type=PROBLEM_TYPE, headers=self.headers)


def bad_parameter(parameter: str, detail: str) -> Problem:
    return Problem(400, "Invalid parameter", f"{parameter}: {detail}", parameter=parameter)


def not_found(detail: str) -> Problem:
    return Problem(404, "Not found", detail)
