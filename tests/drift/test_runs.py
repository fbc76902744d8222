"""A detection run as a use case (services/drift/runs.py), called in this process without
drift's gRPC server: it reads a real ingest process over gRPC and writes the real drift
schema, in a database of this module's own (the session's running drift would take its
queued runs otherwise)."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass

import grpc
import psycopg
import pytest
from prometheus_client import REGISTRY
from psycopg import sql
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import create_async_engine

from runtime.auth import Role, mint_token, service_token
from runtime.clients import open_channel
from runtime.messages import python_date
from runtime.ordering import parse_order_by
from runtime.schemas import libpq_url
from runtime.settings import Settings
from services.drift.ingest_client import IngestClient
from services.drift.kept_summaries import KeptSummaries
from services.drift.runs import DetectionRuns
from services.drift.store import EVENT_ORDERS, SUMMARY_ORDERS, DriftStore
from tests.conftest import PostgresUnderTest, own_database
from tests.drift.test_detection_api import DRIFTED_PAYER, history_csv
from tests.system import TEST_JWT_SECRET, running_service
from upstream.drift.v1 import resources_pb2 as drift_resources_pb2
from upstream.ingest.v1 import ingest_service_pb2, ingest_service_pb2_grpc, resources_pb2

SETTINGS = Settings.from_env("drift", {"JWT_SECRET": TEST_JWT_SECRET})


@pytest.fixture(scope="module")
def database(postgres: PostgresUnderTest) -> Iterator[PostgresUnderTest]:
    with own_database(postgres, ("ingest", "drift")) as database:
        yield database


@pytest.fixture(scope="module")
def ingest_target(database: PostgresUnderTest) -> Iterator[str]:
    # Nothing listens on DRIFT_TARGET: ingest's outbox only retries; the test runs drift itself.
    with running_service("ingest", database.url("ingest"), DRIFT_TARGET="127.0.0.1:9") as (
        _,
        target,
    ):
        yield target


def _admin(customer: str) -> list[tuple[str, str]]:
    token = mint_token(
        SETTINGS, subject=f"admin@{customer}", customer=customer, role=Role.ADMIN, ttl_seconds=600
    )
    return [("authorization", f"Bearer {token}")]


def _upload(target: str, customer: str) -> str:
    """The name of the upload of `history_csv(customer)`."""
    body = history_csv(customer)
    requests = [
        ingest_service_pb2.CreateUploadRequest(
            parent=f"customers/{customer}", upload=resources_pb2.Upload(file_name="history.csv")
        ),
        *(
            ingest_service_pb2.CreateUploadRequest(http_body={"data": body[at : at + (1 << 20)]})
            for at in range(0, len(body), 1 << 20)
        ),
    ]
    with grpc.insecure_channel(target) as channel:
        upload = ingest_service_pb2_grpc.IngestServiceStub(channel).CreateUpload(
            iter(requests), metadata=_admin(customer), timeout=120
        )
    assert upload.state == resources_pb2.Upload.SUCCEEDED
    return str(upload.name)


def _delete(target: str, upload: str) -> None:
    customer = upload.split("/")[1]
    with grpc.insecure_channel(target) as channel:
        ingest_service_pb2_grpc.IngestServiceStub(channel).DeleteUpload(
            ingest_service_pb2.DeleteUploadRequest(name=upload),
            metadata=_admin(customer),
            timeout=60,
        )


@dataclass
class DriftParts:
    runs: DetectionRuns
    ingest: IngestClient
    store: DriftStore
    summaries: KeptSummaries


@pytest.fixture
async def drift(database: PostgresUnderTest, ingest_target: str) -> AsyncIterator[DriftParts]:
    """Drift's use case, store and ingest client, as drift's server builds them."""
    engine = create_async_engine(database.url("drift"))
    channel = open_channel(
        ingest_target,
        "upstream.ingest.v1.IngestService",
        default_timeout=30,
        authorization=lambda: f"Bearer {service_token(SETTINGS)}",
    )
    store, ingest = DriftStore(engine), IngestClient(channel)
    try:
        summaries = KeptSummaries(store, ingest)
        yield DriftParts(
            DetectionRuns(store, ingest, asyncio.Event(), summaries), ingest, store, summaries
        )
    finally:
        await channel.close()
        await engine.dispose()


async def test_a_requested_run_reads_ingest_detects_and_records_the_drift(
    ingest_target: str, drift: DriftParts
) -> None:
    customer = "runs" + uuid.uuid4().hex[:8]
    await asyncio.to_thread(_upload, ingest_target, customer)

    run = await drift.runs.request(
        customer, as_of=None, request_id="after-history", trigger="MANUAL", creator="test"
    )
    again = await drift.runs.request(
        customer, as_of=None, request_id="after-history", trigger="MANUAL", creator="test"
    )
    assert run.state == "PENDING" and again.run_id == run.run_id
    # Without as_of, a run analyses up to the customer's last decision.
    assert run.as_of == await drift.ingest.latest_decision_date(customer)
    assert await drift.runs.run_next()
    assert not await drift.runs.run_next()  # nothing else queued

    done = await drift.store.get_run(customer, run.run_id)
    assert done is not None and done.state == "SUCCEEDED", done
    newest = parse_order_by("", EVENT_ORDERS, "last_seen_time desc")
    events = await drift.store.list_events(customer, "active = true", newest, 100, None)
    denials = {e.payer for e in events if e.metric == "DENIAL_RATE"}
    assert denials == {DRIFTED_PAYER}, [(e.payer, e.code_group, e.metric) for e in events]
    assert done.events_created == len(events)

    # The run left the payer summaries kept for the data it read.
    kept = await drift.store.summary_set(customer)
    assert kept is not None
    assert kept.data_etag == (await drift.ingest.data_state(customer)).etag
    most_claims = parse_order_by("", SUMMARY_ORDERS, "current.claims desc")
    listed = await drift.store.list_summaries(customer, "", most_claims, 0, 100)
    open_events = {summary_payer(row.message): row.open_event_count for row in listed}
    assert open_events[DRIFTED_PAYER] == sum(e.payer == DRIFTED_PAYER for e in events)


async def test_the_cells_with_claims_of_more_payers_than_one_request_names_are_all_found(
    ingest_target: str, drift: DriftParts
) -> None:
    """A run looks for the claims of its open events' cells in their payers' whole history:
    asked of 1,200 payers (more than ingest takes in one request), the customer's own are
    found among them, and none of the others."""
    customer = "cells" + uuid.uuid4().hex[:8]
    await asyncio.to_thread(_upload, ingest_target, customer)
    payers = {f"Payer {n:04d}" for n in range(1_199)} | {DRIFTED_PAYER}

    found = await drift.ingest.cells_with_claims(customer, payers)
    stranger = await drift.ingest.cells_with_claims("x" + customer, payers)

    assert {payer for payer, _ in found} == {DRIFTED_PAYER}
    assert {group for _, group in found} >= {"EVALUATION_MANAGEMENT", "LABORATORY"}
    assert stranger == set()


def summary_payer(message: bytes) -> str:
    return drift_resources_pb2.PayerSummary.FromString(message).payer


async def test_payer_summaries_are_kept_until_the_data_or_the_settings_change(
    ingest_target: str, drift: DriftParts
) -> None:
    customer = "kept" + uuid.uuid4().hex[:8]
    # Before any upload: an empty set, kept too.
    assert await drift.summaries.refresh(customer)
    assert not await drift.summaries.refresh(customer)
    upload = await asyncio.to_thread(_upload, ingest_target, customer)
    most_claims = parse_order_by("", SUMMARY_ORDERS, "current.claims desc")
    assert await drift.store.list_summaries(customer, "", most_claims, 0, 100) == []

    assert await drift.summaries.refresh(customer)  # the upload changed the data
    payers = [
        summary_payer(row.message)
        for row in await drift.store.list_summaries(customer, "", most_claims, 0, 100)
    ]
    assert DRIFTED_PAYER in payers
    assert not await drift.summaries.refresh(customer)  # nothing changed: kept

    stored = await drift.store.get_config(customer)
    changed = dataclasses.replace(
        stored.config, current_window_days=stored.config.current_window_days + 7
    )
    assert await drift.store.put_config(customer, changed, "test", stored.etag)
    assert await drift.summaries.refresh(customer)  # other windows
    kept = await drift.store.list_summaries(
        customer, f'payer = "{DRIFTED_PAYER}"', most_claims, 0, 1
    )
    window = drift_resources_pb2.PayerSummary.FromString(kept[0].message).current_window
    assert (
        python_date(window.end_date, "end") - python_date(window.start_date, "start")
    ).days + 1 == (changed.current_window_days)

    await asyncio.to_thread(_delete, ingest_target, upload)
    assert await drift.summaries.refresh(customer)  # the deletion changed the data
    assert await drift.store.list_summaries(customer, "", most_claims, 0, 100) == []


async def test_a_page_of_summaries_is_read_up_to_date_and_an_empty_page_computes_nothing(
    ingest_target: str, drift: DriftParts
) -> None:
    customer = "page" + uuid.uuid4().hex[:8]
    most_claims = parse_order_by("", SUMMARY_ORDERS, "current.claims desc")

    def page(filter_text: str) -> Callable[[tuple[str, str] | None], Awaitable[list[Row]]]:
        return lambda kept_for: drift.store.list_summaries(
            customer, filter_text, most_claims, 0, 100, kept_for
        )

    assert await drift.summaries.read(customer, page("")) == []  # no data yet
    upload = await asyncio.to_thread(_upload, ingest_target, customer)
    # The upload's payers, computed for this read: it does not show the summaries kept
    # before it.
    payers = [summary_payer(row.message) for row in await drift.summaries.read(customer, page(""))]
    assert DRIFTED_PAYER in payers
    kept = await drift.store.summary_set(customer)
    assert kept is not None
    # Summaries of another state of the data or settings are not read as this one's.
    assert (
        await drift.store.list_summaries(
            customer, "", most_claims, 0, 100, (kept.data_etag, "another settings etag")
        )
        == []
    )
    # A filter that matches no payer of current summaries is an empty page, not a reason
    # to compute them again.
    assert await drift.summaries.read(customer, page('payer = "No Such Payer"')) == []
    again = await drift.store.summary_set(customer)
    assert again is not None and again.compute_time == kept.compute_time

    await asyncio.to_thread(_delete, ingest_target, upload)
    assert await drift.summaries.read(customer, page("")) == []  # the deletion's


async def test_runs_no_worker_has_taken_are_counted_with_how_long_the_oldest_waited(
    database: PostgresUnderTest, drift: DriftParts
) -> None:
    """What the metrics tell an SRE of runs waiting for a worker (none is running here): how
    many, and how long the oldest has waited; none once a worker has taken them."""
    customer = "runs" + uuid.uuid4().hex[:8]
    asked = [
        await drift.runs.request(
            customer, as_of=dt.date(2026, month, 1), request_id=None, trigger="MANUAL",
            creator="test",
        )
        for month in (1, 2)
    ]  # fmt: skip
    # The first was asked for ten minutes ago, as if no worker had been there since.
    with psycopg.connect(libpq_url(database.admin_url), autocommit=True) as connection:
        connection.execute(
            "UPDATE drift.drift_runs SET create_time = now() - interval '10 minutes' "
            "WHERE run_id = %s",
            (asked[0].run_id,),
        )
    await drift.runs.count_waiting()
    waiting = REGISTRY.get_sample_value("drift_runs_waiting")
    oldest = REGISTRY.get_sample_value("drift_run_oldest_waiting_age_seconds")

    assert waiting == 2
    assert oldest is not None and 600 <= oldest < 700
    while await drift.runs.run_next():
        pass
    assert REGISTRY.get_sample_value("drift_runs_waiting") == 0
    assert REGISTRY.get_sample_value("drift_run_oldest_waiting_age_seconds") == 0
    for run in asked:
        done = await drift.store.get_run(customer, run.run_id)
        assert done is not None and done.state == "SUCCEEDED", done


async def test_a_run_failed_by_the_database_keeps_no_value_in_its_error(
    database: PostgresUnderTest, ingest_target: str, drift: DriftParts
) -> None:
    """A run's error is shown to the customer: a database error is given by its shape, never
    by the DETAIL or parameters that quote the refused row."""
    customer = "runs" + uuid.uuid4().hex[:8]
    await asyncio.to_thread(_upload, ingest_target, customer)
    # This customer's events are refused, as a constraint a later migration adds could.
    with psycopg.connect(libpq_url(database.admin_url), autocommit=True) as connection:
        connection.execute(
            sql.SQL(
                "ALTER TABLE drift.drift_events ADD CONSTRAINT {} "
                "CHECK (customer_id <> {}) NOT VALID"
            ).format(sql.Identifier(f"refuse_{uuid.uuid4().hex[:8]}"), sql.Literal(customer))
        )
    run = await drift.runs.request(
        customer, as_of=None, request_id=None, trigger="MANUAL", creator="test"
    )
    assert await drift.runs.run_next()

    failed = await drift.store.get_run(customer, run.run_id)
    assert failed is not None and failed.state == "FAILED", failed
    message = failed.error["message"]
    assert "CheckViolation" in message and "SQLSTATE 23514" in message, message
    for leaked in (customer, DRIFTED_PAYER, "DETAIL", "Failing row", "[parameters:"):
        assert leaked not in message, message
