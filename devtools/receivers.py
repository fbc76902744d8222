"""Local receivers for what Upstream sends: a webhook receiver (HTTP on 127.0.0.1:9009) and
an email catcher (SMTP on 127.0.0.1:1025), printing each delivery and message as it comes.
`make receivers` starts both; `make run` points the demo's webhook and alert policy at them.
"""

from __future__ import annotations

import argparse
import contextlib
import email
import email.policy
import json
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

from aiosmtpd.controller import Controller

WEBHOOK_PORT = 9009
SMTP_PORT = 1025


class _Hooks(BaseHTTPRequestHandler):
    seen: ClassVar[set[str]] = set()
    lock = threading.Lock()

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        message_id = self.headers.get("webhook-id", "")
        with self.lock:
            repeated = message_id in self.seen
            self.seen.add(message_id)
        try:
            payload = json.loads(body)
        except ValueError:
            payload = {}
        data = payload.get("data", {})
        what = data.get("summary") or data.get("name") or ""
        note = " (again: already received)" if repeated else ""
        print(
            f"webhook  {payload.get('type', '?')}  {message_id}{note}\n         {what}", flush=True
        )
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Mail:
    async def handle_DATA(  # noqa: N802 (aiosmtpd's hook name)
        self, server: Any, session: Any, envelope: Any
    ) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        print(
            f"email    to {', '.join(envelope.rcpt_tos)}: {message['subject']}",
            flush=True,
        )
        return "250 OK"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--webhook-port", type=int, default=WEBHOOK_PORT)
    parser.add_argument("--smtp-port", type=int, default=SMTP_PORT)
    args = parser.parse_args()
    hooks = ThreadingHTTPServer(("127.0.0.1", args.webhook_port), _Hooks)
    mail = Controller(_Mail(), hostname="127.0.0.1", port=args.smtp_port)
    mail.start()
    threading.Thread(target=hooks.serve_forever, daemon=True).start()
    print(
        f"webhooks  http://127.0.0.1:{args.webhook_port}/hooks\n"
        f"email     smtp://127.0.0.1:{args.smtp_port}\nCtrl-C stops both.",
        flush=True,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait()
    hooks.shutdown()
    mail.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
