"""Reads kept in memory between calls, forgotten as soon as PostgreSQL says they changed.

A read of a resource that changes rarely against how often it is read (a customer's
settings, its drift events between runs and triage) would otherwise be a round trip to
PostgreSQL and the rows made into objects on every call. Each transaction that changes such
data commits `NOTIFY <channel>, '<customer>'` (`notify`); every process LISTENs on one
connection of its own (`ChangeListener`) and forgets what it keeps of that customer when the
notification arrives, so a change made through any replica is seen by all of them as soon
as it commits. Where the change was made, the writer forgets at once after its commit, so
its caller reads what it wrote.

Nothing is kept while the process is not listening (at start, or after the listening
connection dropped): then every read goes to the database, as it would without a cache. A
read that started before a notification (or before listening began) never keeps what it
read: each notification moves a generation counter on, and a read keeps its result only
when the counter has not moved since it began. Nothing found (None) is never kept: the
next read looks again, so a resource being made (an upload being read, whose progress is
shown until its row commits) is found as soon as it is there. A cache holds at most
`max_entries` results (1,000 by default: a page of events is 20 rows of a few KB, so a
full cache of pages is tens of MB), the least recently read going first.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Any, Generic, TypeVar

import psycopg
import sqlalchemy as sa
from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncConnection

from runtime.schemas import libpq_url

logger = logging.getLogger("upstream.cache")
cache_reads_total = Counter(
    "cache_reads_total",
    "Reads of data kept in memory until a change is notified, by cache and by where they "
    "were answered from (memory or database).",
    ("cache", "source"),
)
LISTEN_RETRY_SECONDS = (0.5, 1.0, 2.0, 5.0)
V = TypeVar("V")


async def notify(connection: AsyncConnection, channel: str, customer: str) -> None:
    """Tell every listening process, when this transaction commits, that `customer`'s data
    of `channel` changed."""
    await connection.execute(sa.select(sa.func.pg_notify(channel, customer)))


class NotifiedCache(Generic[V]):
    """Results of reads of one kind (`name`), per customer and key, kept until `channel`
    names their customer. A kept result is shared by every read that finds it: never change
    one (rows and tuples cannot be; a list is copied before use)."""

    def __init__(self, name: str, channel: str, *, max_entries: int = 1_000) -> None:
        self.name = name
        self.channel = channel
        self._max_entries = max_entries
        self._entries: OrderedDict[tuple[str, Hashable], V] = OrderedDict()
        self._keys: dict[str, set[Hashable]] = {}
        self._generation = 0
        self._listening = False
        self._from_memory = cache_reads_total.labels(name, "memory")
        self._from_database = cache_reads_total.labels(name, "database")

    async def get(self, customer: str, key: Hashable, read: Callable[[], Awaitable[V]]) -> V:
        """The kept result of the read `key` of `customer`'s data, or `read()`'s."""
        entry = (customer, key)
        if self._listening:
            try:
                found = self._entries[entry]
            except KeyError:
                pass
            else:
                self._entries.move_to_end(entry)
                self._from_memory.inc()
                return found
        generation = self._generation
        value = await read()
        self._from_database.inc()
        if value is not None and self._listening and generation == self._generation:
            self._keep(entry, value)
        return value

    def forget(self, customer: str) -> None:
        """`customer`'s data changed: read it again."""
        self._generation += 1
        for key in self._keys.pop(customer, ()):
            self._entries.pop((customer, key), None)

    def _keep(self, entry: tuple[str, Hashable], value: V) -> None:
        self._entries[entry] = value
        self._keys.setdefault(entry[0], set()).add(entry[1])
        if len(self._entries) > self._max_entries:
            (customer, key), _ = self._entries.popitem(last=False)
            keys = self._keys.get(customer)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._keys[customer]

    def _serve(self) -> None:
        self._generation += 1
        self._listening = True

    def _stop_serving(self) -> None:
        self._listening = False
        self._generation += 1
        self._entries.clear()
        self._keys.clear()


class ChangeListener:
    """One LISTEN connection for the `caches` of a process, following their channels."""

    def __init__(
        self, database_url: str, caches: Sequence[NotifiedCache[Any]], application_name: str
    ) -> None:
        self._url = libpq_url(database_url)
        self._by_channel: dict[str, list[NotifiedCache[Any]]] = {}
        for cache in caches:
            self._by_channel.setdefault(cache.channel, []).append(cache)
        self._application_name = application_name
        self.listening_now = asyncio.Event()

    def _stop_serving(self) -> None:
        self.listening_now.clear()
        for caches in self._by_channel.values():
            for cache in caches:
                cache._stop_serving()

    async def listen_forever(self) -> None:
        """Follow the changes committed anywhere, reconnecting when the connection drops."""
        failures = 0
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._url, autocommit=True, application_name=self._application_name
                ) as connection:
                    for channel in self._by_channel:
                        await connection.execute(f"LISTEN {channel}")
                    for caches in self._by_channel.values():
                        for cache in caches:
                            cache._serve()
                    self.listening_now.set()
                    failures = 0
                    async for notice in connection.notifies():
                        for cache in self._by_channel.get(notice.channel, ()):
                            cache.forget(notice.payload)
            except asyncio.CancelledError:
                self._stop_serving()
                raise
            except Exception as exc:
                logger.warning(
                    "not following changes (%s); reading from the database",
                    ", ".join(self._by_channel),
                    extra={"error": type(exc).__name__},
                )
            self._stop_serving()
            await asyncio.sleep(LISTEN_RETRY_SECONDS[min(failures, len(LISTEN_RETRY_SECONDS) - 1)])
            failures += 1
