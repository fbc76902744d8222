"""`StreamClaims` over real gRPC (and REST through the real gateway) against claims uploaded
through the gateway: the claims decided in a period, in one stable order across messages and
queries, the same messages `ListClaims` returns, and never another customer's; with the
ARROW encoding, the same claims as Arrow record batches, read across keyset queries and
stopped cleanly when the reader goes away."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
import uuid
from collections.abc import Callable, Iterator

import grpc
import psycopg
import pyarrow as pa
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from runtime import schemas
from runtime.messages import date_message
from services.ingest import claims_arrow
from services.ingest.claims_arrow import SCHEMA, ArrowClaims
from services.ingest.store import CLAIMS_PER_QUERY
from tests.conftest import PostgresUnderTest
from tests.system import System
from upstream.ingest.v1 import ingest_service_pb2, ingest_service_pb2_grpc, resources_pb2

HEADER = (
    "claim_id,payer,procedure_code,service_date,submitted_date,decision_date,status,"
    "billed_amount,allowed_amount,paid_amount,patient_responsibility,carc_codes\n"
)
PAYERS = ("Cigna", "Aetna", "Humana")
FIRST_DAY = dt.date(2026, 3, 1)
DAYS = 5
# More than one query's worth, so the stream crosses both message and query boundaries.
CLAIMS_IN_PERIOD = CLAIMS_PER_QUERY + 1200


def _claim_row(claim_id: str, payer: str, decided: dt.date | None) -> str:
    if decided is None:
        return f"{claim_id},{payer},99213,2026-02-01,2026-02-02,,PENDING,90.00,,,,"
    return (
        f"{claim_id},{payer},99213,2026-02-01,2026-02-02,{decided},DENIED,120.00,0.00,0.00,"
        "0.00,CO-50"
    )


def _upload(system: System, customer: str, rows: list[str]) -> None:
    body = (HEADER + "".join(row + "\n" for row in rows)).encode()
    with system.client(customer) as client:
        response = client.post(
            f"/v1/customers/{customer}/uploads",
            content=body,
            headers={"content-type": "text/csv"},
            timeout=120,
        )
    assert response.status_code == 200, response.text
    assert int(response.json().get("rowsRejected", 0)) == 0, response.text


@pytest.fixture(scope="module")
def customers(system: System) -> tuple[str, str]:
    """A customer with claims in the period (many a day, three payers), on its edges, just
    outside it and pending; and another customer with claims of the same ids and payers."""
    acme, other = ("s" + uuid.uuid4().hex[:10] for _ in range(2))
    rows = [
        _claim_row(f"C{i}", PAYERS[i % 3], FIRST_DAY + dt.timedelta(days=i % DAYS))
        for i in range(CLAIMS_IN_PERIOD)
    ]
    rows += [
        _claim_row("BEFORE", "Aetna", FIRST_DAY - dt.timedelta(days=1)),
        _claim_row("AFTER", "Aetna", FIRST_DAY + dt.timedelta(days=DAYS)),
        _claim_row("WAITING", "Aetna", None),
    ]
    _upload(system, acme, rows)
    _upload(
        system,
        other,
        [_claim_row(f"C{i}", PAYERS[i % 3], FIRST_DAY) for i in range(50)]
        + [_claim_row("OTHER-ONLY", "Aetna", FIRST_DAY)],
    )
    return acme, other


@pytest.fixture
def stub(system: System) -> Iterator[ingest_service_pb2_grpc.IngestServiceStub]:
    with grpc.insecure_channel(system.targets["ingest"]) as channel:
        yield ingest_service_pb2_grpc.IngestServiceStub(channel)


ARROW = ingest_service_pb2.StreamClaimsRequest.ARROW


def _request(
    customer: str,
    start: dt.date | None,
    end: dt.date | None,
    payers: tuple[str, ...] = (),
    encoding: ingest_service_pb2.StreamClaimsRequest.Encoding = (
        ingest_service_pb2.StreamClaimsRequest.ENCODING_UNSPECIFIED
    ),
) -> ingest_service_pb2.StreamClaimsRequest:
    request = ingest_service_pb2.StreamClaimsRequest(
        parent=f"customers/{customer}", payers=payers, encoding=encoding
    )
    if start is not None:
        request.start_date.CopyFrom(date_message(start))
    if end is not None:
        request.end_date.CopyFrom(date_message(end))
    return request


def _messages(
    system: System,
    stub: ingest_service_pb2_grpc.IngestServiceStub,
    request: ingest_service_pb2.StreamClaimsRequest,
    token_customer: str | None = None,
) -> list[ingest_service_pb2.StreamClaimsResponse]:
    customer = token_customer or request.parent.removeprefix("customers/")
    token = system.token(customer, "viewer")
    return list(
        stub.StreamClaims(request, metadata=[("authorization", f"Bearer {token}")], timeout=120)
    )


def _claims(messages: list[ingest_service_pb2.StreamClaimsResponse]) -> list[resources_pb2.Claim]:
    return [claim for message in messages for claim in message.claims]


def _day(claim: resources_pb2.Claim) -> dt.date:
    return dt.date(claim.decision_date.year, claim.decision_date.month, claim.decision_date.day)


def _field_violations(error: grpc.RpcError) -> list[str]:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    bad_request = error_details_pb2.BadRequest()
    next(d for d in status.details if d.Is(bad_request.DESCRIPTOR)).Unpack(bad_request)
    return [violation.field for violation in bad_request.field_violations]


def test_the_period_streams_in_one_stable_order_across_messages_and_queries(
    system: System, stub: ingest_service_pb2_grpc.IngestServiceStub, customers: tuple[str, str]
) -> None:
    acme, _ = customers
    last_day = FIRST_DAY + dt.timedelta(days=DAYS - 1)
    messages = _messages(system, stub, _request(acme, FIRST_DAY, last_day))
    claims = _claims(messages)

    assert len(messages) > CLAIMS_PER_QUERY // 1000
    assert all(0 < len(message.claims) <= 1000 for message in messages)
    assert sorted(claim.claim_id for claim in claims) == sorted(
        f"C{i}" for i in range(CLAIMS_IN_PERIOD)
    )
    order = [(_day(claim), claim.name) for claim in claims]
    assert order == sorted(order)
    # A second read gives the same claims in the same order.
    assert [
        claim.name
        for claim in _claims(_messages(system, stub, _request(acme, FIRST_DAY, last_day)))
    ] == [claim.name for claim in claims]


def test_streamed_claims_are_the_claims_list_claims_returns(
    system: System, stub: ingest_service_pb2_grpc.IngestServiceStub, customers: tuple[str, str]
) -> None:
    acme, _ = customers
    streamed = _claims(_messages(system, stub, _request(acme, FIRST_DAY, FIRST_DAY)))
    listed = stub.ListClaims(
        ingest_service_pb2.ListClaimsRequest(
            parent=f"customers/{acme}",
            filter=f'decision_date = "{FIRST_DAY}" AND payer = "Aetna"',
            page_size=1000,
        ),
        metadata=[("authorization", f"Bearer {system.token(acme, 'viewer')}")],
        timeout=30,
    ).claims

    by_name = {claim.name: claim for claim in streamed}
    # Aetna's claims of the first day: every 15th, from C10.
    assert len(listed) == len(range(10, CLAIMS_IN_PERIOD, 15))
    assert all(by_name[claim.name] == claim for claim in listed)
    aetna = listed[0]
    assert (aetna.status, aetna.billed_amount.units, aetna.adjustments[0].reason_code) == (
        resources_pb2.Claim.DENIED,
        120,
        "50",
    )


def test_claims_listed_by_a_decision_date_range_are_those_decided_in_it_never_pending(
    system: System, stub: ingest_service_pb2_grpc.IngestServiceStub, customers: tuple[str, str]
) -> None:
    acme, _ = customers
    last_day = FIRST_DAY + dt.timedelta(days=DAYS - 1)

    def listed(condition: str) -> list[str]:
        return [
            claim.claim_id
            for claim in stub.ListClaims(
                ingest_service_pb2.ListClaimsRequest(
                    parent=f"customers/{acme}", filter=condition, page_size=1000
                ),
                metadata=[("authorization", f"Bearer {system.token(acme, 'viewer')}")],
                timeout=30,
            ).claims
        ]

    # A pending claim sorts as the lowest date in the listing, yet is decided on no date.
    assert listed(f'decision_date < "{FIRST_DAY}"') == ["BEFORE"]
    assert listed(f'decision_date > "{last_day}"') == ["AFTER"]
    assert listed(f'decision_date <= "{FIRST_DAY - dt.timedelta(days=1)}" OR claim_id = "X"') == [
        "BEFORE"
    ]
    assert sorted(listed(f'decision_date = "{last_day}" AND payer = "Cigna"')) == sorted(
        f"C{i}" for i in range(CLAIMS_IN_PERIOD) if i % DAYS == DAYS - 1 and i % 3 == 0
    )
    assert "WAITING" not in listed(f'decision_date != "{FIRST_DAY}"')
    assert listed('claim_id = "WAITING"') == ["WAITING"]


def test_a_range_of_decision_dates_is_read_in_its_order_from_an_index_never_sorted(
    postgres: PostgresUnderTest, customers: tuple[str, str]
) -> None:
    """The claims export's keyset queries: however many claims the customer has, each query
    reads its page in order from the decision order's index and stops there."""
    acme, _ = customers
    queries = [
        claims_arrow.query(acme, None, FIRST_DAY, FIRST_DAY + dt.timedelta(days=DAYS), None),
        claims_arrow.query(acme, None, FIRST_DAY, FIRST_DAY, (FIRST_DAY, "0" * 20)),
    ]
    with psycopg.connect(schemas.libpq_url(postgres.admin_url), autocommit=True) as admin:
        # Whatever the few test rows make cheapest, a plan that needs a sort is refused.
        for setting in ("enable_seqscan", "enable_bitmapscan", "enable_sort"):
            admin.execute(f"SET {setting} = off")
        plans = ["\n".join(row[0] for row in admin.execute(f"EXPLAIN {q}")) for q in queries]

    for plan in plans:
        assert "claims_decision_order_idx" in plan, plan
        assert "Sort" not in plan, plan


def test_period_boundaries_are_inclusive_and_pending_claims_are_never_streamed(
    system: System, stub: ingest_service_pb2_grpc.IngestServiceStub, customers: tuple[str, str]
) -> None:
    acme, _ = customers
    before, after = FIRST_DAY - dt.timedelta(days=1), FIRST_DAY + dt.timedelta(days=DAYS)

    edges = _claims(_messages(system, stub, _request(acme, before, before, ("Aetna",))))
    last = _claims(_messages(system, stub, _request(acme, after, after)))
    one_day = _claims(_messages(system, stub, _request(acme, FIRST_DAY, FIRST_DAY)))
    everything = _claims(_messages(system, stub, _request(acme, dt.date(2000, 1, 1), after)))

    assert [claim.claim_id for claim in edges] == ["BEFORE"]
    assert [claim.claim_id for claim in last] == ["AFTER"]
    assert {_day(claim) for claim in one_day} == {FIRST_DAY}
    assert len(one_day) == len(range(0, CLAIMS_IN_PERIOD, DAYS))
    assert len(everything) == CLAIMS_IN_PERIOD + 2
    assert "WAITING" not in {claim.claim_id for claim in everything}


def test_named_payers_stream_payer_by_payer_each_by_decision_date(
    system: System, stub: ingest_service_pb2_grpc.IngestServiceStub, customers: tuple[str, str]
) -> None:
    acme, _ = customers
    last_day = FIRST_DAY + dt.timedelta(days=DAYS - 1)
    claims = _claims(
        _messages(system, stub, _request(acme, FIRST_DAY, last_day, ("Humana", "Aetna", "No Such")))
    )

    payers = [claim.payer for claim in claims]
    assert payers == sorted(payers) and set(payers) == {"Aetna", "Humana"}
    assert len(claims) == sum(1 for i in range(CLAIMS_IN_PERIOD) if PAYERS[i % 3] != "Cigna")
    order = [(claim.payer, _day(claim), claim.name) for claim in claims]
    assert order == sorted(order)


def test_another_customers_claims_are_never_streamed(
    system: System, stub: ingest_service_pb2_grpc.IngestServiceStub, customers: tuple[str, str]
) -> None:
    acme, other = customers
    mine = _claims(_messages(system, stub, _request(acme, FIRST_DAY, FIRST_DAY, ("Aetna",))))
    theirs = _claims(_messages(system, stub, _request(other, FIRST_DAY, FIRST_DAY)))

    assert {claim.name.split("/")[1] for claim in mine} == {acme}
    assert "OTHER-ONLY" not in {claim.claim_id for claim in mine}
    assert {claim.name.split("/")[1] for claim in theirs} == {other}
    assert len(theirs) == 51
    with pytest.raises(grpc.RpcError) as refused:
        _messages(system, stub, _request(other, FIRST_DAY, FIRST_DAY), token_customer=acme)
    assert refused.value.code() == grpc.StatusCode.NOT_FOUND  # type: ignore[attr-defined]


def test_a_period_without_claims_streams_nothing(
    system: System, stub: ingest_service_pb2_grpc.IngestServiceStub, customers: tuple[str, str]
) -> None:
    acme, _ = customers
    empty = _messages(system, stub, _request(acme, dt.date(2020, 1, 1), dt.date(2020, 12, 31)))
    unknown_payer = _messages(system, stub, _request(acme, FIRST_DAY, FIRST_DAY, ("No Such",)))
    assert (empty, unknown_payer) == ([], [])


@pytest.mark.parametrize(
    ("start", "end", "field"),
    [
        (FIRST_DAY, FIRST_DAY - dt.timedelta(days=1), "end_date"),
        (None, FIRST_DAY, "start_date"),
        (FIRST_DAY, None, "end_date"),
    ],
)
def test_a_bad_range_is_invalid_argument_naming_the_field(
    system: System,
    stub: ingest_service_pb2_grpc.IngestServiceStub,
    customers: tuple[str, str],
    start: dt.date | None,
    end: dt.date | None,
    field: str,
) -> None:
    acme, _ = customers
    with pytest.raises(grpc.RpcError) as refused:
        _messages(system, stub, _request(acme, start, end))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    assert field in _field_violations(refused.value)


def test_rest_readers_get_one_message_a_line_through_the_gateway(
    system: System, customers: tuple[str, str]
) -> None:
    acme, _ = customers
    with system.client(acme, "viewer") as client:
        streamed = client.get(
            f"/v1/customers/{acme}/claims:stream",
            params={
                "startDate": FIRST_DAY.isoformat(),
                "endDate": FIRST_DAY.isoformat(),
                "payers": "Humana",
            },
        )
        backwards = client.get(
            f"/v1/customers/{acme}/claims:stream",
            params={"startDate": FIRST_DAY.isoformat(), "endDate": "2026-02-01"},
        )
    assert streamed.status_code == 200, streamed.text
    lines = streamed.text.splitlines()
    claims = [claim for line in lines for claim in json.loads(line)["result"]["claims"]]
    assert {claim["payer"] for claim in claims} == {"Humana"}
    assert {claim["decisionDate"]["day"] for claim in claims} == {FIRST_DAY.day}
    assert len(claims) == sum(
        1 for i in range(0, CLAIMS_IN_PERIOD, DAYS) if PAYERS[i % 3] == "Humana"
    )
    assert backwards.status_code == 400


# --- The ARROW encoding ------------------------------------------------------------------------


async def wait_for_value(read: Callable[[], int], wanted: int, seconds: float) -> int:
    """`read()` once it gives `wanted`, or its last value after `seconds`."""
    deadline = time.monotonic() + seconds
    value = read()
    while value != wanted and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        value = read()
    return value


def _batch(message: ingest_service_pb2.StreamClaimsResponse) -> pa.RecordBatch:
    reader = pa.ipc.open_stream(message.arrow_record_batch)
    batch = reader.read_next_batch()
    with pytest.raises(StopIteration):
        reader.read_next_batch()
    return batch


def _arrow_rows(batches: list[pa.RecordBatch]) -> list[dict[str, object]]:
    """Rows of the batches with unset text as empty text, as a message shows it."""
    return [
        {key: "" if value is None and SCHEMA.field(key).type == pa.string() else value
         for key, value in row.items()}
        for batch in batches
        for row in batch.to_pylist()
    ]  # fmt: skip


def _cents(claim: resources_pb2.Claim, field: str) -> int | None:
    if not claim.HasField(field):
        return None
    money = getattr(claim, field)
    return int(money.units * 100 + money.nanos // 10_000_000)


def _date(value: object) -> dt.date | None:
    year, month, day = (getattr(value, part) for part in ("year", "month", "day"))
    return dt.date(year, month, day) if year else None


def _as_arrow_row(claim: resources_pb2.Claim) -> dict[str, object]:
    """A Claim message as the row the ARROW encoding documents for it."""
    return {
        "claim_uid": claim.name.rsplit("/", 1)[1],
        "claim_id": claim.claim_id,
        "payer": claim.payer,
        "payer_raw_name": claim.payer_raw_name,
        "payer_raw_id": claim.payer_raw_id,
        "status": resources_pb2.Claim.Status.Name(claim.status),
        "denied": claim.denied,
        "partially_denied": claim.partially_denied,
        "procedure_codes": list(claim.procedure_codes),
        "code_group": claim.code_group,
        "service_date": _date(claim.service_date),
        "submitted_date": _date(claim.submitted_date),
        "decision_date": _date(claim.decision_date),
        "billed_cents": _cents(claim, "billed_amount"),
        "allowed_cents": _cents(claim, "allowed_amount"),
        "paid_cents": _cents(claim, "paid_amount"),
        "patient_responsibility_cents": _cents(claim, "patient_responsibility"),
        "adjustments": [
            {
                "group_code": a.group_code,
                "reason_code": a.reason_code,
                "amount_cents": a.amount.units * 100 + a.amount.nanos // 10_000_000,
                "line_number": a.line_number,
            }
            for a in claim.adjustments
        ],
        "payer_claim_control_number": claim.payer_claim_control_number,
        "upload_id": claim.upload.rsplit("/", 1)[1],
        "update_time": claim.update_time.ToDatetime(dt.UTC),
    }


@pytest.mark.parametrize("payers", [(), ("Humana", "Aetna", "No Such")])
def test_arrow_batches_carry_the_claims_the_messages_carry_in_the_same_order(
    system: System,
    stub: ingest_service_pb2_grpc.IngestServiceStub,
    customers: tuple[str, str],
    payers: tuple[str, ...],
) -> None:
    acme, _ = customers
    last_day = FIRST_DAY + dt.timedelta(days=DAYS - 1)
    messages = _claims(_messages(system, stub, _request(acme, FIRST_DAY, last_day, payers)))
    arrow = _messages(system, stub, _request(acme, FIRST_DAY, last_day, payers, ARROW))
    batches = [_batch(message) for message in arrow]

    assert all(not message.claims for message in arrow)
    assert all(batch.schema == SCHEMA for batch in batches)
    # Each message is about a megabyte at most, far under gRPC's 4 MiB limit.
    assert all(len(message.arrow_record_batch) < 2 * 1024 * 1024 for message in arrow)
    assert _arrow_rows(batches) == [_as_arrow_row(claim) for claim in messages]


def test_arrow_batches_never_carry_another_customers_claims_and_an_empty_period_has_none(
    system: System, stub: ingest_service_pb2_grpc.IngestServiceStub, customers: tuple[str, str]
) -> None:
    acme, other = customers
    theirs = _messages(system, stub, _request(other, FIRST_DAY, FIRST_DAY, (), ARROW))
    empty = _messages(
        system, stub, _request(acme, dt.date(2020, 1, 1), dt.date(2020, 1, 2), (), ARROW)
    )

    rows = _arrow_rows([_batch(message) for message in theirs])
    assert len(rows) == 51 and "OTHER-ONLY" in {row["claim_id"] for row in rows}
    assert empty == []


async def _read_arrow(
    reader: ArrowClaims, customer: str, payers: tuple[str, ...], start: dt.date, end: dt.date
) -> list[pa.RecordBatch]:
    return [
        pa.ipc.open_stream(message).read_next_batch()
        async for message in reader.stream(customer, payers, start, end)
    ]


async def test_arrow_reads_cross_keyset_queries_without_losing_or_repeating_a_claim(
    postgres: PostgresUnderTest, customers: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    acme, _ = customers
    # Queries of 700 claims: the 5 days' claims take several, and a query ends mid-day.
    monkeypatch.setattr(claims_arrow, "CLAIMS_PER_QUERY", 700)
    reader = ArrowClaims(postgres.url("ingest"), application_name="upstream-ingest-test")
    last_day = FIRST_DAY + dt.timedelta(days=DAYS - 1)

    rows = _arrow_rows(await _read_arrow(reader, acme, (), FIRST_DAY, last_day))
    aetna = _arrow_rows(await _read_arrow(reader, acme, ("Aetna",), FIRST_DAY, last_day))

    assert sorted(row["claim_id"] for row in rows) == sorted(
        f"C{i}" for i in range(CLAIMS_IN_PERIOD)
    )
    order = [(row["decision_date"], row["claim_uid"]) for row in rows]
    assert order == sorted(order)
    assert len(aetna) == sum(1 for i in range(CLAIMS_IN_PERIOD) if PAYERS[i % 3] == "Aetna")


async def test_arrow_filters_are_values_never_sql(
    postgres: PostgresUnderTest, customers: tuple[str, str]
) -> None:
    acme, _ = customers
    reader = ArrowClaims(postgres.url("ingest"), application_name="upstream-ingest-test")
    hostile = ("Aetna' OR '1'='1", 'Aetna"); DROP TABLE ingest.claims; --', "O'Brien Health")

    injected = await _read_arrow(reader, acme, hostile, FIRST_DAY, FIRST_DAY)
    foreign = await _read_arrow(reader, f"{acme}' OR 'x'='x", (), FIRST_DAY, FIRST_DAY)
    still_there = await _read_arrow(reader, acme, ("Aetna",), FIRST_DAY, FIRST_DAY)

    assert (injected, foreign) == ([], [])
    assert sum(batch.num_rows for batch in still_there) == len(range(10, CLAIMS_IN_PERIOD, 15))


async def test_a_reader_that_stops_midway_leaves_no_query_or_connection_behind(
    postgres: PostgresUnderTest, customers: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    acme, _ = customers
    monkeypatch.setattr(claims_arrow, "MESSAGE_BYTES", 16 * 1024)
    name = f"upstream-ingest-test-{uuid.uuid4().hex[:8]}"
    reader = ArrowClaims(postgres.url("ingest"), application_name=name)
    stream = reader.stream(acme, (), FIRST_DAY, FIRST_DAY + dt.timedelta(days=DAYS - 1))

    first = await anext(stream)
    with psycopg.connect(schemas.libpq_url(postgres.admin_url), autocommit=True) as admin:

        def connections() -> int:
            found = admin.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (name,)
            ).fetchone()
            return int(found[0]) if found else 0

        during = connections()
        await stream.aclose()
        # The server ends the session as soon as it reads the close: moments, not seconds.
        after = await wait_for_value(connections, 0, seconds=10)

    assert pa.ipc.open_stream(first).read_next_batch().num_rows > 0
    assert (during, after) == (1, 0)
