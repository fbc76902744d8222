"""What every HTTP answer of the gateway gets, whatever route made it: compression, security
headers and CORS.

- brotli (brotli-asgi) when the client accepts it, else gzip (Starlette's), when the body is
  500 bytes or more, flushed chunk by chunk so a stream stays a stream; never a download
  (its length and SHA-256 are the file's) nor a 304. A compressed answer is another
  representation: its strong ETag gets `-br` or `-gzip`, which If-None-Match and If-Match
  read back (gateway.conditional).
- `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer`, and for API answers a
  `Content-Security-Policy` that allows nothing (`default-src 'none'; frame-ancestors
  'none'`); a page sets its own. HSTS when the request came over TLS.
- CORS for the origins `CORS_ALLOWED_ORIGINS` names (none by default): preflights answered,
  and the headers a web client reads (ETag, X-Request-ID, API-Version, Retry-After, the
  RateLimit ones, Content-Disposition) exposed.
"""

from __future__ import annotations

from brotli_asgi import BrotliMiddleware
from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.problems import API_VERSION, request_id_of
from runtime.settings import Settings

COMPRESS_FROM_BYTES = 500
# zlib's default level: most of the gain of 9 at a fraction of its CPU.
COMPRESS_LEVEL = 6
# Brotli's quality 4 compresses JSON smaller than gzip -6 and about as fast.
BROTLI_QUALITY = 4
# The ETag suffix of each encoding's copy of an answer.
ENCODING_ETAG_SUFFIXES = {"br": "-br", "gzip": "-gzip"}
API_POLICY = "default-src 'none'; frame-ancestors 'none'"
HSTS = "max-age=63072000; includeSubDomains"
EXPOSED_HEADERS = (
    "ETag",
    "X-Request-ID",
    "API-Version",
    "Retry-After",
    "RateLimit-Limit",
    "RateLimit-Remaining",
    "RateLimit-Reset",
    "Content-Disposition",
)
ALLOWED_HEADERS = (
    "Authorization",
    "Content-Type",
    "Idempotency-Key",
    "If-Match",
    "If-None-Match",
    "X-Request-ID",
    "traceparent",
    "tracestate",
)


class Compression:
    """brotli-asgi's brotli or Starlette's gzip, minus downloads, with the ETag of what was
    compressed made the copy's own."""

    def __init__(self, app: ASGIApp) -> None:
        self._plain = app
        self._gzip = GZipMiddleware(
            app, minimum_size=COMPRESS_FROM_BYTES, compresslevel=COMPRESS_LEVEL
        )
        self._brotli = BrotliMiddleware(
            app, quality=BROTLI_QUALITY, minimum_size=COMPRESS_FROM_BYTES, gzip_fallback=False
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or str(scope.get("path", "")).endswith(":download"):
            await self._plain(scope, receive, send)
            return

        async def tagged(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(raw=list(message.get("headers", [])))
                etag = headers.get("etag", "")
                suffix = ENCODING_ETAG_SUFFIXES.get(headers.get("content-encoding", ""))
                if suffix and etag.startswith('"'):
                    headers["etag"] = etag[:-1] + suffix + '"'
                    message = {**message, "headers": headers.raw}
            await send(message)

        accepted = Headers(scope=scope).get("accept-encoding", "")
        compress = self._brotli if "br" in accepted else self._gzip
        await compress(scope, receive, tagged)


class AnswerHeaders:
    """The headers every answer gets: the request's id and the API version, and the
    security headers (an answer's own Content-Security-Policy kept)."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        over_tls = scope.get("scheme") == "https"

        async def answered(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(raw=list(message.get("headers", [])))
                request_id = request_id_of(scope)
                if request_id:
                    headers["X-Request-ID"] = request_id
                headers["API-Version"] = API_VERSION
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("Referrer-Policy", "no-referrer")
                headers.setdefault("Content-Security-Policy", API_POLICY)
                if over_tls:
                    headers.setdefault("Strict-Transport-Security", HSTS)
                message = {**message, "headers": headers.raw}
            await send(message)

        await self._app(scope, receive, answered)


def wrap(app: ASGIApp, settings: Settings) -> ASGIApp:
    """`app` inside compression, CORS (when origins are allowed) and the answer headers."""
    wrapped: ASGIApp = Compression(app)
    if settings.cors_allowed_origins:
        wrapped = CORSMiddleware(
            wrapped,
            allow_origins=list(settings.cors_allowed_origins),
            allow_methods=["GET", "HEAD", "POST", "PATCH", "DELETE"],
            allow_headers=list(ALLOWED_HEADERS),
            expose_headers=list(EXPOSED_HEADERS),
            max_age=600,
        )
    return AnswerHeaders(wrapped)
