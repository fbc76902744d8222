"""`python -m gateway`: the REST gateway on uvicorn."""

from __future__ import annotations

import uvicorn

from gateway.app import create_app
from runtime.settings import Settings
from runtime.telemetry import setup_logging, setup_tracing, shutdown_tracing


def main() -> None:
    settings = Settings.from_env("gateway")
    setup_logging("gateway", settings.log_level)
    setup_tracing("gateway")
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.gateway_port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=int(settings.shutdown_grace_seconds),
    )
    try:
        uvicorn.Server(config).run()
    finally:
        shutdown_tracing()


if __name__ == "__main__":
    main()
