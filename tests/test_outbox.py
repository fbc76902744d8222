"""The transactional outbox across real boundaries: relays sharing one table through leases,
a relay that dies mid-batch, events parked on a permanent error and replayed by an operator,
and ingest telling drift of an upload once drift is back."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import json
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import grpc
import psycopg
import pytest
from prometheus_client import REGISTRY
from psycopg.rows import dict_row
from sqlalchemy import Row, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from devtools.stack import wait_until
from runtime import schemas
from runtime.auth import Role, mint_token
from runtime.outbox import OUTBOX_SERVICES, OutboxEvent, OutboxRelay, RetryPolicy
from runtime.settings import REPO_ROOT, Settings
from tests.conftest import PostgresUnderTest, own_database
from tests.system import TEST_JWT_SECRET, base_env, free_port, running_service
from upstream.drift.v1 import drift_service_pb2, drift_service_pb2_grpc
from upstream.drift.v1 import resources_pb2 as drift_resources_pb2
from upstream.ingest.v1 import ingest_service_pb2, ingest_service_pb2_grpc
from upstream.ingest.v1 import resources_pb2 as ingest_resources_pb2

PUBLISH_TIMEOUT_SECONDS = 2.0
LEASE_SECONDS = 3.0
QUICK_RETRIES = RetryPolicy(first_backoff_seconds=0.05, max_backoff_seconds=0.2)


@pytest.fixture(scope="module")
def outbox_database(postgres: PostgresUnderTest) -> Iterator[PostgresUnderTest]:
    """A database of this module's own: the relays of the session's running system work on
    the session's database, never on these events."""
    with own_database(postgres, OUTBOX_SERVICES) as database:
        yield database


@pytest.fixture
def database(outbox_database: PostgresUnderTest) -> PostgresUnderTest:
    """The module's database with empty outboxes."""
    with psycopg.connect(schemas.libpq_url(outbox_database.admin_url)) as connection:
        connection.execute("TRUNCATE ingest.outbox, drift.outbox")
    return outbox_database


@pytest.fixture
async def engine(database: PostgresUnderTest) -> AsyncIterator[AsyncEngine]:
    """Logged in as ingest's app role, as the relay in ingest is."""
    engine = create_async_engine(database.url("ingest", "app"))
    yield engine
    await engine.dispose()


@dataclass
class DriftStandIn(drift_service_pb2_grpc.DriftServiceServicer):
    """Stands in for drift as the consumer of ingest's outbox: records each RunDetection
    call's request id (the event id) and answers with the code set for the event's customer
    (OK when there is none); calls of `held` events wait for `release` first."""

    codes: dict[str, grpc.StatusCode] = field(default_factory=dict)
    held: set[str] = field(default_factory=set)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    delay_seconds: float = 0.0
    calls: list[str] = field(default_factory=list)

    async def RunDetection(  # noqa: N802
        self, request: drift_service_pb2.RunDetectionRequest, context: grpc.aio.ServicerContext
    ) -> drift_resources_pb2.DriftRun:
        self.calls.append(request.request_id)
        if request.request_id in self.held:
            await self.release.wait()
        await asyncio.sleep(self.delay_seconds)
        code = self.codes.get(request.parent.removeprefix("customers/"))
        if code is not None:
            await context.abort(code, f"the stand-in answers {code.name}")
        return drift_resources_pb2.DriftRun(name=f"{request.parent}/driftRuns/r_1")


@asynccontextmanager
async def serving(consumer: DriftStandIn) -> AsyncIterator[grpc.aio.Channel]:
    """The consumer on a loopback port, and a channel to it."""
    server = grpc.aio.server()
    drift_service_pb2_grpc.add_DriftServiceServicer_to_server(consumer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield channel
    finally:
        await server.stop(0)


def run_detection(channel: grpc.aio.Channel) -> Callable[[OutboxEvent], Awaitable[None]]:
    stub = drift_service_pb2_grpc.DriftServiceStub(channel)

    async def publish(event: OutboxEvent) -> None:
        await stub.RunDetection(
            drift_service_pb2.RunDetectionRequest(
                parent=f"customers/{event.customer}", request_id=event.event_id
            )
        )

    return publish


def relay(
    engine: AsyncEngine,
    publish: Callable[[OutboxEvent], Awaitable[None]],
    *,
    policy: RetryPolicy = QUICK_RETRIES,
    batch_size: int = 20,
) -> OutboxRelay:
    return OutboxRelay(
        engine,
        "ingest",
        publish,
        asyncio.Event(),
        publish_timeout_seconds=PUBLISH_TIMEOUT_SECONDS,
        policy=policy,
        batch_size=batch_size,
        lease_seconds=LEASE_SECONDS,
        poll_seconds=0.2,
    )


@asynccontextmanager
async def relaying(*relays: OutboxRelay) -> AsyncIterator[None]:
    tasks = [asyncio.create_task(each.run()) for each in relays]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def add_events(engine: AsyncEngine, customer: str, count: int) -> list[str]:
    """`count` UploadCompleted events of `customer`, due in the order returned."""
    event_ids = [str(uuid.uuid4()) for _ in range(count)]
    async with engine.begin() as connection:
        for position, event_id in enumerate(event_ids):
            await connection.execute(
                text(
                    "INSERT INTO ingest.outbox (customer_id, event_id, event_type, payload, "
                    "next_attempt_time) VALUES (:customer, :event, 'UploadCompleted', "
                    "CAST(:payload AS jsonb), now() - make_interval(secs => :age))"
                ),
                {
                    "customer": customer,
                    "event": event_id,
                    "payload": json.dumps({"customer": customer, "upload_id": f"u_{position}"}),
                    "age": count - position,
                },
            )
    return event_ids


async def outbox_rows(engine: AsyncEngine, event_ids: list[str]) -> dict[str, Row[Any]]:
    async with engine.connect() as connection:
        rows = await connection.execute(
            text(
                "SELECT event_id::text AS event_id, attempts, published_time, parked_time, "
                "lease_token, lease_expire_time, last_error, replay_count, last_replay_time "
                "FROM ingest.outbox WHERE event_id = ANY(CAST(:events AS uuid[]))"
            ),
            {"events": event_ids},
        )
        return {row.event_id: row for row in rows}


async def eventually(what: str, ready: Callable[[], Awaitable[bool]], within: float = 20) -> None:
    deadline = time.monotonic() + within
    while not await ready():
        assert time.monotonic() < deadline, f"{what}: not within {within:g} s"
        await asyncio.sleep(0.05)


async def published(engine: AsyncEngine, event_ids: list[str]) -> bool:
    rows = await outbox_rows(engine, event_ids)
    return all(rows[event].published_time is not None for event in event_ids)


async def test_two_relays_on_one_table_publish_each_event_once(
    database: PostgresUnderTest, engine: AsyncEngine
) -> None:
    events = await add_events(engine, "shared", 60)
    consumer = DriftStandIn(delay_seconds=0.01)
    second_engine = create_async_engine(database.url("ingest", "app"))
    published_by: dict[str, list[str]] = {"first": [], "second": []}
    try:
        async with serving(consumer) as channel:

            def recording(name: str) -> Callable[[OutboxEvent], Awaitable[None]]:
                publish = run_detection(channel)

                async def publish_and_record(event: OutboxEvent) -> None:
                    await publish(event)
                    published_by[name].append(event.event_id)

                return publish_and_record

            async with relaying(
                relay(engine, recording("first"), batch_size=5),
                relay(second_engine, recording("second"), batch_size=5),
            ):
                await eventually("all 60 events published", lambda: published(engine, events))
    finally:
        await second_engine.dispose()
    assert sorted(consumer.calls) == sorted(events)
    assert set(published_by["first"]).isdisjoint(published_by["second"])
    # Both relays took part, so the leases, not one relay's speed, kept them apart.
    assert published_by["first"] and published_by["second"]


async def test_a_relay_that_dies_mid_batch_leaves_its_events_to_another_after_its_lease(
    database: PostgresUnderTest, engine: AsyncEngine
) -> None:
    first, stuck, untouched = await add_events(engine, "dies", 3)
    consumer = DriftStandIn(held={stuck})
    async with serving(consumer) as channel:
        dying = asyncio.create_task(relay(engine, run_detection(channel)).relay_due())
        await eventually("the dying relay publishing its second event", _called(consumer, stuck))
        # Publishing holds no transaction: the rows it leased are not locked meanwhile.
        with psycopg.connect(schemas.libpq_url(database.admin_url)) as connection:
            lockable = connection.execute(
                "SELECT event_id FROM ingest.outbox FOR UPDATE NOWAIT"
            ).fetchall()
        assert len(lockable) == 3
        leased = await outbox_rows(engine, [first, stuck, untouched])
        lease_end = leased[stuck].lease_expire_time
        assert leased[untouched].lease_expire_time == lease_end
        dying.cancel()
        with pytest.raises(asyncio.CancelledError):
            await dying

        consumer.held.clear()
        consumer.release.set()
        survivor = relay(engine, run_detection(channel))
        assert await survivor.relay_due() == 0  # the lease still holds
        await eventually(
            "the survivor publishing the dead relay's events",
            lambda: _relayed_until_published(survivor, engine, [stuck, untouched]),
        )
    rows = await outbox_rows(engine, [first, stuck, untouched])
    assert rows[first].published_time < lease_end
    assert rows[stuck].published_time >= lease_end
    assert rows[untouched].published_time >= lease_end
    assert [consumer.calls.count(e) for e in (first, stuck, untouched)] == [1, 2, 1]
    assert all(row.lease_token is None for row in rows.values())


def _called(consumer: DriftStandIn, event_id: str) -> Callable[[], Awaitable[bool]]:
    async def called() -> bool:
        return event_id in consumer.calls

    return called


async def _relayed_until_published(
    survivor: OutboxRelay, engine: AsyncEngine, event_ids: list[str]
) -> bool:
    await survivor.relay_due()
    return await published(engine, event_ids)


async def test_a_permanent_error_parks_the_event_until_an_operator_replays_it(
    database: PostgresUnderTest, engine: AsyncEngine
) -> None:
    parked_total = {"schema": "ingest", "event_type": "UploadCompleted"}
    parked_before = REGISTRY.get_sample_value("outbox_events_parked_total", parked_total) or 0
    rejected = await add_events(engine, "rejected", 2)
    (retried,) = await add_events(engine, "retried", 1)
    consumer = DriftStandIn(
        codes={"rejected": grpc.StatusCode.UNIMPLEMENTED, "retried": grpc.StatusCode.UNAVAILABLE}
    )
    policy = RetryPolicy(
        first_backoff_seconds=0.05,
        max_backoff_seconds=0.2,
        permanent_attempts=3,
        transient_attempts=1000,
    )
    cli_env = base_env(DATABASE_URL=database.url("ingest", "app"))

    async def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "runtime.outbox", *args, "--service", "ingest"],
            cwd=REPO_ROOT,
            env=cli_env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    async def parked() -> bool:
        rows = await outbox_rows(engine, rejected)
        return all(row.parked_time is not None for row in rows.values())

    async def attempts_of_retried_beyond(attempts: int) -> bool:
        return (await outbox_rows(engine, [retried]))[retried].attempts > attempts

    async with (
        serving(consumer) as channel,
        relaying(relay(engine, run_detection(channel), policy=policy)),
    ):
        await eventually("the rejected events parked", parked)
        # The transient error keeps being retried past the permanent errors' bound, while
        # the parked events are not tried again.
        await eventually("retries beyond the bound", lambda: attempts_of_retried_beyond(6))
        assert [consumer.calls.count(e) for e in rejected] == [3, 3]
        rows = await outbox_rows(engine, [*rejected, retried])
        assert [rows[e].attempts for e in rejected] == [3, 3]
        assert all("UNIMPLEMENTED" in rows[e].last_error for e in rejected)
        assert rows[retried].parked_time is None
        assert "UNAVAILABLE" in rows[retried].last_error
        parked_after = REGISTRY.get_sample_value("outbox_events_parked_total", parked_total)
        assert parked_after == parked_before + 2
        await eventually(
            "the parked gauge",
            lambda: _gauge_is("outbox_parked_events", {"schema": "ingest"}, 2),
        )

        listing = await cli("parked")
        assert listing.returncode == 0, listing.stderr
        listed = {line.split()[0]: line for line in listing.stdout.splitlines()[1:]}
        assert sorted(listed) == sorted(rejected)
        assert all("attempts=3" in line and "UNIMPLEMENTED" in line for line in listed.values())

        consumer.codes.pop("rejected")
        replay_one = await cli("replay", rejected[0])
        assert replay_one.returncode == 0, replay_one.stderr
        await eventually("the replayed event published", lambda: published(engine, rejected[:1]))
        listing = await cli("parked")
        assert [line.split()[0] for line in listing.stdout.splitlines()[1:]] == rejected[1:]

        replay_all = await cli("replay", "all")
        assert replay_all.returncode == 0, replay_all.stderr
        await eventually("every replayed event published", lambda: published(engine, rejected))
        unknown = await cli("replay", str(uuid.uuid4()))
        assert unknown.returncode == 1
    rows = await outbox_rows(engine, rejected)
    assert [consumer.calls.count(e) for e in rejected] == [4, 4]
    for row in rows.values():
        assert (row.attempts, row.replay_count, row.parked_time) == (1, 1, None)
        assert row.last_replay_time <= row.published_time


async def _gauge_is(name: str, labels: dict[str, str], value: float) -> bool:
    return REGISTRY.get_sample_value(name, labels) == value


FIRST_BACKOFF_SECONDS = 0.25


def test_ingest_retries_while_drift_is_down_and_tells_it_once_when_it_is_back(
    database: PostgresUnderTest,
) -> None:
    customer = "outbox" + uuid.uuid4().hex[:8]
    settings = Settings.from_env("tests", {"JWT_SECRET": TEST_JWT_SECRET})
    token = mint_token(
        settings, subject=f"admin@{customer}", customer=customer, role=Role.ADMIN, ttl_seconds=600
    )
    drift_port = free_port()
    with running_service(
        "ingest",
        database.url("ingest", "app"),
        DRIFT_TARGET=f"127.0.0.1:{drift_port}",
        OUTBOX_FIRST_BACKOFF_SECONDS=str(FIRST_BACKOFF_SECONDS),
    ) as (_, ingest_target):
        with grpc.insecure_channel(ingest_target) as channel:
            upload = ingest_service_pb2_grpc.IngestServiceStub(channel).CreateUpload(
                iter(_upload_requests(customer)),
                metadata=[("authorization", f"Bearer {token}")],
                timeout=30,
            )
        upload_id = upload.name.rsplit("/", 1)[1]

        attempts: dict[int, tuple[dt.datetime, dt.datetime]] = {}

        def tried_four_times() -> bool:
            row = _outbox_row(database, customer)
            if row is not None and row["attempts"] > 0:
                assert row["published_time"] is None
                assert "UNAVAILABLE" in row["last_error"]
                attempts[row["attempts"]] = (row["last_attempt_time"], row["next_attempt_time"])
            return len(attempts) >= 4

        wait_until("four attempts to tell drift", tried_four_times, timeout=30)
        assert sorted(attempts)[:4] == [1, 2, 3, 4]
        tried = [attempts[n][0] for n in (1, 2, 3, 4)]
        backoffs = [(attempts[n][1] - attempts[n][0]).total_seconds() for n in (1, 2, 3)]
        gaps = [(later - earlier).total_seconds() for earlier, later in itertools.pairwise(tried)]
        assert backoffs == sorted(backoffs) and len(set(backoffs)) == 3
        # No retry comes before its backoff, and the waits between tries grow.
        assert all(gap >= backoff for gap, backoff in zip(gaps, backoffs, strict=True))
        assert gaps[-1] > gaps[0]

        with running_service(
            "drift",
            database.url("drift", "app"),
            port=drift_port,
            INGEST_TARGET=ingest_target,
            REPORTS_TARGET=f"127.0.0.1:{free_port()}",
        ):
            wait_until(
                "the upload's event published",
                lambda: (_outbox_row(database, customer) or {}).get("published_time") is not None,
                timeout=90,
            )
            with psycopg.connect(schemas.libpq_url(database.admin_url)) as connection:
                runs = connection.execute(
                    "SELECT request_id, trigger FROM drift.drift_runs WHERE customer_id = %s",
                    (customer,),
                ).fetchall()
    assert runs == [(upload_id, "UPLOAD")]
    row = _outbox_row(database, customer)
    assert row is not None
    assert row["payload"] == {"customer": customer, "upload_id": upload_id}
    assert (row["lease_token"], row["parked_time"]) == (None, None)


def _upload_requests(customer: str) -> list[ingest_service_pb2.CreateUploadRequest]:
    first = ingest_service_pb2.CreateUploadRequest(
        parent=f"customers/{customer}",
        request_id="outbox-test",
        upload=ingest_resources_pb2.Upload(
            file_name="claims.csv", format=ingest_resources_pb2.Upload.CSV
        ),
    )
    first.http_body.data = (
        b"claim_id,payer,procedure_code,decision_date,status,billed_amount,paid_amount\n"
        b"O1,Aetna,99213,2026-02-01,PAID,100.00,80.00\n"
    )
    return [first]


def _outbox_row(database: PostgresUnderTest, customer: str) -> dict[str, Any] | None:
    with psycopg.connect(schemas.libpq_url(database.admin_url), row_factory=dict_row) as connection:
        return connection.execute(
            "SELECT * FROM ingest.outbox WHERE customer_id = %s", (customer,)
        ).fetchone()


def test_both_services_outboxes_have_the_same_columns_and_a_valid_due_index(
    database: PostgresUnderTest,
) -> None:
    with psycopg.connect(schemas.libpq_url(database.admin_url)) as connection:

        def shape(schema: str) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
            columns = connection.execute(
                "SELECT column_name, data_type, is_nullable, column_default"
                " FROM information_schema.columns"
                " WHERE table_schema = %s AND table_name = 'outbox' ORDER BY ordinal_position",
                (schema,),
            ).fetchall()
            indexes = connection.execute(
                "SELECT c.relname, i.indisvalid, replace(pg_get_indexdef(i.indexrelid), %s, '')"
                " FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
                " WHERE i.indrelid = %s::regclass ORDER BY c.relname",
                (f"{schema}.", f"{schema}.outbox"),
            ).fetchall()
            return columns, indexes

        ingest, drift = shape("ingest"), shape("drift")
    assert ingest == drift
    assert ("outbox_due_idx", True) in [(name, valid) for name, valid, _ in ingest[1]]
