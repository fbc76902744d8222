"""The API described: `GET /openapi.json` (built from the protos, see gateway.openapi) and
`GET /docs`, Swagger UI served from the pinned `swagger-ui-py` wheel's files (Swagger UI 5,
which reads OpenAPI 3.1), same origin, no CDN and no inline script.

Neither needs a token: they describe the API, not a customer's data.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import swagger_ui
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from gateway import openapi
from gateway.transcoding import Route as ApiRoute

SWAGGER_UI = Path(swagger_ui.__file__).resolve().parent / "static"
# Swagger UI sets styles inline; scripts only come from this origin.
DOCS_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Upstream API</title>
<link rel="stylesheet" href="/docs/static/swagger-ui.css">
<link rel="icon" href="/docs/static/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/static/swagger-ui-bundle.js"></script>
<script src="/docs/start.js"></script>
</body>
</html>
"""
_START = """window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    persistAuthorization: false,
  });
});
"""


def routes(api_routes: Sequence[ApiRoute]) -> list[BaseRoute]:
    """The document is built once, here, from the routes the gateway serves."""
    document = json.dumps(openapi.build_spec(api_routes), ensure_ascii=False).encode()

    async def spec(_: Request) -> Response:
        return Response(
            document,
            media_type="application/json",
            headers={"Cache-Control": "public, max-age=300"},
        )

    async def page(_: Request) -> Response:
        return Response(
            _PAGE,
            media_type="text/html; charset=utf-8",
            headers={"Content-Security-Policy": DOCS_POLICY, "X-Content-Type-Options": "nosniff"},
        )

    async def start(_: Request) -> Response:
        return Response(_START, media_type="text/javascript; charset=utf-8")

    return [
        Route("/openapi.json", spec, methods=["GET", "HEAD"]),
        Route("/docs", page, methods=["GET", "HEAD"]),
        Route("/docs/start.js", start, methods=["GET", "HEAD"]),
        Mount("/docs/static", StaticFiles(directory=SWAGGER_UI), name="swagger-ui"),
    ]
