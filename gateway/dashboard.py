"""The web dashboard: `GET /` and its static files under `/static/`, same origin as the API
it calls (like any other client, with a bearer token), no CDN.

The page's policy allows scripts, styles and requests to this origin only: no inline script
or style, no frames, no form posts elsewhere. Files are revalidated on every load
(`no-cache` with their ETag), so a release reaches a browser at once.
"""

from __future__ import annotations

from pathlib import Path

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from gateway.conditional import entity_tags

STATIC = Path(__file__).resolve().parent / "static"
PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
REVALIDATE = "no-cache"


class _Files(StaticFiles):
    """Static files answered with the page's policy and revalidated on each load."""

    def is_not_modified(self, response_headers: Headers, request_headers: Headers) -> bool:
        # A tag the browser got with a compressed copy names the same file.
        wanted = entity_tags(request_headers.get("if-none-match", ""))
        if wanted:
            return "*" in wanted or response_headers["etag"] in wanted
        return super().is_not_modified(response_headers, request_headers)

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers["Cache-Control"] = REVALIDATE
        response.headers["Content-Security-Policy"] = PAGE_POLICY
        return response


def routes() -> list[BaseRoute]:
    files = _Files(directory=STATIC)

    async def page(request: Request) -> Response:
        # Through the static files' answer: the page gets their ETag and 304s too.
        return await files.get_response("index.html", request.scope)

    return [
        Route("/", page, methods=["GET", "HEAD"]),
        Mount("/static", files, name="dashboard"),
    ]
