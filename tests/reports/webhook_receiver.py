"""A real webhook receiver for tests: an HTTP server on 127.0.0.1 in a thread, which keeps
every request it is sent and answers as the test says."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook as StandardWebhook


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def verified(self, secret: str) -> Any:
        """The JSON payload, if its Standard Webhooks signature verifies under `secret`."""
        return StandardWebhook(secret).verify(self.body, self.headers)


# (status, body, extra headers) for a request.
Answer = Callable[[Received], tuple[int, bytes, dict[str, str]]]


def ok(_: Received) -> tuple[int, bytes, dict[str, str]]:
    return 200, b"thanks", {}


@dataclass
class Receiver:
    answer: Answer = ok
    requests: list[Received] = field(default_factory=list)
    connections: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    port: int = 0

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def received(self) -> list[Received]:
        with self.lock:
            return list(self.requests)

    def message_ids(self) -> list[str]:
        return [r.headers["webhook-id"] for r in self.received()]


@contextmanager
def receiving(receiver: Receiver | None = None, *, port: int = 0) -> Iterator[Receiver]:
    """Serve `receiver` on 127.0.0.1 (`port`, or a free one) until the block ends."""
    receiver = receiver or Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            request = Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            with receiver.lock:
                receiver.requests.append(request)
            status, content, headers = receiver.answer(request)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        allow_reuse_address = True
        daemon_threads = True

        def process_request(self, request: Any, client_address: Any) -> None:
            with receiver.lock:
                receiver.connections += 1
            super().process_request(request, client_address)

    server = Server(("127.0.0.1", port), Handler)
    receiver.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
