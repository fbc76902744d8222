"""The service's database engine: async SQLAlchemy on psycopg 3, traced per statement."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import sqlalchemy as sa
from opentelemetry import baggage, metrics, trace
from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
from opentelemetry.semconv.trace import SpanAttributes
from opentelemetry.util.types import AttributeValue
from prometheus_client import Gauge
from sqlalchemy import event, exc, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from runtime import auth
from runtime.notified_cache import NotifiedCache
from runtime.settings import Settings
from runtime.telemetry import REQUEST_ID_BAGGAGE

_RETURNED = "upstream_returned_at"
db_pool_connections_in_use = Gauge(
    "db_pool_connections_in_use", "Database connections checked out of the pool."
)
db_pool_size = Gauge("db_pool_size", "Connections the pool keeps (DATABASE_POOL_SIZE).")


def create_engine(settings: Settings) -> AsyncEngine:
    """One engine per service process, connected as the service's own app role."""
    engine = create_async_engine(
        _url(settings), pool_size=settings.database_pool_size, **_engine_options(settings)
    )
    db_pool_size.set(settings.database_pool_size)
    _ping_when_idle(engine.sync_engine, settings.database_ping_after_idle_seconds)
    _tag_write_transactions(engine)
    _trace_statements(engine)
    return engine


def _url(settings: Settings) -> str:
    if not settings.database_url:
        raise RuntimeError(
            f"DATABASE_URL is not set for {settings.service}; `make run` sets it for local runs"
        )
    return settings.database_url.replace("postgresql://", "postgresql+psycopg://", 1)


def _engine_options(settings: Settings) -> dict[str, Any]:
    return {
        # An error's text never carries the statement's values (claim ids, payer names,
        # secrets): it reaches logs, and the outbox's last_error column.
        "hide_parameters": True,
        "connect_args": {"application_name": f"upstream-{settings.service}"},
    }


def _trace_statements(engine: AsyncEngine) -> None:
    """A CLIENT span for every statement: OpenTelemetry's SQLAlchemy instrumentation, its
    engine tracer alone. Its instrumentor also wraps `Engine.connect` in every engine of the
    process, making a span of each pool checkout: a tenth of a single-row read's CPU in
    drift, with nothing a trace reader needs (the pool's own metrics show waits)."""
    name = "opentelemetry.instrumentation.sqlalchemy"
    usage = metrics.get_meter(name).create_up_down_counter(
        "db.client.connections.usage", unit="connections"
    )
    EngineTracer(trace.get_tracer(name), engine.sync_engine, usage)


def _ping_when_idle(sync_engine: sa.Engine, idle_seconds: float) -> None:
    """SQLAlchemy's pre-ping, for connections idle longer than `idle_seconds` only (as
    HikariCP bypasses its check for connections used within 500 ms): a busy service saves a
    round trip on every call, and a connection PostgreSQL closed while it sat in the pool (a
    restart, a failover) is still replaced before anyone uses it."""
    dialect = sync_engine.dialect

    @event.listens_for(sync_engine, "checkin")
    def returned(_: Any, record: Any) -> None:
        record.info[_RETURNED] = time.monotonic()
        db_pool_connections_in_use.dec()

    @event.listens_for(sync_engine, "checkout")
    def taken(dbapi_connection: Any, record: Any, _: Any) -> None:
        at = record.info.get(_RETURNED)
        if at is not None and time.monotonic() - at >= idle_seconds:
            try:
                dialect.do_ping(dbapi_connection)
            except Exception as error:
                dbapi_error = dialect.loaded_dbapi.Error
                if isinstance(error, dbapi_error) and dialect.is_disconnect(
                    error, dbapi_connection, None
                ):
                    # The pool opens another connection, and drops the others of its age.
                    raise exc.InvalidatePoolError() from error
                raise
        # Counted once handed out: a connection the ping refused is never checked in.
        db_pool_connections_in_use.inc()


def for_reads(engine: AsyncEngine) -> AsyncEngine:
    """`engine` for reads of one statement: each runs on its own (autocommit), so a read is
    one round trip to PostgreSQL instead of BEGIN, the statement and ROLLBACK. The pool is
    the same; a connection goes back to it in its usual mode."""
    return engine.execution_options(isolation_level="AUTOCOMMIT")


def row_by_key(table: sa.Table, *key: str) -> sa.Select[Any]:
    """One row of `table` by the values of its `key` columns, given when it is executed
    under their names. Built once at import by a hot read: SQLAlchemy then compiles and
    keys it once, where a statement built per call costs more than the query."""
    return sa.select(table).where(*(table.c[name] == sa.bindparam(name) for name in key))


async def kept_row(
    cache: NotifiedCache[Any],
    engine: AsyncEngine,
    statement: sa.Select[Any],
    customer: str,
    key: str,
    value: Any,
) -> Any:
    """The row of `customer` whose `key` is `value`, by a `row_by_key` statement on
    `customer_id` and `key` (None when there is none); kept in `cache` until the customer's
    data changes."""

    async def read() -> Any:
        async with engine.connect() as connection:
            found = await connection.execute(statement, {"customer_id": customer, key: value})
            return found.first()

    return await cache.get(customer, value, read)


async def ping(engine: AsyncEngine) -> None:
    """Fail fast at start-up when the database is unreachable or the role cannot log in."""
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))


def _tag_write_transactions(engine: AsyncEngine) -> None:
    """When a transaction of a call begins, tell PostgreSQL who is calling and in which
    request (transaction-local settings, gone at commit), for the audit triggers
    (runtime/audit.py). Reads in autocommit mode change nothing and are left alone."""

    @event.listens_for(engine.sync_engine, "begin")
    def tag(connection: Any) -> None:
        if connection.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
            return
        identity = auth.current_identity.get()
        request_id = baggage.get_baggage(REQUEST_ID_BAGGAGE)
        if identity is None and request_id is None:
            return
        connection.exec_driver_sql(
            "SELECT set_config('upstream.actor', %(actor)s, true),"
            " set_config('upstream.actor_role', %(role)s, true),"
            " set_config('upstream.request_id', %(request)s, true)",
            {
                "actor": identity.subject if identity else "",
                "role": identity.role.value if identity else "",
                "request": str(request_id or ""),
            },
        )


# Batches a blocking read fetches ahead of the one its reader works on.
_BATCHES_AHEAD = 2
_END = object()
_tracer = trace.get_tracer("upstream.db")


class BlockingReads:
    """Reads of many rows fetched by worker threads on blocking connections of their own
    (`connections` of them, opened when first used), handed to the event loop in batches.
    psycopg's async wait goes through the event loop each time data arrives, about every
    32 KB libpq reads: a drift run's 100 MB of packed months cost ingest 0.15 s of CPU in
    those round trips, where the blocking wait polls in C."""

    def __init__(self, settings: Settings, connections: int) -> None:
        self._engine = sa.create_engine(
            _url(settings), pool_size=connections, max_overflow=0, **_engine_options(settings)
        )
        db_pool_size.inc(connections)
        _ping_when_idle(self._engine, settings.database_ping_after_idle_seconds)
        self._threads = ThreadPoolExecutor(connections, thread_name_prefix="db-reads")
        url = self._engine.url
        self._span_attributes: dict[str, AttributeValue] = {
            SpanAttributes.DB_SYSTEM: "postgresql",
            SpanAttributes.DB_NAME: url.database or "",
            SpanAttributes.DB_USER: url.username or "",
            SpanAttributes.NET_PEER_NAME: url.host or "",
            SpanAttributes.NET_PEER_PORT: url.port or 5432,
        }
        self._span_name = f"SELECT {url.database}"

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """For the life of a server: its threads and connections go at the end."""
        try:
            yield
        finally:
            await asyncio.to_thread(self.close)

    def close(self) -> None:
        self._threads.shutdown()
        self._engine.dispose()

    async def batches(
        self, statement: str, parameters: Mapping[str, Any], size: int
    ) -> AsyncIterator[list[tuple[Any, ...]]]:
        """The rows of `statement` (a SELECT; binary results) in lists of `size` (the last
        one shorter), each fetched while the one before is worked on. PostgreSQL sends
        them as they come (`size` rows a message), all from one snapshot. Leaving early
        (a break, a cancelled call) cancels the statement."""
        loop = asyncio.get_running_loop()
        handed: asyncio.Queue[Any] = asyncio.Queue()
        room = threading.Semaphore(_BATCHES_AHEAD)
        gone = threading.Event()

        def hand(item: Any) -> bool:
            room.acquire()
            if gone.is_set():
                return False
            loop.call_soon_threadsafe(handed.put_nowait, item)
            return True

        def fetch() -> None:
            try:
                with _tracer.start_as_current_span(
                    self._span_name,
                    kind=trace.SpanKind.CLIENT,
                    attributes={**self._span_attributes, SpanAttributes.DB_STATEMENT: statement},
                ):
                    self._fetch(statement, parameters, size, hand)
            except Exception as error:
                hand(error)

        # In the caller's trace: the span of the fetch is a child of the call's.
        context = contextvars.copy_context()
        loop.run_in_executor(self._threads, context.run, fetch)
        try:
            while (item := await handed.get()) is not _END:
                room.release()
                if isinstance(item, psycopg.Error):
                    # As the engine's statements raise it (a lost connection is UNAVAILABLE).
                    raise sa.exc.DBAPIError.instance(
                        statement, dict(parameters), item, psycopg.Error, hide_parameters=True
                    ) from item
                if isinstance(item, Exception):
                    raise item
                yield item
        finally:
            gone.set()
            room.release()

    def _fetch(
        self,
        statement: str,
        parameters: Mapping[str, Any],
        size: int,
        hand: Callable[[Any], bool],
    ) -> None:
        connection = self._engine.raw_connection()
        try:
            cursor = connection.driver_connection.cursor(binary=True)  # type: ignore[union-attr]
            # Closed on the way out, so that psycopg cancels a statement left unread before
            # the connection goes back to the pool.
            with contextlib.closing(cursor.stream(statement, parameters, size=size)) as rows:
                batch = []
                for row in rows:
                    batch.append(row)
                    if len(batch) == size:
                        if not hand(batch):
                            return
                        batch = []
                if hand(batch):
                    hand(_END)
        finally:
            connection.close()
