"""`python -m gateway`: the REST gateway on uvicorn, with `/metrics` on its own port when
`GATEWAY_METRICS_PORT` is set."""

from __future__ import annotations

import logging
import socket

import uvicorn

from gateway.app import create_app
from gateway.http11 import ReadLimits, protocol_with
from runtime.memory import keep_freed_memory
from runtime.settings import Settings
from runtime.telemetry import setup_error_reporting, setup_logging, setup_tracing, shutdown_tracing

logger = logging.getLogger("upstream.gateway")


def main() -> None:
    keep_freed_memory(one_heap=False)
    settings = Settings.from_env("gateway")
    setup_logging("gateway", settings.log_level)
    setup_tracing("gateway")
    setup_error_reporting("gateway")
    limits = ReadLimits(
        header_timeout_seconds=settings.gateway_header_timeout_seconds,
        body_timeout_seconds=settings.gateway_body_timeout_seconds,
    )
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.gateway_port,
        http=protocol_with(limits),
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=int(settings.shutdown_grace_seconds),
    )
    # One server on both ports, so both drain together; the app tells them apart.
    sockets = [config.bind_socket()]
    if settings.gateway_metrics_port is not None:
        family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
        address = (settings.host, settings.gateway_metrics_port)
        sockets.append(socket.create_server(address, family=family))
        logger.info("metrics on http://%s:%d/metrics", settings.host, settings.gateway_metrics_port)
    try:
        uvicorn.Server(config).run(sockets=sockets)
    finally:
        shutdown_tracing()


if __name__ == "__main__":
    main()
