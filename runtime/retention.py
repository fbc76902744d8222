"""Retention: what each customer's data is kept for, and the job that purges the rest.

By configuration (runtime/settings.py): `RETENTION_CLAIMS_YEARS` (claims and the statistics
made of them, by decision date) and `RETENTION_AUDIT_DAYS` (audit entries), 0 meaning kept
for ever, each overridable per customer (`RETENTION_OVERRIDES`). Report artifacts (at their
expiry) and webhook deliveries and alerts (after 30 days) are purged by the reports
workers that own them.

Every replica runs the job every `RETENTION_INTERVAL_SECONDS`; each purge deletes at most
`RETENTION_BATCH_ROWS` rows in one transaction (concurrent replicas serialise per customer),
and each batch records what it removed in the service's audit log, in the same transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace
from prometheus_client import Counter

from runtime.audit import AuditLog
from runtime.settings import Settings

logger = logging.getLogger("upstream.retention")
tracer = trace.get_tracer("upstream.retention")
retention_rows_purged_total = Counter(
    "retention_rows_purged_total", "Rows retention purged, by what they were.", ("what",)
)


@dataclass(frozen=True)
class Retention:
    """How long one customer's data is kept; 0 means for ever."""

    claims_years: int
    audit_days: int


def retention_for(settings: Settings, customer: str) -> Retention:
    for name, claims_years, audit_days in settings.retention_overrides:
        if name == customer:
            return Retention(
                settings.retention_claims_years if claims_years is None else claims_years,
                settings.retention_audit_days if audit_days is None else audit_days,
            )
    return Retention(settings.retention_claims_years, settings.retention_audit_days)


def claims_cutoff(retention: Retention, today: dt.date) -> dt.date | None:
    """Claims decided before this date are past retention (None: kept for ever). Whole
    months go at once, so a month's statistics are never part kept."""
    if retention.claims_years == 0:
        return None
    return dt.date(today.year - retention.claims_years, today.month, 1)


def audit_cutoff(retention: Retention, now: dt.datetime) -> dt.datetime | None:
    if retention.audit_days == 0:
        return None
    return now - dt.timedelta(days=retention.audit_days)


@dataclass(frozen=True)
class Purge:
    """One kind of data retention removes. `candidates(oldest)` lists the customers that may
    have rows older than `oldest`; `batch(customer, cutoff, limit, earlier)` deletes up to
    `limit` of that customer's rows older than `cutoff` (and records it), returning how many
    went, `earlier` being how many this pass removed from the customer before it (the batch
    removing fewer than `limit` is the pass's last for the customer: one that must tell
    others the data changed does it there, once a pass); `cutoff(retention, now)` is a
    customer's cutoff, None when it keeps them for ever."""

    what: str
    cutoff: Callable[[Retention, dt.datetime], Any]
    candidates: Callable[[Any], Awaitable[Sequence[str]]]
    batch: Callable[[str, Any, int, int], Awaitable[int]]


def audit_purge(log: AuditLog) -> Purge:
    async def candidates(oldest: dt.datetime) -> Sequence[str]:
        return await log.customers_with_entries_before(oldest)

    async def batch(customer: str, cutoff: dt.datetime, limit: int, earlier: int) -> int:
        return await log.purge(customer, cutoff, limit)

    return Purge("audit entries", audit_cutoff, candidates, batch)


class RetentionJob:
    """Runs `purges` for every customer every `settings.retention_interval_seconds`."""

    def __init__(
        self,
        settings: Settings,
        purges: Sequence[Purge],
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self._settings = settings
        self._purges = purges
        self._clock = clock

    async def run_once(self) -> dict[str, int]:
        """One pass: each purge to the end for each customer; rows removed, by purge."""
        now = self._clock()
        removed: dict[str, int] = {}
        for purge in self._purges:
            named, default = self._cutoffs(purge, now)
            present = [c for c in (*named.values(), default) if c is not None]
            if not present:
                continue
            # Every row any customer may lose is older than the latest cutoff.
            for customer in await purge.candidates(max(present)):
                cutoff = named.get(customer, default)
                if cutoff is None:
                    continue
                # A trace of its own: what a purge starts (a detection run) continues it.
                with tracer.start_as_current_span(
                    "retention purge",
                    attributes={
                        "upstream.customer": customer,
                        "upstream.retention.what": purge.what,
                        "upstream.retention.cutoff": str(cutoff),
                    },
                ) as span:
                    limit, earlier = self._settings.retention_batch_rows, 0
                    while True:
                        count = await purge.batch(customer, cutoff, limit, earlier)
                        earlier += count
                        retention_rows_purged_total.labels(purge.what).inc(count)
                        if count < limit:
                            break
                    span.set_attribute("upstream.retention.rows_removed", earlier)
                removed[purge.what] = removed.get(purge.what, 0) + earlier
        if any(removed.values()):
            logger.info("retention purged", extra={"removed": removed})
        return removed

    def _cutoffs(self, purge: Purge, now: dt.datetime) -> tuple[dict[str, Any], Any]:
        """The cutoff of each customer the overrides name, and everyone else's (None: kept
        for ever)."""
        settings = self._settings
        named = {
            name: purge.cutoff(retention_for(settings, name), now)
            for name, _, _ in settings.retention_overrides
        }
        default = Retention(settings.retention_claims_years, settings.retention_audit_days)
        return named, purge.cutoff(default, now)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """The job as background work of a server (`ServiceDefinition.background`)."""
        if not self._enabled():
            yield
            return
        task = asyncio.create_task(self._run_forever(), name="retention")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _enabled(self) -> bool:
        settings = self._settings
        return bool(
            settings.retention_claims_years
            or settings.retention_audit_days
            or any(c or a for _, c, a in settings.retention_overrides)
        )

    async def _run_forever(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception:
                logger.exception("retention pass failed; trying again at the next")
            await asyncio.sleep(self._settings.retention_interval_seconds)
