"""Customers' detection settings held in memory between reads.

Every read of a drift config (`GetDriftConfig`, the payer summaries' freshness check) would
otherwise be a round trip to PostgreSQL for a row that changes a few times a year. Each
change commits `NOTIFY drift_configs, '<customer>'` in its transaction (`DriftStore.
put_config`); every drift process LISTENs on its own connection and forgets that
customer's entry when the notification arrives, so a change made through any replica is
seen by all of them as soon as it commits. Where the change was made, the entry is dropped
at once, so its caller reads what it wrote.

Nothing is cached while the process is not listening (at start, or after the listening
connection dropped): then every read goes to the database, as it would without a cache.
A read that started before a notification (or before listening began) never stores what it
read: each notification moves a generation counter on, and a read stores only when the
counter has not moved since it began.
"""

from __future__ import annotations

import asyncio
import logging

import psycopg
from prometheus_client import Counter

from runtime.schemas import libpq_url
from services.drift.store import CONFIG_CHANNEL, DriftStore, StoredConfig

logger = logging.getLogger("upstream.drift")
config_cache_reads_total = Counter(
    "drift_config_cache_reads_total",
    "Reads of detection settings, by where they were answered from.",
    ("source",),
)
LISTEN_RETRY_SECONDS = (0.5, 1.0, 2.0, 5.0)


class ConfigCache:
    def __init__(self, store: DriftStore, database_url: str) -> None:
        self._store = store
        self._url = libpq_url(database_url)
        self._entries: dict[str, StoredConfig] = {}
        self._generation = 0
        self._listening = False
        self.listening_now = asyncio.Event()

    async def get(self, customer: str) -> StoredConfig:
        """The customer's settings (the defaults when it never changed them)."""
        if self._listening:
            found = self._entries.get(customer)
            if found is not None:
                config_cache_reads_total.labels("memory").inc()
                return found
        generation = self._generation
        stored = await self._store.get_config(customer)
        config_cache_reads_total.labels("database").inc()
        if self._listening and generation == self._generation:
            self._entries[customer] = stored
        return stored

    def forget(self, customer: str) -> None:
        """The customer's settings changed here: read them again."""
        self._generation += 1
        self._entries.pop(customer, None)

    def _stop_serving(self) -> None:
        self._listening = False
        self.listening_now.clear()
        self._generation += 1
        self._entries.clear()

    async def listen_forever(self) -> None:
        """Follow the changes committed anywhere, reconnecting when the connection drops."""
        failures = 0
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._url, autocommit=True, application_name="upstream-drift-config-listener"
                ) as connection:
                    await connection.execute(f"LISTEN {CONFIG_CHANNEL}")
                    self._generation += 1
                    self._listening = True
                    self.listening_now.set()
                    failures = 0
                    async for notice in connection.notifies():
                        self.forget(notice.payload)
            except asyncio.CancelledError:
                self._stop_serving()
                raise
            except Exception as exc:
                logger.warning(
                    "not following drift config changes; reading them from the database",
                    extra={"error": type(exc).__name__},
                )
            self._stop_serving()
            await asyncio.sleep(LISTEN_RETRY_SECONDS[min(failures, len(LISTEN_RETRY_SECONDS) - 1)])
            failures += 1
