"""Detection settings kept in memory by each drift process (services/drift/config_cache.py),
two of them over one real PostgreSQL as two replicas would be: a change made through one is
seen by the other as soon as it commits, and a replica that lost its listening connection
reads from the database until it listens again."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager

import psycopg
import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from runtime.schemas import libpq_url
from services.drift.config_cache import ConfigCache, config_cache_reads_total
from services.drift.store import DriftStore
from tests.conftest import PostgresUnderTest, own_database


@pytest.fixture(scope="module")
def database(postgres: PostgresUnderTest) -> Iterator[PostgresUnderTest]:
    with own_database(postgres, ("drift",)) as database:
        yield database


@dataclasses.dataclass
class Replica:
    store: DriftStore
    configs: ConfigCache


@asynccontextmanager
async def replica(database: PostgresUnderTest) -> AsyncIterator[Replica]:
    """One drift process's store and cache, its cache following the changes."""
    url = database.url("drift")
    engine = create_async_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    store = DriftStore(engine)
    configs = ConfigCache(store, url)
    listening = asyncio.create_task(configs.listen_forever())
    try:
        await asyncio.wait_for(configs.listening_now.wait(), 10)
        yield Replica(store, configs)
    finally:
        listening.cancel()
        await asyncio.gather(listening, return_exceptions=True)
        await engine.dispose()


def _reads(source: str) -> float:
    return config_cache_reads_total.labels(source)._value.get()


async def _eventually(check: Callable[[], Awaitable[bool]], seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        assert time.monotonic() < deadline, "not within the time allowed"
        await asyncio.sleep(0.02)


async def _change(one: Replica, customer: str, window_days: int) -> str:
    """`customer`'s current window set to `window_days` through `one`; the new etag."""
    current = await one.store.get_config(customer)
    changed = dataclasses.replace(current.config, current_window_days=window_days)
    stored = await one.store.put_config(customer, changed, "test", "")
    assert stored is not None
    one.configs.forget(customer)
    return stored.etag


async def test_a_change_through_one_replica_is_seen_by_the_other(
    database: PostgresUnderTest,
) -> None:
    customer = "cache" + uuid.uuid4().hex[:8]
    async with replica(database) as one, replica(database) as other:
        first = await other.configs.get(customer)
        from_memory = _reads("memory")
        assert await other.configs.get(customer) == first  # kept
        assert _reads("memory") == from_memory + 1

        etag = await _change(one, customer, 45)
        assert (await one.configs.get(customer)).etag == etag  # read what it wrote, at once

        async def other_sees_it() -> bool:
            return (await other.configs.get(customer)).etag == etag

        await _eventually(other_sees_it)
        assert (await other.configs.get(customer)).config.current_window_days == 45


async def test_a_replica_that_stopped_listening_reads_the_database_until_it_listens_again(
    database: PostgresUnderTest,
) -> None:
    customer = "cache" + uuid.uuid4().hex[:8]
    async with replica(database) as one, replica(database) as other:
        await other.configs.get(customer)  # kept in memory
        with psycopg.connect(libpq_url(database.admin_url), autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = 'upstream-drift-config-listener' "
                "AND datname = current_database()"
            )
        await _eventually(lambda: _not_set(other.configs.listening_now))
        # Made while nobody listens: no replica is told, and the other one still reads it.
        etag = await _change(one, customer, 60)
        assert (await other.configs.get(customer)).etag == etag

        await asyncio.wait_for(other.configs.listening_now.wait(), 15)
        await other.configs.get(customer)
        from_memory = _reads("memory")
        assert (await other.configs.get(customer)).etag == etag
        assert _reads("memory") == from_memory + 1  # kept again


async def _not_set(event: asyncio.Event) -> bool:
    return not event.is_set()
