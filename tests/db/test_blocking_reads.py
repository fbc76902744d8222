"""`runtime.db.BlockingReads`: large reads fetched in worker threads on connections of their
own, against the session's PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy.exc import DataError, OperationalError

from runtime.db import BlockingReads
from runtime.schemas import libpq_url
from runtime.settings import Settings
from tests.conftest import PostgresUnderTest
from tests.system import base_env

SERVICE = "blocking-reads-test"
# A statement that keeps producing rows for far longer than any test waits.
ENDLESS = "SELECT g, pg_sleep(0.0001) FROM generate_series(1, 100000000) AS g"


@pytest.fixture
def reads(postgres: PostgresUnderTest) -> Iterator[BlockingReads]:
    settings = Settings.from_env(SERVICE, base_env(DATABASE_URL=postgres.url("ingest")))
    one = BlockingReads(settings, connections=1)
    try:
        yield one
    finally:
        one.close()


async def _all(reads: BlockingReads, statement: str, size: int) -> list[list[tuple[int, ...]]]:
    return [batch async for batch in reads.batches(statement, {}, size)]


def _active_statements(postgres: PostgresUnderTest) -> list[str]:
    """What the reads' connections are running now (they name themselves after the service)."""
    with psycopg.connect(libpq_url(postgres.admin_url)) as connection:
        rows = connection.execute(
            "SELECT query FROM pg_stat_activity WHERE application_name = %s AND state = 'active'",
            (f"upstream-{SERVICE}",),
        ).fetchall()
    return [query for (query,) in rows]


def test_rows_come_in_batches_of_the_size_asked_and_in_order(reads: BlockingReads) -> None:
    batches = asyncio.run(
        _all(reads, "SELECT g, g * 2 FROM generate_series(1, 2503) AS g ORDER BY g", 500)
    )
    assert [len(batch) for batch in batches] == [500, 500, 500, 500, 500, 3]
    assert [row for batch in batches for row in batch] == [(g, g * 2) for g in range(1, 2504)]


def test_an_empty_result_is_one_empty_batch(reads: BlockingReads) -> None:
    assert asyncio.run(_all(reads, "SELECT 1 WHERE false", 10)) == [[]]


def test_parameters_are_bound_not_spliced(reads: BlockingReads) -> None:
    async def read() -> list[tuple[str]]:
        statement = "SELECT %(name)s::text"
        return [
            row async for batch in reads.batches(statement, {"name": "o'brien"}, 5) for row in batch
        ]

    assert asyncio.run(read()) == [("o'brien",)]


def test_a_statement_that_fails_midway_raises_in_the_reader_after_the_rows_before(
    reads: BlockingReads,
) -> None:
    got: list[tuple[int, ...]] = []

    async def read() -> None:
        statement = "SELECT 1 / (5000 - g) FROM generate_series(1, 10000) AS g"
        async for batch in reads.batches(statement, {}, 1000):
            got.extend(batch)

    # Raised as the engine's statements raise it: SQLAlchemy's error, the driver's within.
    with pytest.raises(DataError) as raised:
        asyncio.run(read())
    assert isinstance(raised.value.orig, psycopg.errors.DivisionByZero)
    assert len(got) >= 1000
    # The one connection went back to the pool in working order.
    assert asyncio.run(_all(reads, "SELECT 42", 10)) == [[(42,)]]


def test_a_reader_that_stops_early_cancels_the_statement_and_frees_its_connection(
    reads: BlockingReads, postgres: PostgresUnderTest
) -> None:
    async def first_batch_only() -> list[tuple[int, ...]]:
        async for batch in reads.batches(ENDLESS, {}, 100):
            return batch
        return []

    assert len(asyncio.run(first_batch_only())) == 100
    # With one connection, the next read runs only once the first gave it back.
    assert asyncio.run(_all(reads, "SELECT 7", 10)) == [[(7,)]]
    assert not [query for query in _active_statements(postgres) if "generate_series" in query]


def test_a_cancelled_call_cancels_its_statement(
    reads: BlockingReads, postgres: PostgresUnderTest
) -> None:
    async def cancelled() -> None:
        async def read() -> None:
            async for _ in reads.batches(ENDLESS, {}, 100):
                await asyncio.sleep(0)

        task = asyncio.create_task(read())
        await asyncio.sleep(0.5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await _all(reads, "SELECT 8", 10) == [[(8,)]]

    asyncio.run(cancelled())
    assert not [query for query in _active_statements(postgres) if "generate_series" in query]


def test_a_connection_lost_midway_is_an_operational_error_and_the_next_read_gets_another(
    reads: BlockingReads, postgres: PostgresUnderTest
) -> None:
    async def read_while_terminated() -> None:
        async for _ in reads.batches(ENDLESS, {}, 100):
            with psycopg.connect(libpq_url(postgres.admin_url), autocommit=True) as admin:
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE application_name = %s",
                    (f"upstream-{SERVICE}",),
                )

    # What the services' error mapping makes UNAVAILABLE: the call made again succeeds.
    with pytest.raises(OperationalError):
        asyncio.run(read_while_terminated())
    assert asyncio.run(_all(reads, "SELECT 9", 10)) == [[(9,)]]
