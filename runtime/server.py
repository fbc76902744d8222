"""The `grpc.aio` server every service runs, the same way.

Health (a real `HealthServicer`), reflection (unless `GRPC_REFLECTION` turns it off),
keepalive and max-connection-age (so clients rebalance behind Kubernetes), the interceptors,
Prometheus metrics, and graceful shutdown:
SIGTERM → health NOT_SERVING → in-flight calls finish within the grace period → exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import start_http_server
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from runtime import auth
from runtime.db import create_engine, ping
from runtime.interceptors import (
    ErrorInterceptor,
    IdentityInterceptor,
    InFlight,
    ObservationInterceptor,
    ValidationInterceptor,
)
from runtime.memory import keep_freed_memory, return_freed_memory
from runtime.settings import Settings
from runtime.telemetry import setup_error_reporting, setup_logging, setup_tracing, shutdown_tracing

logger = logging.getLogger("upstream.server")
# The health service name a liveness probe asks for: SERVING for as long as the process runs,
# while "" and the service's own name (readiness) follow the database.
LIVENESS = "liveness"
# How often the database is checked (a check may take twice that), and how many checks in a
# row must fail before the service answers NOT_SERVING.
DATABASE_CHECK_SECONDS = 2.0
DATABASE_DOWN_AFTER_CHECKS = 2
# Between NOT_SERVING and refusing calls: clients' channels watch health (runtime.clients)
# and move new calls to other replicas within this.
DRAIN_NOTICE_SECONDS = 1.0
# How long a call gRPC accepted may take to reach the interceptors (and be counted in flight).
ACCEPTED_CALL_ARRIVES_SECONDS = 0.25

# The shortest wait between rounds of background work.
MIN_WAIT_SECONDS = 0.25


@dataclass
class ServiceDefinition:
    """What a service contributes to the common server."""

    full_name: str  # e.g. "upstream.ingest.v1.IngestService"
    servicer: Any
    add_to_server: Callable[[Any, grpc.aio.Server], None]
    # Methods only Upstream's own services may call (full gRPC method paths).
    service_only_methods: frozenset[str] = frozenset()
    # Background work (outbox relays, schedulers) that runs while the server serves.
    background: list[Callable[[], AbstractAsyncContextManager[None]]] = field(default_factory=list)


def server_options(settings: Settings) -> list[tuple[str, int]]:
    return [
        ("grpc.keepalive_time_ms", settings.keepalive_time_seconds * 1000),
        ("grpc.keepalive_timeout_ms", 20_000),
        ("grpc.http2.min_ping_interval_without_data_ms", 30_000),
        ("grpc.max_connection_age_ms", settings.max_connection_age_seconds * 1000),
        # Streams already open (an upload of millions of rows) may finish on an aged
        # connection; only new calls move to a fresh one.
        ("grpc.max_connection_age_grace_ms", int(settings.stream_timeout_seconds * 1000)),
        ("grpc.max_receive_message_length", 32 * 1024 * 1024),
    ]


async def serve(
    settings: Settings, definition: ServiceDefinition, database: AsyncEngine | None = None
) -> None:
    """Serve until SIGTERM or SIGINT, then drain and return. With `database`, health follows
    it (see watch_database)."""
    setup_logging(settings.service, settings.log_level)
    setup_tracing(settings.service)
    setup_error_reporting(settings.service)
    auth.require_service_signing(settings)
    verifier = auth.TokenVerifier(settings)
    in_flight = InFlight()
    server = grpc.aio.server(
        interceptors=[
            ObservationInterceptor(
                in_flight,
                sample_rate=settings.rpc_log_sample_rate,
                slow_ms=settings.rpc_log_slow_ms,
            ),
            ErrorInterceptor(),
            IdentityInterceptor(verifier, definition.service_only_methods),
            ValidationInterceptor(),
        ],
        options=server_options(settings),
    )
    definition.add_to_server(definition.servicer, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    if settings.grpc_reflection:
        reflection.enable_server_reflection(
            (definition.full_name, health.SERVICE_NAME, reflection.SERVICE_NAME), server
        )
    address = f"{settings.host}:{settings.grpc_port}"
    if server.add_insecure_port(address) == 0:
        raise RuntimeError(f"cannot listen on {address}")
    start_http_server(settings.metrics_port, addr=settings.host)
    await server.start()

    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)

    async with contextlib.AsyncExitStack() as stack:
        for background in definition.background:
            await stack.enter_async_context(background())
        freeze_startup_heap()
        for name in ("", definition.full_name, LIVENESS):
            await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
        if database is not None:
            await stack.enter_async_context(
                running_task(
                    "database health",
                    lambda: watch_database(
                        database,
                        health_servicer,
                        ("", definition.full_name),
                        DATABASE_CHECK_SECONDS,
                    ),
                )
            )
        logger.info("serving", extra={"address": address, "grpc_service": definition.full_name})
        await stopping.wait()
        logger.info("shutting down", extra={"grace_seconds": settings.shutdown_grace_seconds})
        # NOT_SERVING first, so clients watching health and probes stop sending new calls;
        # calls keep being served while that news travels.
        await health_servicer.enter_graceful_shutdown()
        await asyncio.sleep(DRAIN_NOTICE_SECONDS)
        # Refuse new calls at once, let API calls in flight finish within the grace period,
        # then end what is left (health watch streams, calls past their grace).
        stopping_task = asyncio.ensure_future(server.stop(settings.shutdown_grace_seconds))
        try:
            async with asyncio.timeout(settings.shutdown_grace_seconds):
                await in_flight.wait_idle(quiet_seconds=ACCEPTED_CALL_ARRIVES_SECONDS)
        except TimeoutError:
            logger.warning("grace period over; cancelling calls still in flight")
        await server.stop(None)
        await stopping_task
    logger.info("stopped")
    shutdown_tracing()


async def work_forever(
    name: str,
    step: Callable[[], Awaitable[bool]],
    wake_up: asyncio.Event,
    poll_seconds: float,
    *,
    next_due: Callable[[], Awaitable[float]] | None = None,
) -> None:
    """Background work queued in the database: run `step` while it finds work, then wait for
    a wake-up (work queued by this process), the poll interval (work from elsewhere), or the
    seconds `next_due` says the next queued work is due in (at least MIN_WAIT_SECONDS: work
    another replica holds is due again within milliseconds, and is no reason to spin)."""
    while True:
        wake_up.clear()
        wait = poll_seconds
        try:
            while await step():
                pass
            if next_due is not None:
                wait = min(wait, await next_due())
        except Exception:
            logger.exception("%s failed; retrying", name)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake_up.wait(), max(wait, MIN_WAIT_SECONDS))


async def watch_database(
    engine: AsyncEngine, health_servicer: Any, names: tuple[str, ...], every: float
) -> None:
    """NOT_SERVING while PostgreSQL does not answer (a restart, a failover, a network cut), so
    readiness probes and clients send calls elsewhere; SERVING again once it answers. The
    process keeps running: nothing needs restarting when the database is back.

    Each check opens a connection of its own, outside the pool: a pool busy with calls is
    load, not an outage. DATABASE_DOWN_AFTER_CHECKS checks in a row must fail, so one slow
    moment on a loaded machine does not take a replica out."""
    checker = create_async_engine(engine.url, poolclass=NullPool)
    serving = True
    failures = 0
    try:
        while True:
            await asyncio.sleep(every)
            try:
                async with asyncio.timeout(every * 2):
                    await ping(checker)
                failures = 0
            except (DBAPIError, OSError, TimeoutError) as error:
                failures += 1
                reason = type(error).__name__
            reachable = failures < DATABASE_DOWN_AFTER_CHECKS
            if reachable == serving:
                continue
            serving = reachable
            status = (
                health_pb2.HealthCheckResponse.SERVING
                if serving
                else health_pb2.HealthCheckResponse.NOT_SERVING
            )
            for name in names:
                await health_servicer.set(name, status)
            if serving:
                logger.info("database reachable again: serving")
            else:
                logger.warning("database unreachable: not serving", extra={"error": reason})
    finally:
        await checker.dispose()


@contextlib.asynccontextmanager
async def running_task(name: str, work: Callable[[], Any]) -> AsyncIterator[None]:
    """Runs `work()` as a task for the life of the server; cancels it on the way out."""
    task = asyncio.create_task(work(), name=name)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def freeze_startup_heap() -> None:
    """Move every object made while starting (modules, descriptors, compiled statements,
    caches) out of the cyclic collector's sight: a full collection then looks at what serving
    made since, not at the whole heap. Without it, each full collection of a serving process
    stopped it for 30–90 ms (the gateway under `wrk`: one every few seconds), long enough to
    be most of a route's p99. Called once, when the process is built and about to serve."""
    gc.collect()
    gc.freeze()


def run(
    service: str,
    build: Callable[[Settings, AsyncEngine], ServiceDefinition],
    *,
    bursty: bool = False,
) -> None:
    """The entry point of every service: settings, database engine, then serve until told
    to stop. `build` makes the service's servicer from them. A `bursty` service's work comes
    seldom and in bursts: it returns the memory it frees rather than keep it
    (`runtime.memory`)."""
    if bursty:
        return_freed_memory()
    else:
        keep_freed_memory()
    settings = Settings.from_env(service)

    async def main() -> None:
        engine = create_engine(settings)
        try:
            await ping(engine)
            await serve(settings, build(settings, engine), engine)
        finally:
            await engine.dispose()

    asyncio.run(main())
