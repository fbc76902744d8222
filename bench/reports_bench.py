"""`make bench`: reports' webhook fan-out against the receiver's own capacity, and a
PAYER_SCORECARD PDF for many payers against the same document as JSON.

Fan-out: a real reports process on a throwaway PostgreSQL, K webhooks of several customers
subscribed to DRIFT_EVENT_OPENED on a local receiver (uvicorn, its own process, answering
204 and timestamping each arrival). Drift events are recorded with `RecordDriftEvents`, first
all at once (a burst: deliveries per second until every delivery is SUCCEEDED), then paced
at half the burst's rate (the time from an event's recording to its arrival, p50/p99, under
a load the process keeps up with). Reference in the same run: the same number of signed
POSTs sent straight to the receiver with httpx at reports' concurrency, each on a fresh
connection as reports sends them. Last, 1,000 events in one `RecordDriftEvents` call for a
customer with one webhook: the call's time, the deliveries', and reports' memory meanwhile
(flat: a peak within 25 % of the start).

Scorecard: synthetic daily statistics of P payers (baseline and period) and a few open drift
events each, built into the document, rendered as PDF (seconds, pages, bytes) and as JSON.
Nothing is asserted; the exit status is 0 unless something broke.

    python -m bench.reports_bench [--webhooks 50] [--customers 10] [--deliveries 2000]
                                  [--payers 200] [--seed 7]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import io
import json
import multiprocessing
import os
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import grpc
import httpx
import numpy as np
import psycopg
import uvicorn
from google.protobuf import json_format
from pypdf import PdfReader
from standardwebhooks.webhooks import Webhook as StandardWebhook

from bench.export_bench import FLAT_TOLERANCE, BuildObserver
from bench.ingest_bench import BENCH_JWT_SECRET, log, throwaway_cluster
from devtools.stack import Stack, grpc_serving, http_ok, wait_until
from runtime import schemas
from runtime.auth import Role, mint_token, service_token
from runtime.settings import Settings
from services.drift.series import DayStat, cell_series
from services.reports.content import pdf
from services.reports.content.documents import document, json_document
from services.reports.content.spec import ReportSpec
from services.reports.content.weekly import BASELINE_DAYS
from services.reports.payloads import webhook_body
from tests.system import free_port
from upstream.drift.v1 import resources_pb2 as drift_resources
from upstream.reports.v1 import reports_service_pb2, reports_service_pb2_grpc
from upstream.reports.v1 import resources_pb2 as reports_resources

DEFAULT_WEBHOOKS = 50
DEFAULT_CUSTOMERS = 10
DEFAULT_DELIVERIES = 2000
DEFAULT_PAYERS = 200
DEFAULT_SEED = 7
# reports' default: attempts in flight at once per process (one per webhook at most).
CONCURRENCY = 16
BATCH_EVENTS = 10
# The largest batch drift sends: memory must not grow with it.
BIG_BATCH = 1000
POLL_SECONDS = 0.1
FAN_OUT_TIMEOUT_SECONDS = 600
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
DETECTED = dt.datetime(2026, 5, 20, 6, 0, tzinfo=dt.UTC)
PERIOD = (dt.date(2026, 3, 1), dt.date(2026, 3, 31))
MB = 1_000_000


# --- The receiver --------------------------------------------------------------------------


class ArrivalLog:
    """An ASGI app: answers a POST with 204 and keeps (arrival time, webhook-id, body);
    `GET /arrivals` returns them as [time, id, event name] and forgets them."""

    def __init__(self) -> None:
        self.arrivals: list[tuple[float, str, bytes]] = []

    async def __call__(
        self,
        scope: dict[str, Any],
        receive: Callable[[], Awaitable[dict[str, Any]]],
        send: Callable[[dict[str, Any]], Awaitable[None]],
    ) -> None:
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        content = b""
        if scope["method"] == "POST":
            headers = dict(scope["headers"])
            self.arrivals.append((time.time(), headers.get(b"webhook-id", b"").decode(), body))
            status = 204
        else:
            content = json.dumps(
                [
                    [at, message_id, json.loads(b)["data"]["name"]]
                    for at, message_id, b in self.arrivals
                ]
            ).encode()
            self.arrivals = []
            status = 200
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-length", str(len(content)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": content})


def serve_receiver(port: int) -> None:
    uvicorn.run(
        ArrivalLog(),
        host="127.0.0.1",
        port=port,
        log_level="error",
        access_log=False,
        lifespan="off",
        backlog=1024,
    )


@dataclass(frozen=True)
class Arrival:
    time: float
    message_id: str
    event: str


@contextmanager
def receiver_process() -> Iterator[str]:
    """The receiver in its own process (so neither reports nor this process's sends slow it
    down by sharing its interpreter); yields its base URL."""
    port = free_port()
    process = multiprocessing.get_context("spawn").Process(
        target=serve_receiver, args=(port,), daemon=True
    )
    process.start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until("receiver", lambda: http_ok(f"{base}/arrivals"))
        yield base
    finally:
        process.terminate()
        process.join()


def take_arrivals(base: str) -> list[Arrival]:
    answer = httpx.get(f"{base}/arrivals", timeout=30)
    answer.raise_for_status()
    return [Arrival(at, message_id, event) for at, message_id, event in answer.json()]


# --- The reports process -------------------------------------------------------------------


def migrate_reports(admin_url: str) -> str:
    """Create reports' schema and roles, migrate it to head; return the app role's URL."""
    passwords = schemas.local_passwords(("reports",))
    schemas.bootstrap(admin_url, passwords, ("reports",))
    owner, app = schemas.role_name("reports", "owner"), schemas.role_name("reports", "app")
    schemas.migrate("reports", schemas.service_url(admin_url, "reports", "owner", passwords[owner]))
    return schemas.service_url(admin_url, "reports", "app", passwords[app])


@dataclass(frozen=True)
class RunningReports:
    target: str
    settings: Settings
    pid: int


@contextmanager
def reports_process(database_url: str) -> Iterator[RunningReports]:
    """`python -m services.reports` on free ports, delivering to loopback."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "DATABASE_URL"))}
    env.update(
        JWT_SECRET=BENCH_JWT_SECRET,
        OTEL_TRACES_EXPORTER="none",
        WEBHOOK_ALLOW_LOOPBACK="true",
        WEBHOOK_CONCURRENCY=str(CONCURRENCY),
        # Nothing listens there; deliveries need neither.
        INGEST_TARGET=f"127.0.0.1:{free_port()}",
        DRIFT_TARGET=f"127.0.0.1:{free_port()}",
        LOG_LEVEL="ERROR",
    )
    port = free_port()
    stack = Stack(env)
    try:
        process = stack.start_service("reports", database_url, f"127.0.0.1:{port}", free_port())
        target = f"127.0.0.1:{port}"
        wait_until("reports", lambda: grpc_serving(target), stack)
        yield RunningReports(target, Settings.from_env("bench", env), process.pid)
    finally:
        stack.stop()


def drift_event(customer: str, event_id: str) -> drift_resources.DriftEvent:
    event = drift_resources.DriftEvent(
        name=f"customers/{customer}/driftEvents/{event_id}",
        payer="Aetna",
        code_group="E&M",
        metric=drift_resources.DENIAL_RATE,
        severity=drift_resources.DriftEvent.MEDIUM,
        state=drift_resources.DriftEvent.NEW,
        active=True,
        summary=f"Aetna E&M denial rate up ({event_id})",
    )
    event.dollars_at_stake.currency_code = "USD"
    event.dollars_at_stake.units = 42_310
    event.first_detected_time.FromDatetime(DETECTED)
    event.update_time.FromDatetime(DETECTED)
    return event


class FanOut:
    """Webhooks of several customers on the receiver, and events recorded for them."""

    def __init__(self, target: str, settings: Settings, admin_url: str, receiver: str) -> None:
        self._channel = grpc.insecure_channel(target)
        self._stub = reports_service_pb2_grpc.ReportsServiceStub(self._channel)
        self._settings = settings
        self._admin_url = admin_url
        self._receiver = receiver
        self.customers: list[str] = []
        self.webhooks_per_customer = 0
        # Event name → when the RecordDriftEvents call that carried it started.
        self.recorded_at: dict[str, float] = {}
        self._next_event = 0

    def close(self) -> None:
        self._channel.close()

    def subscribe(self, customers: int, webhooks: int) -> None:
        self.customers = [f"bench{n:02d}" for n in range(customers)]
        self.webhooks_per_customer = webhooks // customers
        for customer in self.customers:
            self.add_webhooks(customer, self.webhooks_per_customer)

    def add_webhooks(self, customer: str, webhooks: int) -> None:
        token = mint_token(
            self._settings, subject="bench", customer=customer, role=Role.ADMIN, ttl_seconds=3600
        )
        for n in range(webhooks):
            self._stub.CreateWebhook(
                reports_service_pb2.CreateWebhookRequest(
                    parent=f"customers/{customer}",
                    webhook=reports_resources.Webhook(
                        url=f"{self._receiver}/{customer}/{n}",
                        event_types=[reports_resources.DRIFT_EVENT_OPENED],
                    ),
                ),
                metadata=[("authorization", f"Bearer {token}")],
                timeout=30,
            )

    def record(self, customer: str, events: int) -> None:
        batch = [drift_event(customer, f"ev_{self._next_event + n}") for n in range(events)]
        self._next_event += events
        started = time.time()
        self._stub.RecordDriftEvents(
            reports_service_pb2.RecordDriftEventsRequest(
                parent=f"customers/{customer}", batch_id=str(uuid.uuid4()), drift_events=batch
            ),
            metadata=[("authorization", f"Bearer {service_token(self._settings)}")],
            timeout=60,
        )
        for event in batch:
            self.recorded_at[event.name] = started

    def succeeded(self) -> int:
        with psycopg.connect(schemas.libpq_url(self._admin_url)) as connection:
            found = connection.execute(
                "SELECT count(*) FROM reports.webhook_deliveries WHERE state = 'SUCCEEDED'"
            ).fetchone()
        return int(found[0]) if found else 0

    def wait_succeeded(self, total: int) -> float:
        """Poll until `total` deliveries are SUCCEEDED; the time.time() it was seen."""
        deadline = time.monotonic() + FAN_OUT_TIMEOUT_SECONDS
        while self.succeeded() < total:
            if time.monotonic() > deadline:
                raise TimeoutError(f"fewer than {total} deliveries SUCCEEDED")
            time.sleep(POLL_SECONDS)
        return time.time()


@dataclass(frozen=True)
class Phase:
    name: str
    deliveries: int
    seconds: float
    latencies: list[float]
    duplicates: int

    @property
    def rate(self) -> float:
        return self.deliveries / self.seconds


def quantile(values: list[float], share: float) -> float:
    return float(np.quantile(np.array(values), share)) if values else float("nan")


def phase_result(
    name: str, fan_out: FanOut, receiver: str, started: float, done: float, total: int
) -> Phase:
    arrivals = take_arrivals(receiver)
    first: dict[str, Arrival] = {}
    for arrival in sorted(arrivals, key=lambda a: a.time):
        first.setdefault(arrival.message_id, arrival)
    latencies = [a.time - fan_out.recorded_at[a.event] for a in first.values()]
    return Phase(name, total, done - started, latencies, len(arrivals) - len(first))


def burst(fan_out: FanOut, receiver: str, total: int, already: int) -> Phase:
    """Every event recorded at once (batches of BATCH_EVENTS, round-robin over customers)."""
    per_customer = total // fan_out.webhooks_per_customer // len(fan_out.customers)
    started = time.time()
    for offset in range(0, per_customer, BATCH_EVENTS):
        for customer in fan_out.customers:
            fan_out.record(customer, min(BATCH_EVENTS, per_customer - offset))
    done = fan_out.wait_succeeded(already + total)
    return phase_result("burst", fan_out, receiver, started, done, total)


def paced(fan_out: FanOut, receiver: str, total: int, already: int, rate: float) -> Phase:
    """One event at a time (one customer's webhooks each), at `rate` deliveries a second."""
    calls = total // fan_out.webhooks_per_customer
    interval = fan_out.webhooks_per_customer / rate
    started = time.time()
    for n in range(calls):
        pause = started + n * interval - time.time()
        if pause > 0:
            time.sleep(pause)
        fan_out.record(fan_out.customers[n % len(fan_out.customers)], 1)
    done = fan_out.wait_succeeded(already + total)
    return phase_result(f"paced at {rate:.0f}/s", fan_out, receiver, started, done, total)


@dataclass(frozen=True)
class OneBatch:
    phase: Phase
    record_seconds: float
    rss_at_start: int
    peak_rss: int
    rss_at_end: int


def one_batch(fan_out: FanOut, receiver: str, reports_pid: int, already: int) -> OneBatch:
    """BIG_BATCH events in one RecordDriftEvents call for a customer with one webhook: the
    call's time, every delivery made, and reports' memory meanwhile."""
    customer = "bench-batch"
    fan_out.add_webhooks(customer, 1)
    with BuildObserver(reports_pid) as observer:
        started = time.time()
        fan_out.record(customer, BIG_BATCH)
        recorded = time.time()
        done = fan_out.wait_succeeded(already + BIG_BATCH)
    phase = phase_result(f"{BIG_BATCH:,} in one batch", fan_out, receiver, started, done, BIG_BATCH)
    return OneBatch(
        phase, recorded - started, observer.rss_at_start, observer.peak_rss, observer.rss_at_end
    )


def one_batch_lines(big: OneBatch) -> str:
    growth = big.peak_rss / big.rss_at_start - 1
    verdict = "PASS" if growth <= FLAT_TOLERANCE else "MISS"
    return (
        f"{big.phase.name}: recorded in {big.record_seconds:.2f} s, {big.phase.deliveries:,} "
        f"deliveries in {big.phase.seconds:.1f} s ({big.phase.duplicates} duplicates)\n"
        f"  reports RSS {big.rss_at_start / MB:.0f} MB at the start, {big.peak_rss / MB:.0f} MB "
        f"peak, {big.rss_at_end / MB:.0f} MB at the end: {growth:+.0%}, flat within "
        f"{FLAT_TOLERANCE:.0%}: {verdict}"
    )


async def direct_posts(receiver: str, total: int, concurrency: int) -> Phase:
    """The reference: `total` signed POSTs of a drift event's payload, straight to the
    receiver with httpx, `concurrency` at a time, each on a fresh connection."""
    data = json_format.MessageToDict(drift_event("bench00", "ev_direct"))
    body = webhook_body("DRIFT_EVENT_OPENED", DETECTED, data)
    signer = StandardWebhook(SECRET)
    latencies: list[float] = []
    queue = iter(range(total))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=0)

    async def worker(client: httpx.AsyncClient) -> None:
        for n in queue:
            message_id = f"msg_direct_{n}"
            now = dt.datetime.now(dt.UTC)
            headers = {
                "content-type": "application/json",
                "webhook-id": message_id,
                "webhook-timestamp": str(int(now.timestamp())),
                "webhook-signature": signer.sign(message_id, now, body),
            }
            sent = time.monotonic()
            answer = await client.post(f"{receiver}/direct", content=body, headers=headers)
            answer.raise_for_status()
            latencies.append(time.monotonic() - sent)

    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        started = time.monotonic()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        seconds = time.monotonic() - started
    return Phase(f"direct httpx ×{concurrency}", total, seconds, latencies, 0)


def measure_fan_out(webhooks: int, customers: int, deliveries: int) -> tuple[list[Phase], OneBatch]:
    with (
        throwaway_cluster(keep=False) as admin_url,
        receiver_process() as receiver,
    ):
        database_url = migrate_reports(admin_url)
        with reports_process(database_url) as reports:
            fan_out = FanOut(reports.target, reports.settings, admin_url, receiver)
            try:
                fan_out.subscribe(customers, webhooks)
                total = (
                    deliveries
                    // (fan_out.webhooks_per_customer * customers * BATCH_EVENTS)
                    * (fan_out.webhooks_per_customer * customers * BATCH_EVENTS)
                )
                log(
                    f"fan-out: {customers} customers × {fan_out.webhooks_per_customer} webhooks, "
                    f"{total:,} deliveries a phase, reports WEBHOOK_CONCURRENCY={CONCURRENCY}"
                )
                reference = asyncio.run(direct_posts(receiver, total, CONCURRENCY))
                take_arrivals(receiver)
                log(f"  {reference.name}: {reference.rate:,.0f} POSTs/s")
                first = burst(fan_out, receiver, total, 0)
                log(f"  burst: {first.rate:,.0f} deliveries/s")
                second = paced(fan_out, receiver, total, total, first.rate / 2)
                log(f"  {second.name}: done")
                big = one_batch(fan_out, receiver, reports.pid, already=2 * total)
            finally:
                fan_out.close()
    return [reference, first, second], big


def fan_out_table(phases: list[Phase]) -> str:
    titles = ("", "deliveries", "seconds", "per second", "p50 ms", "p99 ms", "max ms", "duplicates")
    rows = [titles]
    for phase in phases:
        rows.append(
            (
                phase.name,
                f"{phase.deliveries:,}",
                f"{phase.seconds:.1f}",
                f"{phase.rate:,.0f}",
                f"{quantile(phase.latencies, 0.5) * 1000:,.0f}",
                f"{quantile(phase.latencies, 0.99) * 1000:,.0f}",
                f"{max(phase.latencies, default=float('nan')) * 1000:,.0f}",
                f"{phase.duplicates}",
            )
        )
    return table(rows) + (
        "\nlatency: reports phases from the RecordDriftEvents call to the arrival at the "
        "receiver;\n         the direct reference from its POST to the receiver's answer"
    )


# --- The scorecard -------------------------------------------------------------------------


def synthetic_statistics(payers: int, seed: int) -> list[DayStat]:
    """Each payer's days from the baseline's start to the period's end: volumes spread over
    two orders of magnitude, a few payers denying more and deciding slower in the period."""
    rng = np.random.default_rng(seed)
    start = PERIOD[0] - dt.timedelta(days=BASELINE_DAYS)
    days = [start + dt.timedelta(days=n) for n in range((PERIOD[1] - start).days + 1)]
    stats = []
    for p in range(payers):
        payer = f"Payer {p:03d}"
        volume = float(rng.lognormal(2.5, 1.0))
        denial, decision = float(rng.uniform(0.04, 0.15)), float(rng.uniform(10, 30))
        drifting = p % 7 == 0
        for day in days:
            late = drifting and day >= PERIOD[0]
            decided = int(rng.poisson(volume))
            if not decided:
                continue
            denied = int(rng.binomial(decided, min(0.9, denial * (1.8 if late else 1.0))))
            waits = rng.poisson(decision * (1.4 if late else 1.0), decided)
            values, counts = np.unique(waits, return_counts=True)
            allowed = decided * 15_000
            paid = int(allowed * rng.uniform(0.7, 0.8))
            stats.append(
                DayStat(
                    payer, "", day, decided, denied, 0,
                    dict(zip(values.tolist(), counts.tolist(), strict=True)),
                    decided * 20_000, allowed, paid, denied * 20_000,
                    {"CO-50": denied} if denied else {},
                    int(allowed * 0.1),
                )
            )  # fmt: skip
    return stats


def synthetic_events(payers: int) -> list[drift_resources.DriftEvent]:
    """Two open drift events for every seventh payer, with their evidence."""
    events = []
    for p in range(0, payers, 7):
        for metric, before, now in (
            (drift_resources.DENIAL_RATE, 0.08, 0.14),
            (drift_resources.DECISION_DAYS, 18.0, 25.0),
        ):
            event = drift_event("bench", f"ev_{p}_{metric}")
            event.payer, event.code_group, event.metric = f"Payer {p:03d}", "", metric
            event.summary = f"Payer {p:03d}: {before:g} → {now:g}"
            evidence = event.evidence
            evidence.baseline_value, evidence.current_value = before, now
            evidence.baseline_count, evidence.current_count = 1200, 400
            evidence.p_value, evidence.q_value, evidence.test = 0.0004, 0.003, "fisher_exact"
            event.first_detected_time.FromDatetime(dt.datetime(2026, 3, 20, tzinfo=dt.UTC))
            events.append(event)
    return events


@dataclass(frozen=True)
class Scorecard:
    payers: int
    document_seconds: float
    pdf_seconds: float
    pdf_pages: int
    pdf_bytes: int
    json_seconds: float
    json_bytes: int


def measure_scorecard(payers: int, seed: int) -> Scorecard:
    stats = synthetic_statistics(payers, seed)
    events = synthetic_events(payers)
    spec = ReportSpec(
        customer="bench",
        name="customers/bench/reports/rpt_bench",
        kind=reports_resources.PAYER_SCORECARD,
        format=reports_resources.PDF,
        start_date=PERIOD[0],
        end_date=PERIOD[1],
        payers=(),
        create_time=dt.datetime.now(dt.UTC),
    )
    started = time.monotonic()
    built = document(spec, cell_series(stats), events)
    document_seconds = time.monotonic() - started
    started = time.monotonic()
    rendered = pdf.render(built)
    pdf_seconds = time.monotonic() - started
    started = time.monotonic()
    as_json = json_document(built)
    json_seconds = time.monotonic() - started
    pages = len(PdfReader(io.BytesIO(rendered)).pages)
    return Scorecard(
        len(built.sections), document_seconds, pdf_seconds, pages, len(rendered),
        json_seconds, len(as_json),
    )  # fmt: skip


def scorecard_table(card: Scorecard) -> str:
    rows = [
        ("", "seconds", "pages", "size"),
        ("document (statistics → figures)", f"{card.document_seconds:.2f}", "", ""),
        ("PDF", f"{card.pdf_seconds:.1f}", f"{card.pdf_pages}", f"{card.pdf_bytes / MB:.2f} MB"),
        ("JSON (reference)", f"{card.json_seconds:.2f}", "", f"{card.json_bytes / MB:.2f} MB"),
    ]
    return table(rows) + (
        f"\nPAYER_SCORECARD of {card.payers} payers; PDF "
        f"{card.pdf_seconds / card.payers * 1000:.0f} ms a payer, "
        f"{card.pdf_seconds / card.json_seconds:.0f}× the JSON's time"
    )


def table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return "\n".join(
        "  ".join(
            cell.ljust(width) if column == 0 else cell.rjust(width)
            for column, (cell, width) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.reports_bench", description=__doc__)
    parser.add_argument("--webhooks", type=int, default=DEFAULT_WEBHOOKS)
    parser.add_argument("--customers", type=int, default=DEFAULT_CUSTOMERS)
    parser.add_argument("--deliveries", type=int, default=DEFAULT_DELIVERIES)
    parser.add_argument("--payers", type=int, default=DEFAULT_PAYERS)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args(argv)
    if not 0 < args.customers <= args.webhooks:
        parser.error("--customers must be between 1 and --webhooks")
    if args.deliveries < args.webhooks * BATCH_EVENTS:
        parser.error(f"--deliveries must be at least {BATCH_EVENTS} × --webhooks")
    started = time.monotonic()
    try:
        phases, big = measure_fan_out(args.webhooks, args.customers, args.deliveries)
        log(f"\n{fan_out_table(phases)}")
        log(f"\n{one_batch_lines(big)}")
        log(f"\nscorecard: {args.payers} payers of synthetic statistics …")
        log(f"\n{scorecard_table(measure_scorecard(args.payers, args.seed))}")
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    log(f"(whole run {time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
