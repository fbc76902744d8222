"""What every HTTP answer of the gateway gets, whatever route made it: compression and CORS
(the request id, API version and security headers are gateway.edge's).

- brotli (brotli-asgi) when the client accepts it, else gzip (Starlette's), when the body is
  500 bytes or more, flushed chunk by chunk so a stream stays a stream; never a download
  (its length and SHA-256 are the file's) nor a 304. A compressed answer is another
  representation: its strong ETag gets `-br` or `-gzip`, which If-None-Match and If-Match
  read back (gateway.conditional).
- CORS for the origins `CORS_ALLOWED_ORIGINS` names (none by default): preflights answered,
  and the headers a web client reads (ETag, X-Request-ID, API-Version, Retry-After, the
  RateLimit ones, Content-Disposition) exposed.
"""

from __future__ import annotations

from collections.abc import Iterable

from brotli_asgi import BrotliMiddleware
from starlette.datastructures import MutableHeaders
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from runtime.settings import Settings

COMPRESS_FROM_BYTES = 500
# zlib's default level: most of the gain of 9 at a fraction of its CPU.
COMPRESS_LEVEL = 6
# Brotli's quality 4 compresses JSON smaller than gzip -6 and about as fast.
BROTLI_QUALITY = 4
# The ETag suffix of each encoding's copy of an answer.
ENCODING_ETAG_SUFFIXES = {"br": "-br", "gzip": "-gzip"}
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

        accepted = next(
            (value for name, value in scope["headers"] if name == b"accept-encoding"), b""
        )
        if b"br" in accepted:
            await self._brotli(scope, receive, tagged)
        elif b"gzip" in accepted:
            await self._gzip(scope, receive, tagged)
        else:
            # Sent as it is, with nothing to retag; it still says it could have been
            # compressed, so a cache keeps each client's copy apart.
            await self._plain(scope, receive, _varied(send))


def _varied(send: Send) -> Send:
    """`send` with `Vary: Accept-Encoding` on the answer's head."""

    async def varied(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": _with_vary(message.get("headers", ()))}
        await send(message)

    return varied


def _with_vary(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """`headers` saying the answer varies by Accept-Encoding too (one Vary field, added to
    what the first one said)."""
    kept, varies = [], None
    for name, value in headers:
        if name.lower() != b"vary":
            kept.append((name, value))
        elif varies is None:
            varies = value
    kept.append((b"vary", b"Accept-Encoding" if varies is None else varies + b", Accept-Encoding"))
    return kept


def wrap(app: ASGIApp, settings: Settings) -> ASGIApp:
    """`app` inside compression and CORS (when origins are allowed)."""
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
    return wrapped
