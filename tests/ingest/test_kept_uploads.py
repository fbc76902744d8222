"""Stored uploads and data states kept in memory by each ingest process between reads
(runtime/notified_cache.py), two of them over one real PostgreSQL as two replicas would be:
a deletion through one is seen by the other as soon as it commits, and an upload not there
yet is looked for again on the next read."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager

import psycopg
import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from runtime.notified_cache import ChangeListener, cache_reads_total
from runtime.ordering import parse_order_by
from runtime.schemas import libpq_url
from services.ingest.server import UPLOAD_ORDERS
from services.ingest.store import IngestStore
from tests.conftest import PostgresUnderTest, own_database


@pytest.fixture(scope="module")
def database(postgres: PostgresUnderTest) -> Iterator[PostgresUnderTest]:
    with own_database(postgres, ("ingest",)) as database:
        yield database


@asynccontextmanager
async def replica(database: PostgresUnderTest) -> AsyncIterator[IngestStore]:
    """One ingest process's store, its kept reads following the changes."""
    url = database.url("ingest")
    engine = create_async_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    store = IngestStore(engine)
    listener = ChangeListener(url, (store.upload_reads,), "upstream-ingest-listener")
    listening = asyncio.create_task(listener.listen_forever())
    try:
        await asyncio.wait_for(listener.listening_now.wait(), 10)
        yield store
    finally:
        listening.cancel()
        await asyncio.gather(listening, return_exceptions=True)
        await engine.dispose()


def _insert_upload(database: PostgresUnderTest, customer: str, upload_id: str = "") -> str:
    """A stored upload of `customer`, written as an upload's commit leaves it."""
    upload_id = upload_id or f"u_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(libpq_url(database.admin_url), autocommit=True) as admin:
        admin.execute(
            "INSERT INTO ingest.uploads (customer_id, upload_id, state, format, mode, file_name,"
            " size_bytes, creator, rows_read, rows_accepted, claims_accepted, rows_rejected,"
            " rows_updated, payers, warnings, create_time, finish_time) VALUES (%s, %s,"
            " 'SUCCEEDED', 'CSV', 'BEST_EFFORT', 'claims.csv', 100, 'test', 2, 2, 2, 0, 0,"
            " '{}', '[]', now(), now())",
            (customer, upload_id),
        )
    return upload_id


def _from_memory() -> float:
    return cache_reads_total.labels("ingest_uploads", "memory")._value.get()


async def _eventually(check: Callable[[], Awaitable[bool]], seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        assert time.monotonic() < deadline, "not within the time allowed"
        await asyncio.sleep(0.02)


async def test_a_deletion_through_one_replica_is_seen_by_the_other(
    database: PostgresUnderTest,
) -> None:
    customer = "kept" + uuid.uuid4().hex[:8]
    upload_id = _insert_upload(database, customer)
    order = parse_order_by("", UPLOAD_ORDERS, "create_time desc")
    async with replica(database) as one, replica(database) as other:

        async def listed(store: IngestStore) -> list[str]:
            return [
                row.upload_id for row in await store.list_uploads(customer, "", order, 20, None)
            ]

        assert await listed(other) == [upload_id]
        assert (await other.get_upload(customer, upload_id)) is not None
        version = (await other.data_state(customer)).version
        before = _from_memory()
        assert await listed(other) == [upload_id]  # kept
        assert (await other.get_upload(customer, upload_id)) is not None
        assert _from_memory() == before + 2
        assert (await other.data_state(customer)).version == version

        assert await one.delete_upload(customer, upload_id)
        assert await one.get_upload(customer, upload_id) is None  # at once where deleted

        async def other_sees_it_gone() -> bool:
            return await other.get_upload(customer, upload_id) is None

        await _eventually(other_sees_it_gone)
        assert await listed(other) == []
        # The data state the deletion moved on, as drift asks for it to know its summaries
        # are stale.
        assert (await one.data_state(customer)).version == version + 1
        assert (await other.data_state(customer)).version == version + 1


async def test_an_upload_not_there_yet_is_looked_for_again(database: PostgresUnderTest) -> None:
    customer = "kept" + uuid.uuid4().hex[:8]
    async with replica(database) as store:
        upload_id = f"u_{uuid.uuid4().hex[:16]}"
        assert await store.get_upload(customer, upload_id) is None
        _insert_upload(database, customer, upload_id)
        assert await store.get_upload(customer, upload_id) is not None
