"""Detection settings and drift events kept in memory by each drift process between reads
(runtime/notified_cache.py), two of them over one real PostgreSQL as two replicas would be:
a change made through one is seen by the other as soon as it commits, the one that made it
reads it at once, and a replica that lost its listening connection reads from the database
until it listens again."""

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

from runtime.notified_cache import ChangeListener, NotifiedCache, cache_reads_total
from runtime.ordering import parse_order_by
from runtime.schemas import libpq_url
from services.drift.store import EVENT_ORDERS, DriftStore
from tests.conftest import PostgresUnderTest, own_database

LISTENER = "upstream-drift-listener"


@pytest.fixture(scope="module")
def database(postgres: PostgresUnderTest) -> Iterator[PostgresUnderTest]:
    with own_database(postgres, ("drift",)) as database:
        yield database


@dataclasses.dataclass
class Replica:
    store: DriftStore
    listener: ChangeListener


@asynccontextmanager
async def replica(database: PostgresUnderTest) -> AsyncIterator[Replica]:
    """One drift process's store and cache, its cache following the changes."""
    url = database.url("drift")
    engine = create_async_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    store = DriftStore(engine)
    listener = ChangeListener(url, (store.config_reads, store.event_reads), LISTENER)
    listening = asyncio.create_task(listener.listen_forever())
    try:
        await asyncio.wait_for(listener.listening_now.wait(), 10)
        yield Replica(store, listener)
    finally:
        listening.cancel()
        await asyncio.gather(listening, return_exceptions=True)
        await engine.dispose()


def _reads(source: str, cache: str = "drift_config") -> float:
    return cache_reads_total.labels(cache, source)._value.get()


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
    return stored.etag


async def test_a_change_through_one_replica_is_seen_by_the_other(
    database: PostgresUnderTest,
) -> None:
    customer = "cache" + uuid.uuid4().hex[:8]
    async with replica(database) as one, replica(database) as other:
        first = await other.store.get_config(customer)
        from_memory = _reads("memory")
        assert await other.store.get_config(customer) == first  # kept
        assert _reads("memory") == from_memory + 1

        etag = await _change(one, customer, 45)
        assert (await one.store.get_config(customer)).etag == etag  # read what it wrote, at once

        async def other_sees_it() -> bool:
            return (await other.store.get_config(customer)).etag == etag

        await _eventually(other_sees_it)
        assert (await other.store.get_config(customer)).config.current_window_days == 45


async def test_a_replica_that_stopped_listening_reads_the_database_until_it_listens_again(
    database: PostgresUnderTest,
) -> None:
    customer = "cache" + uuid.uuid4().hex[:8]
    async with replica(database) as one, replica(database) as other:
        await other.store.get_config(customer)  # kept in memory
        with psycopg.connect(libpq_url(database.admin_url), autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                f"WHERE application_name = '{LISTENER}' "
                "AND datname = current_database()"
            )
        await _eventually(lambda: _not_set(other.listener.listening_now))
        # Made while nobody listens: no replica is told, and the other one still reads it.
        etag = await _change(one, customer, 60)
        assert (await other.store.get_config(customer)).etag == etag

        await asyncio.wait_for(other.listener.listening_now.wait(), 15)
        await other.store.get_config(customer)
        from_memory = _reads("memory")
        assert (await other.store.get_config(customer)).etag == etag
        assert _reads("memory") == from_memory + 1  # kept again


async def _not_set(event: asyncio.Event) -> bool:
    return not event.is_set()


def _insert_events(database: PostgresUnderTest, customer: str, count: int) -> list[str]:
    """`count` open events of `customer`, written as a run would leave them."""
    ids = [f"ev_{uuid.uuid4().hex[:16]}" for _ in range(count)]
    with psycopg.connect(libpq_url(database.admin_url), autocommit=True) as admin:
        for number, event_id in enumerate(ids):
            admin.execute(
                "INSERT INTO drift.drift_events (customer_id, event_id, payer, code_group,"
                " metric, severity, state, active, baseline_start, baseline_end, current_start,"
                " current_end, evidence, dollars_at_stake_cents, summary, first_run, last_run,"
                " last_seen_time)"
                " VALUES (%s, %s, %s, 'E&M', 'DENIAL_RATE', 'HIGH', 'NEW', true, '2026-01-01',"
                " '2026-06-30', '2026-07-01', '2026-07-30', '{}', 100, 'more denials', 'run_1',"
                " 'run_1', now() - make_interval(mins => %s))",
                (customer, event_id, f"Payer {number}", number),
            )
    return ids


async def test_a_triage_through_one_replica_is_read_and_listed_by_the_other(
    database: PostgresUnderTest,
) -> None:
    customer = "cache" + uuid.uuid4().hex[:8]
    first, second = _insert_events(database, customer, 2)
    order = parse_order_by("", EVENT_ORDERS, "last_seen_time desc")
    async with replica(database) as one, replica(database) as other:

        async def listed(where: Replica, filter_text: str = "") -> list[tuple[str, str]]:
            rows = await where.store.list_events(customer, filter_text, order, 20, None)
            return [(row.event_id, row.state) for row in rows]

        assert await listed(other) == [(first, "NEW"), (second, "NEW")]
        assert await listed(other, 'state = "NEW"') == [(first, "NEW"), (second, "NEW")]
        assert (await other.store.get_event(customer, second)).state == "NEW"
        from_memory = _reads("memory", "drift_events")
        assert await listed(other) == [(first, "NEW"), (second, "NEW")]  # kept
        assert (await other.store.get_event(customer, second)).state == "NEW"
        assert _reads("memory", "drift_events") == from_memory + 2

        triaged = await one.store.triage_event(
            customer, second, {"state": "ACKNOWLEDGED"}, "analyst@test", None
        )
        assert triaged is not None and triaged.version == 2
        # The replica that wrote it reads it at once.
        assert (await one.store.get_event(customer, second)).state == "ACKNOWLEDGED"

        async def other_sees_it() -> bool:
            event = await other.store.get_event(customer, second)
            return event is not None and event.state == "ACKNOWLEDGED"

        await _eventually(other_sees_it)
        assert await listed(other) == [(first, "NEW"), (second, "ACKNOWLEDGED")]
        assert await listed(other, 'state = "NEW"') == [(first, "NEW")]
        # A refused triage (stale version) changes nothing and keeps what is kept.
        assert await one.store.triage_event(customer, first, {"state": "DISMISSED"}, "a", 7) is None
        assert (await other.store.get_event(customer, first)).state == "NEW"


async def test_a_cache_keeps_its_most_recently_read_entries_only(
    database: PostgresUnderTest,
) -> None:
    reads: list[str] = []
    cache: NotifiedCache[str] = NotifiedCache("test_bounded", "test_bounded", max_entries=2)
    listener = ChangeListener(database.url("drift"), (cache,), "upstream-test-listener")
    listening = asyncio.create_task(listener.listen_forever())

    async def get(customer: str, key: str) -> str:
        async def read() -> str:
            reads.append(f"{customer}/{key}")
            return key.upper()

        return await cache.get(customer, key, read)

    try:
        await asyncio.wait_for(listener.listening_now.wait(), 10)
        assert [await get("a", "x"), await get("a", "y"), await get("a", "x")] == ["X", "Y", "X"]
        assert reads == ["a/x", "a/y"]
        await get("b", "z")  # a third entry: y, read least recently, goes
        await get("a", "x")
        await get("a", "y")
        assert reads == ["a/x", "a/y", "b/z", "a/y"]
        await get("b", "z")  # z went for y: read again; now y and z are kept
        await get("a", "y")
        assert reads == ["a/x", "a/y", "b/z", "a/y", "b/z"]
        # A notification about one customer forgets that customer's entries only.
        with psycopg.connect(libpq_url(database.admin_url), autocommit=True) as admin:
            admin.execute("SELECT pg_notify('test_bounded', 'a')")
        await _eventually(lambda: _read_again(get, reads, "a", "y"))
        await get("b", "z")
        assert reads.count("b/z") == 2
    finally:
        listening.cancel()
        await asyncio.gather(listening, return_exceptions=True)


async def _read_again(
    get: Callable[[str, str], Awaitable[str]], reads: list[str], customer: str, key: str
) -> bool:
    before = len(reads)
    await get(customer, key)
    return len(reads) > before
