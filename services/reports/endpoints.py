"""Webhook endpoints: which URLs may receive deliveries, and one signed POST to one.

An endpoint must be https and resolve to public addresses only. The check runs when a
webhook is created or changed, and again at every send on the very addresses the
connection then uses, so a name that has come to resolve elsewhere (DNS rebinding) is
refused before any byte goes out. Redirects are never followed.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpcore
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from standardwebhooks.webhooks import Webhook as StandardWebhook

# `resolve(host, port)`: the addresses a connection to `host` may use.
Resolver = Callable[[str, int], Awaitable[list[str]]]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

RESPONSE_EXCERPT_BYTES = 1024
tracer = trace.get_tracer("upstream.reports.endpoints")
# Only the trace context goes to a receiver (W3C `traceparent`, `tracestate`), no baggage.
_TRACE_CONTEXT = TraceContextTextMapPropagator()
USER_AGENT = "Upstream-Webhooks/1"

# Ranges no delivery may reach beyond what `ipaddress` calls non-global: cloud metadata
# endpoints are named for the error, CGNAT is shared address space inside a carrier.
_METADATA = {
    ipaddress.ip_address("169.254.169.254"): "a cloud metadata address",
    ipaddress.ip_address("fd00:ec2::254"): "a cloud metadata address",
}
_CGNAT = ipaddress.ip_network("100.64.0.0/10")


class RefusedEndpointError(Exception):
    """A URL or address deliveries may not go to; the message says why."""


def address_problem(address: IPAddress, *, allow_loopback: bool) -> str | None:
    """Why deliveries may not go to `address` (None: they may)."""
    if isinstance(address, ipaddress.IPv6Address):
        # An IPv4 address written as IPv6 is judged as the IPv4 address it reaches.
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is not None:
            return address_problem(embedded, allow_loopback=allow_loopback)
    if address in _METADATA:
        return _METADATA[address]
    if address.is_loopback:
        return None if allow_loopback else "a loopback address"
    checks = (
        (address.is_unspecified, "an unspecified address"),
        (address.is_link_local, "a link-local address"),
        (address.is_multicast, "a multicast address"),
        (address.version == 4 and address in _CGNAT, "a carrier-grade NAT address"),
        (address.is_reserved, "a reserved address"),
        (address.is_private, "a private address"),
        (not address.is_global, "not a public address"),
    )
    return next((problem for refused, problem in checks if refused), None)


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def dns_resolver(overrides: Mapping[str, str] | Iterable[tuple[str, str]] = ()) -> Resolver:
    """The system's resolver, with `overrides` (name → address) answered first."""
    fixed = dict(overrides)

    async def resolve(host: str, port: int) -> list[str]:
        if host.lower() in fixed:
            return [fixed[host.lower()]]
        literal = _literal(host)
        if literal is not None:
            return [str(literal)]
        found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        return list(dict.fromkeys(str(info[4][0]) for info in found))

    return resolve


@dataclass(frozen=True)
class EndpointPolicy:
    """Which endpoints deliveries may go to."""

    resolve: Resolver
    allow_loopback: bool = False

    def check_url(self, url: str) -> tuple[str, int]:
        """The host and port of an acceptable URL; RefusedEndpointError else."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as error:
            raise RefusedEndpointError(f"is not a valid URL ({error})") from None
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise RefusedEndpointError("must be an https:// URL with a host")
        if parts.username is not None or parts.password is not None:
            raise RefusedEndpointError("must not carry a user name or password")
        if parts.scheme == "http" and not self.allow_loopback:
            raise RefusedEndpointError("must be an https:// URL")
        return parts.hostname, port or (443 if parts.scheme == "https" else 80)

    async def addresses(self, host: str, port: int, *, plain_http: bool = False) -> list[str]:
        """Every address `host` resolves to, if all are acceptable; RefusedEndpointError
        naming the first that is not, or saying the name does not resolve."""
        try:
            found = await self.resolve(host, port)
        except OSError as error:
            raise RefusedEndpointError(f"host {host!r} does not resolve ({error})") from None
        if not found:
            raise RefusedEndpointError(f"host {host!r} does not resolve")
        for text in found:
            try:
                address = ipaddress.ip_address(text.split("%", 1)[0])
            except ValueError:
                raise RefusedEndpointError(f"host {host!r} resolves to {text!r}") from None
            problem = address_problem(address, allow_loopback=self.allow_loopback)
            if problem is not None:
                found_as = (
                    f"{address} is"
                    if _literal(host) == address
                    else f"host {host!r} resolves to {address},"
                )
                raise RefusedEndpointError(
                    f"{found_as} {problem}; webhook URLs must reach public addresses only"
                )
            if plain_http and not address.is_loopback:
                raise RefusedEndpointError("must be an https:// URL (http:// only to loopback)")
        return found

    async def check(self, url: str) -> None:
        """Refuse (RefusedEndpointError) a URL deliveries may not go to, resolving it now."""
        host, port = self.check_url(url)
        await self.addresses(host, port, plain_http=url.lower().startswith("http:"))


class _CheckedNetwork(httpcore.AsyncNetworkBackend):
    """Connects only to addresses the policy accepts, resolving the name itself: the
    address checked is the address connected to. TLS still verifies the URL's host name."""

    def __init__(self, policy: EndpointPolicy) -> None:
        self._policy = policy
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self._policy.addresses(host, port)
        return await self._inner.connect_tcp(
            addresses[0], port, timeout, local_address, socket_options
        )

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise RefusedEndpointError("unix sockets are not webhook endpoints")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


@dataclass(frozen=True)
class AttemptResult:
    """What one POST got: the status (0 if no answer), how long it took, the first kilobyte
    of the answer, and what went wrong ('' for a 2xx answer)."""

    response_code: int
    latency_seconds: float
    response_body: str
    error: str

    @property
    def delivered(self) -> bool:
        return 200 <= self.response_code < 300


class WebhookSender:
    """Signed POSTs (Standard Webhooks) to endpoints the policy accepts, each within
    `timeout_seconds`, on a fresh connection, so every send resolves and checks again."""

    def __init__(self, policy: EndpointPolicy, timeout_seconds: float) -> None:
        self._policy = policy
        self._timeout = timeout_seconds
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl.create_default_context(),
            max_keepalive_connections=0,
            network_backend=_CheckedNetwork(policy),
        )

    async def close(self) -> None:
        await self._pool.aclose()

    async def send(
        self,
        url: str,
        secret: str,
        message_id: str,
        body: bytes,
        *,
        now: dt.datetime,
        previous_secret: str | None = None,
    ) -> AttemptResult:
        """POST `body` signed with `secret` (and `previous_secret`, while a rotation keeps it
        valid: a receiver holding either verifies)."""
        signature = " ".join(
            StandardWebhook(key).sign(message_id, now, body)
            for key in (secret, previous_secret)
            if key
        )
        signed = [
            (b"webhook-id", message_id.encode()),
            (b"webhook-timestamp", str(int(now.timestamp())).encode()),
            (b"webhook-signature", signature.encode()),
        ]
        return await self.post(url, body, signed)

    async def post(
        self, url: str, body: bytes, extra_headers: Sequence[tuple[bytes, bytes]] = ()
    ) -> AttemptResult:
        """POST the JSON `body` (with `extra_headers`) to `url` if the policy accepts it;
        what came back."""
        with tracer.start_as_current_span(
            "POST", kind=trace.SpanKind.CLIENT, attributes=_http_attributes(url)
        ) as span:
            result = await self._post(url, body, extra_headers)
            span.set_attribute("http.response.status_code", result.response_code)
            if result.error:
                error_type = str(result.response_code) if result.response_code else "connect"
                span.set_attribute("error.type", error_type)
                span.set_status(trace.StatusCode.ERROR, result.error)
        return result

    async def _post(
        self, url: str, body: bytes, extra_headers: Sequence[tuple[bytes, bytes]]
    ) -> AttemptResult:
        started = time.monotonic()
        code, excerpt = 0, b""
        try:
            # Checked here for the scheme's rules, and again by the connection itself.
            await self._policy.check(url)
            trace_context: dict[str, str] = {}
            _TRACE_CONTEXT.inject(trace_context)
            headers = [
                (b"Content-Type", b"application/json"),
                (b"User-Agent", USER_AGENT.encode()),
                *((name.encode(), value.encode()) for name, value in trace_context.items()),
                *extra_headers,
            ]
            limits = dict.fromkeys(("connect", "read", "write", "pool"), self._timeout)
            async with asyncio.timeout(self._timeout):
                async with self._pool.stream(
                    "POST", url, headers=headers, content=body, extensions={"timeout": limits}
                ) as response:
                    code = response.status
                    async for chunk in response.aiter_stream():
                        excerpt += chunk[: RESPONSE_EXCERPT_BYTES - len(excerpt)]
                        if len(excerpt) >= RESPONSE_EXCERPT_BYTES:
                            break
            error = "" if 200 <= code < 300 else _status_error(code, response.headers)
        except RefusedEndpointError as refused:
            error = f"refused: {refused}"
        except (TimeoutError, httpcore.TimeoutException):
            error = f"no answer within {self._timeout:g} s"
        except (httpcore.NetworkError, httpcore.ProtocolError, OSError) as failure:
            error = f"connection failed: {failure or type(failure).__name__}"
        return AttemptResult(
            code,
            time.monotonic() - started,
            excerpt.decode(errors="replace"),
            error,
        )


def _http_attributes(url: str) -> dict[str, str | int]:
    """The HTTP client span's attributes for a POST to `url`. Its path and query are left
    out of `url.full`: for Slack, Teams and many receivers they are the secret."""
    parts = urlsplit(url)
    try:
        given = parts.port
    except ValueError:  # refused by the policy before any connection
        given = None
    port = given if given is not None else (443 if parts.scheme == "https" else 80)
    hidden = "/REDACTED" if parts.path.strip("/") or parts.query else ""
    return {
        "http.request.method": "POST",
        "url.full": f"{parts.scheme}://{parts.hostname}:{port}{hidden}",
        "url.scheme": parts.scheme,
        "server.address": parts.hostname or "",
        "server.port": port,
    }


def _status_error(code: int, headers: list[tuple[bytes, bytes]]) -> str:
    if 300 <= code < 400:
        location = next(
            (
                value.decode(errors="replace")
                for name, value in headers
                if name.lower() == b"location"
            ),
            "",
        )
        return f"HTTP {code}: redirects are not followed (Location: {location[:200]})"
    return f"HTTP {code}"
