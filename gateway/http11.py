"""HTTP/1.1 as the gateway serves it: uvicorn's httptools protocol (llhttp, the parser of
Node.js) with the read limits a public server needs and uvicorn lacks.

- The request head (request line and headers) must arrive whole within the header timeout
  of its first byte, or of the connection's opening: a client trickling its headers gets 408,
  as with nginx's `client_header_timeout`.
- A request body may pause at most the body timeout between reads, and after its first
  body timeout must keep up an average of `min_body_bytes_per_second` (Apache
  mod_reqtimeout's `MinRate`), so an upload of any size that keeps arriving goes on while a
  body trickled a byte at a time does not. Time the gateway itself stops reading (its
  backend is slower, or the client awaits `100 Continue`) never counts. Past either: 408.
- A request target over `max_target_bytes` is 414, header fields over `max_header_bytes` 431.

A refused connection answers, half-closes, then reads and drops what the client still sends
for a moment before closing, so that the client reads the answer instead of a reset.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, ClassVar, cast

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from gateway.edge import new_request_id
from gateway.problems import API_VERSION, PROBLEM_JSON, http_problem

logger = logging.getLogger("upstream.gateway")

# How long a refused connection drains what the client still sends before it is closed.
LINGER_SECONDS = 2.0


@dataclass(frozen=True)
class ReadLimits:
    """How long and how large a request's parts may be, as the module docstring says."""

    header_timeout_seconds: float = 10.0
    body_timeout_seconds: float = 10.0
    min_body_bytes_per_second: int = 500
    max_target_bytes: int = 8 * 1024
    max_header_bytes: int = 16 * 1024

    @property
    def max_head_bytes(self) -> int:
        """How much of an unfinished head the parser may hold (it keeps a header field until
        its end arrives): more than the checks of the target and fields let by, so they
        answer first with the precise status."""
        return self.max_target_bytes + self.max_header_bytes + 1024


class LimitedProtocol(HttpToolsProtocol):
    """One HTTP/1.1 connection, held to `limits` (set by `protocol_with`)."""

    limits: ClassVar[ReadLimits] = ReadLimits()

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._read_timer: asyncio.TimerHandle | None = None
        self._reading_body = False
        self._last_read = 0.0
        # While a body is read: when it is too slow unless more arrives.
        self._body_deadline = 0.0
        self._refused = False
        # Where the parser is: in a request's head (its first byte is in, its end is not),
        # in a request (head or body); how much of an unfinished head has arrived, and the
        # size of its header fields parsed so far.
        self._in_head = False
        self._in_request = False
        self._head_bytes = 0
        self._field_bytes = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # The listening sockets are bound beforehand (two ports, one server), and asyncio
        # sets TCP_NODELAY only on sockets it knows as TCP by their protocol number. Without
        # it, an answer's head and body (two writes) wait out the client's delayed ACK:
        # 40 ms a request.
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        self._last_read = self.loop.time()
        if self._reading_body:
            self._body_deadline += len(data) / self.limits.min_body_bytes_per_second
        if self._read_timer is None and not self._in_request:
            # The first bytes of another request on a kept-alive connection.
            self._await_head()
        was_in_head = self._in_head
        super().data_received(data)
        if self._refused:
            return
        if was_in_head and self._in_head:
            # All of it is head, which the parser holds until a header field's end arrives.
            self._head_bytes += len(data)
            if self._head_bytes > self.limits.max_head_bytes:
                self._refuse_header_fields()
                return
        self._follow_request()

    # The parser's callbacks, ignored once the connection is refused.
    def on_message_begin(self) -> None:
        if self._refused:
            return
        super().on_message_begin()
        self._in_head = self._in_request = True
        self._head_bytes = self._field_bytes = 0

    def on_url(self, url: bytes) -> None:
        if self._refused:
            return
        super().on_url(url)
        limit = self.limits.max_target_bytes
        if len(self.url) > limit:
            self._refuse(
                HTTPStatus.REQUEST_URI_TOO_LONG,
                f"the request target (path and query) is longer than {limit} bytes",
            )

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._refused:
            return
        super().on_header(name, value)
        self._field_bytes += len(name) + len(value) + 4  # ": " and the line end
        if self._field_bytes > self.limits.max_header_bytes:
            self._refuse_header_fields()

    def on_headers_complete(self) -> None:
        if self._refused:
            return
        self._in_head = False
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._refused:
            return
        self._in_request = False
        super().on_message_complete()

    def send_400_response(self, msg: str) -> None:
        if not self._refused:
            self._refuse(HTTPStatus.BAD_REQUEST, msg)

    def shutdown(self) -> None:
        if self._refused:
            self.transport.close()
        else:
            super().shutdown()

    def _refuse_header_fields(self) -> None:
        limit = self.limits.max_header_bytes
        self._refuse(
            HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
            f"the request headers are larger than {limit} bytes",
        )

    def _follow_request(self) -> None:
        """Time what the client is sending now: a head, a body, or nothing."""
        if self._in_head:
            if self._read_timer is None:
                self._await_head()  # a pipelined request whose head is not all here
        elif self._in_request:
            if not self._reading_body:
                timeout = self.limits.body_timeout_seconds
                self._start_timer(timeout, self._body_timed_out)
                self._reading_body = True
                self._body_deadline = self.loop.time() + timeout
        else:
            self._stop_timer()

    def _await_head(self) -> None:
        self._start_timer(self.limits.header_timeout_seconds, self._head_timed_out)
        self._reading_body = False

    def _head_timed_out(self) -> None:
        self._read_timer = None
        if self._in_head:
            timeout = self.limits.header_timeout_seconds
            self._refuse(
                HTTPStatus.REQUEST_TIMEOUT,
                f"the request headers did not arrive within {timeout:g} s",
            )
        elif not self._in_request:
            # A connection that never began a request: nothing to answer.
            self.transport.close()

    def _body_timed_out(self) -> None:
        self._read_timer = None
        if not self._in_request or self._in_head:
            return
        limits = self.limits
        timeout = limits.body_timeout_seconds
        now = self.loop.time()
        cycle = self.cycle
        if self.flow.read_paused or (cycle is not None and cycle.waiting_for_100_continue):
            # The gateway is not reading: the client is neither idle nor slow.
            self._last_read = now
            self._body_deadline = max(self._body_deadline, now + timeout)
        deadline = min(self._last_read + timeout, self._body_deadline)
        if now < deadline:
            self._start_timer(deadline - now, self._body_timed_out)
        elif now - self._last_read >= timeout:
            self._refuse(
                HTTPStatus.REQUEST_TIMEOUT, f"the request body paused for more than {timeout:g} s"
            )
        else:
            self._refuse(
                HTTPStatus.REQUEST_TIMEOUT,
                f"the request body arrived slower than {limits.min_body_bytes_per_second}"
                " bytes a second",
            )

    def _refuse(self, status: HTTPStatus, message: str) -> None:
        """Answer `status` (unless a response has begun), stop serving the request in
        flight, and close after a lingering drain."""
        self._refused = True
        reading_body = self._reading_body
        self._stop_timer()
        logger.info("refused a request from %s: %d %s", self.client, status.value, message)
        cycle = self.cycle
        # The request being received, if it has got as far as the application; a body can
        # still be arriving after its response was sent.
        if cycle is not None and (reading_body or not cycle.response_complete):
            # The application's receive() now says the client is gone; its send() is dropped.
            cycle.disconnected = True
            cycle.message_event.set()
            if cycle.response_started:
                self.transport.close()
                return
        # Refused before the application saw it: the request gets its id here.
        request_id = new_request_id()
        problem = {**http_problem(status, message), "request_id": request_id}
        body = json.dumps(problem, separators=(",", ":")).encode()
        head = (
            f"HTTP/1.1 {status.value} {status.phrase}\r\n"
            f"content-type: {PROBLEM_JSON}\r\n"
            f"x-request-id: {request_id}\r\n"
            f"api-version: {API_VERSION}\r\n"
            f"content-length: {len(body)}\r\n"
            "connection: close\r\n\r\n"
        ).encode("ascii")
        self.transport.write(head + body)
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.flow.resume_reading()
        self._read_timer = self.loop.call_later(LINGER_SECONDS, self.transport.close)

    def _start_timer(self, seconds: float, expired: Callable[[], None]) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
        self._read_timer = self.loop.call_later(seconds, expired)

    def _stop_timer(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None
        self._reading_body = False


def protocol_with(limits: ReadLimits) -> type[LimitedProtocol]:
    """The protocol class for uvicorn's `http=`, holding every connection to `limits`."""
    return cast(
        type[LimitedProtocol], type("LimitedProtocol", (LimitedProtocol,), {"limits": limits})
    )
