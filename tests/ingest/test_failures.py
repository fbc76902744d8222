"""Uploads under failure and hostile input: nothing half-done, nothing doubled, no 5xx."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import grpc
import httpx
import psycopg
import pytest

from devtools.stack import wait_until
from runtime import schemas
from runtime.auth import Role, mint_token
from runtime.settings import REPO_ROOT, Settings
from tests.conftest import PostgresUnderTest
from tests.fixtures import X12_835_FIXTURES
from tests.system import TEST_JWT_SECRET, System, running_service, service_logging_to
from upstream.ingest.v1 import ingest_service_pb2, ingest_service_pb2_grpc, resources_pb2

FIXTURES = X12_835_FIXTURES
ROUNDS_GIVEN_UP = 16
HEADER = b"claim_id,payer,procedure_code,decision_date,status,billed_amount,paid_amount\n"


def _count(postgres: PostgresUnderTest, table: str, customer: str) -> int:
    with psycopg.connect(schemas.libpq_url(postgres.admin_url)) as connection:
        row = connection.execute(
            f"SELECT count(*) FROM ingest.{table} WHERE customer_id = %s", (customer,)
        ).fetchone()
    return int(row[0]) if row else 0


def _token(customer: str) -> str:
    settings = Settings.from_env("tests", {"JWT_SECRET": TEST_JWT_SECRET})
    return mint_token(
        settings, subject=f"admin@{customer}", customer=customer, role=Role.ADMIN, ttl_seconds=600
    )


def _requests(
    customer: str, key: str, chunks: Iterator[bytes]
) -> Iterator[ingest_service_pb2.CreateUploadRequest]:
    yield ingest_service_pb2.CreateUploadRequest(
        parent=f"customers/{customer}",
        request_id=key,
        upload=resources_pb2.Upload(file_name="big.csv", format=resources_pb2.Upload.CSV),
    )
    for chunk in chunks:
        request = ingest_service_pb2.CreateUploadRequest()
        request.http_body.data = chunk
        yield request


def _rows(start: int, count: int) -> bytes:
    return b"".join(
        f"K{i},Aetna,99213,2026-03-{1 + i % 28:02d},PAID,100.00,80.00\n".encode()
        for i in range(start, start + count)
    )


def _claim_lines(start: int, count: int) -> bytes:
    """Rows of a line-level export of 15,000 claims of two lines each, a claim's second line
    15,000 rows after its first (in other chunks and merge batches)."""
    return b"".join(
        f"L{i % 15_000},Aetna,99213,2026-03-{1 + i % 28:02d},PAID,100.00,80.00\n".encode()
        for i in range(start, start + count)
    )


def _paid_cents(postgres: PostgresUnderTest, customer: str) -> int:
    with psycopg.connect(schemas.libpq_url(postgres.admin_url)) as connection:
        row = connection.execute(
            "SELECT coalesce(sum(paid_cents), 0) FROM ingest.claims WHERE customer_id = %s",
            (customer,),
        ).fetchone()
    return int(row[0]) if row else 0


def _rows_being_copied(postgres: PostgresUnderTest) -> int:
    """Rows ingest's open COPY into ingest.claims has taken in. They are uncommitted, so
    only PostgreSQL's progress view shows them."""
    with psycopg.connect(schemas.libpq_url(postgres.admin_url)) as connection:
        row = connection.execute(
            "SELECT coalesce(sum(copy.tuples_processed), 0) FROM pg_stat_progress_copy copy"
            " JOIN pg_stat_activity activity USING (pid)"
            " WHERE activity.application_name = 'upstream-ingest'"
            " AND copy.datname = current_database()"
            " AND copy.relid = 'ingest.claims'::regclass"
        ).fetchone()
    return int(row[0]) if row else 0


@pytest.mark.parametrize(("rows", "claims"), [(_rows, 30_000), (_claim_lines, 15_000)])
def test_killing_ingest_mid_upload_leaves_nothing_and_a_retry_succeeds_once(
    postgres: PostgresUnderTest, rows: Callable[[int, int], bytes], claims: int
) -> None:
    """Whether each row is a claim or the rows are lines of claims lying apart."""
    customer = "kill" + uuid.uuid4().hex[:8]
    metadata = [("authorization", f"Bearer {_token(customer)}")]
    killed = threading.Event()

    def stalled_file() -> Iterator[bytes]:
        """A file whose sender stops half-way and waits until the server is killed."""
        yield HEADER
        for batch in range(20):
            yield rows(batch * 1000, 1000)
        killed.wait(60)

    with (
        running_service("ingest", postgres.url("ingest", "app")) as (process, target),
        grpc.insecure_channel(target) as channel,
    ):
        stub = ingest_service_pb2_grpc.IngestServiceStub(channel)
        call = stub.CreateUpload.future(
            _requests(customer, "kill-key", stalled_file()), metadata=metadata, timeout=120
        )
        try:
            wait_until(
                "the upload's rows in PostgreSQL",
                lambda: _rows_being_copied(postgres) > 0,
                timeout=30,
            )
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
        finally:
            killed.set()
        with pytest.raises(grpc.RpcError) as failed:
            call.result(timeout=30)
    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
    assert _count(postgres, "uploads", customer) == 0
    assert _count(postgres, "claims", customer) == 0
    assert _count(postgres, "outbox", customer) == 0

    def whole_file() -> Iterator[bytes]:
        yield HEADER
        for batch in range(30):
            yield rows(batch * 1000, 1000)

    with (
        running_service("ingest", postgres.url("ingest", "app")) as (_, target),
        grpc.insecure_channel(target) as channel,
    ):
        stub = ingest_service_pb2_grpc.IngestServiceStub(channel)
        first = stub.CreateUpload(
            _requests(customer, "kill-key", whole_file()), metadata=metadata, timeout=120
        )
        second = stub.CreateUpload(
            _requests(customer, "kill-key", whole_file()), metadata=metadata, timeout=120
        )
    assert first.state == resources_pb2.Upload.SUCCEEDED
    assert (first.rows_accepted, first.claims_accepted) == (30_000, claims)
    assert second.name == first.name
    assert _count(postgres, "uploads", customer) == 1
    assert _count(postgres, "claims", customer) == claims
    assert _paid_cents(postgres, customer) == 30_000 * 80_00
    assert _count(postgres, "outbox", customer) == 1


MANAGED_CARE = (FIXTURES / "managed-care.835").read_bytes()
# Random bytes, the same on every run.
BINARY_JUNK = random.Random(835).randbytes(4096) + b"\x00" + random.Random(836).randbytes(4096)

# Files refused whole: the message names the file, says what is wrong and, when one line is
# to blame, which.
REFUSED_FILES = {
    "truncated-835": (
        MANAGED_CARE[: len(MANAGED_CARE) // 2],
        "truncated-835: the file ends in the middle of segment 13, after segment 12 (LX); it"
        " may be truncated",
    ),
    "binary-junk": (
        BINARY_JUNK,
        "binary-junk: the file contains binary data (NUL bytes); upload a CSV or X12 835 text file",
    ),
    "missing-required-column": (
        b"claim_id,procedure_code,decision_date\nA1,99213,2026-01-02\n",
        "missing-required-column: line 1: missing required column payer"
        " (or payer name, insurance, insurance name)",
    ),
    "ten-megabyte-line": (
        b"A" * (10 * 1024 * 1024),
        "ten-megabyte-line: line 1 is longer than 65536 bytes; this does not look like a CSV"
        " header",
    ),
    # Binary bytes without a NUL: a carriage return alone in the first line gives it away.
    "binary-without-nul": (
        b"\x8e\x9a\x03\x04\x14\x06\x08\rA\x9c\xfe,\x13\x88\xffclaim_id\x7f\x01\n\x02\x03",
        "binary-without-nul: line 1: the file does not look like CSV text"
        " (a carriage return inside a value)",
    ),
    # A ZIP archive is unpacked (an Excel workbook read as its sheet); a broken one says so.
    "broken-archive": (
        b"PK\x03\x04\x14\x06\x08\rA\x9c\xfe,\x13\x88\xffclaim_id\x7f\x01\n\x02\x03",
        "broken-archive: the file starts as a ZIP archive but cannot be read as one (File is not"
        " a zip file)",
    ),
    # An old Excel workbook (.xls) is read as its sheet; a damaged one says so.
    "old-workbook": (
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(600),
        "old-workbook: the Excel 97-2003 workbook (.xls) cannot be read (CompDocError: Expected"
        " \"little-endian\" marker, found b'\\x00\\x00'); save it again, or as CSV",
    ),
    "empty": (b"", "empty: the file is empty"),
    "header-only": (HEADER, "header-only: no claim in the file"),
}


@dataclass(frozen=True)
class Kept:
    """What an accepted file leaves: its claims (id, payer, billed, paid), its rejected rows
    (line, column, code, value, reason) and the codes of its warnings."""

    claims: set[tuple[str, str, Decimal, Decimal]]
    rejections: list[tuple[int, str, str, str, str]]
    warnings: list[str]


# Files with bad rows: the good rows are kept, each bad one is rejected naming where and why.
ACCEPTED_FILES = {
    "bad-dates-and-amounts": (
        HEADER
        + b"B1,Aetna,99213,2026-02-30,PAID,100.00,80.00\n"
        + b"B2,Aetna,99213,2026-02-01,PAID,1OO.00,80.00\n"
        + b"B3,Aetna,99213,2026-02-01,PAID,100.00,80.00\n",
        Kept(
            {("B3", "Aetna", Decimal(100), Decimal(80))},
            [
                (
                    2,
                    "decision_date",
                    "BAD_DATE",
                    "2026-02-30",
                    "'2026-02-30' is not a date (use 2026-03-14 or 03/14/2026)",
                ),
                (
                    3,
                    "billed_amount",
                    "BAD_AMOUNT",
                    "1OO.00",
                    "'1OO.00' is not an amount (e.g. 1234.56)",
                ),
            ],
            [],
        ),
    ),
    "formula-cells": (
        HEADER
        # Quoted as a spreadsheet exports a cell holding commas and quotes.
        + b'"=HYPERLINK(""http://evil.example"",""x"")",Aetna,99213,2026-02-01,PAID,1,1\n'
        + b"F2,@SUM(A1),99213,2026-02-01,PAID,1,1\n"
        + b"F3,Aetna,99213,2026-02-01,PAID,1,1\n",
        Kept(
            {("F3", "Aetna", Decimal(1), Decimal(1))},
            [
                (
                    2,
                    "claim_id",
                    "FORMULA",
                    '=HYPERLINK("http://evil.example","x")',
                    "looks like a spreadsheet formula, not a value",
                ),
                (
                    3,
                    "payer",
                    "FORMULA",
                    "@SUM(A1)",
                    "looks like a spreadsheet formula, not a value",
                ),
            ],
            [],
        ),
    ),
    "latin-1-export": (
        HEADER + "L1,Société Générale,99213,2026-02-01,PAID,1,1\n".encode("cp1252"),
        Kept({("L1", "Société Générale", Decimal(1), Decimal(1))}, [], ["DECODED_AS_WINDOWS_1252"]),
    ),
    # X12 names its delimiters in the ISA segment: any characters will do. The fixture's own
    # BPR16 date (20002316) is not a date, hence its warning.
    "unusual-delimiters-835": (
        MANAGED_CARE.replace(b"*", b"\x1d").replace(b"~", b"\x1e"),
        Kept(
            {
                ("5554555444", "RUSHMORE LIFE", Decimal(800), Decimal(450)),
                ("8765432112", "RUSHMORE LIFE", Decimal(1200), Decimal(495)),
            },
            [],
            ["BAD_PAYMENT_DATE"],
        ),
    ),
}


def _dollars(money: dict[str, Any]) -> Decimal:
    return Decimal(money["units"]) + Decimal(money["nanos"]) / 10**9


def test_a_file_over_the_size_limit_is_refused_whole_with_the_limit_named(
    postgres: PostgresUnderTest,
) -> None:
    customer = "size" + uuid.uuid4().hex[:8]
    metadata = [("authorization", f"Bearer {_token(customer)}")]

    def file_of(rows: int) -> Iterator[bytes]:
        yield HEADER
        for start in range(0, rows, 100):
            yield _rows(start, 100)

    with (
        running_service("ingest", postgres.url("ingest", "app"), MAX_UPLOAD_BYTES="50000") as (
            _,
            target,
        ),
        grpc.insecure_channel(target) as channel,
    ):
        stub = ingest_service_pb2_grpc.IngestServiceStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            stub.CreateUpload(_requests(customer, "big", file_of(4000)), metadata=metadata)
        assert _count(postgres, "claims", customer) == 0
        small = stub.CreateUpload(_requests(customer, "small", file_of(500)), metadata=metadata)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "larger than the limit of 50,000 bytes" in str(refused.value.details())
    assert (small.state, small.rows_accepted) == (resources_pb2.Upload.SUCCEEDED, 500)
    assert _count(postgres, "claims", customer) == 500


@pytest.mark.parametrize("name", sorted(REFUSED_FILES))
def test_a_file_that_cannot_be_read_is_refused_saying_what_is_wrong(
    system: System, postgres: PostgresUnderTest, name: str
) -> None:
    content, message = REFUSED_FILES[name]
    customer = "bad" + uuid.uuid4().hex[:8]
    with system.client(customer, "admin") as client:
        response = client.post(
            f"/v1/customers/{customer}/uploads", content=content, params={"upload.fileName": name}
        )
        claims = client.get(f"/v1/customers/{customer}/claims").json()["claims"]
    assert response.status_code == 400, response.text
    error = response.json()
    assert (error["code"], error["detail"]) == ("INVALID_ARGUMENT", message)
    assert claims == []
    assert _count(postgres, "outbox", customer) == 0


@pytest.mark.parametrize("name", sorted(ACCEPTED_FILES))
def test_bad_rows_are_rejected_naming_line_column_and_reason_and_the_rest_kept(
    system: System, name: str
) -> None:
    content, kept = ACCEPTED_FILES[name]
    customer = "bad" + uuid.uuid4().hex[:8]
    with system.client(customer, "admin") as client:
        response = client.post(
            f"/v1/customers/{customer}/uploads", content=content, params={"upload.fileName": name}
        )
        assert response.status_code == 200, response.text
        upload = response.json()
        claims = client.get(f"/v1/customers/{customer}/claims").json()["claims"]
        rejections = client.get(f"/v1/{upload['name']}/rejections").json()["uploadRejections"]
    assert upload["state"] == "SUCCEEDED"
    assert {
        (c["claimId"], c["payer"], _dollars(c["billedAmount"]), _dollars(c["paidAmount"]))
        for c in claims
    } == kept.claims
    assert [
        (int(r["lineNumber"]), r["column"], r["code"], r["rawValue"], r["reason"])
        for r in rejections
    ] == kept.rejections
    assert [w["code"] for w in upload["warnings"]] == kept.warnings
    assert (int(upload["rowsAccepted"]), int(upload["rowsRejected"])) == (
        len(kept.claims),
        len(kept.rejections),
    )


def test_gateway_streams_a_large_body_in_chunks(system: System) -> None:
    customer = "large" + uuid.uuid4().hex[:6]
    body = HEADER + _rows(0, 100_000)
    with system.client(customer, "admin") as client:
        response = client.post(
            f"/v1/customers/{customer}/uploads", content=body, timeout=httpx.Timeout(300)
        )
        resent = client.post(
            f"/v1/customers/{customer}/uploads", content=body, timeout=httpx.Timeout(300)
        )
    assert response.status_code == 200, response.text
    assert response.json()["rowsAccepted"] == "100000"
    assert resent.json()["name"] == response.json()["name"]  # same content, same upload


def test_an_upload_whose_sender_goes_away_keeps_nothing(
    system: System, postgres: PostgresUnderTest
) -> None:
    """A sender that stops after whole rows and cancels the call (as the gateway does when
    its client stalls) made no upload: what arrived is a file cut short, not a file, however
    cleanly it ends."""
    customer = "gone" + uuid.uuid4().hex[:8]
    metadata = [("authorization", f"Bearer {_token(customer)}")]
    sent, cancelled = threading.Event(), threading.Event()

    def cut_file() -> Iterator[bytes]:
        yield HEADER
        yield _rows(0, 1000)
        sent.set()
        cancelled.wait(60)  # the stream is never ended

    with grpc.insecure_channel(system.targets["ingest"]) as channel:
        stub = ingest_service_pb2_grpc.IngestServiceStub(channel)
        call = stub.CreateUpload.future(
            _requests(customer, "gone-1", cut_file()), metadata=metadata, timeout=60
        )
        assert sent.wait(30)
        time.sleep(1)  # ingest reads the rows as they arrive
        call.cancel()
        cancelled.set()
        with pytest.raises(grpc.FutureCancelledError):
            call.result()
        time.sleep(2)  # whatever ingest does after the cancel has ended by now
        listed = stub.ListUploads(
            ingest_service_pb2.ListUploadsRequest(parent=f"customers/{customer}"),
            metadata=metadata,
            timeout=30,
        )

    assert list(listed.uploads) == []
    assert _count(postgres, "claims", customer) == 0


class _SenderGoneError(Exception):
    """The sender's file stopped coming (its own client left, or it failed reading it)."""


def test_uploads_whose_async_senders_give_up_keep_nothing_however_they_end(
    postgres: PostgresUnderTest, tmp_path: Path
) -> None:
    """A grpc.aio sender whose file fails part-way cancels the call at once, as the gateway
    does when its HTTP client leaves. gRPC ends a cancelled call's messages for ingest as it
    ends a finished file's: what ingest has read of each must still be dropped, cut at a
    row's end or inside one, and each call logged as cancelled, not as an error."""
    customer = "gaveup" + uuid.uuid4().hex[:8]
    metadata = (("authorization", f"Bearer {_token(customer)}"),)
    rows = _rows(0, 20)
    row_end = sum(len(row) for row in rows.splitlines(keepends=True)[:10])
    cuts = [row_end, row_end + 7]  # after ten whole rows, and seven bytes into the next
    log_path = tmp_path / "ingest.log"

    def sent(n: int, file: bytes) -> Iterator[ingest_service_pb2.CreateUploadRequest]:
        """Round `n`'s upload: every other one under an id of its own choosing, followed
        while it streams (the others under an idempotency key)."""
        for request in _requests(customer, f"gave-up-{n}", iter([file])):
            if n % 4 >= 2 and request.parent:
                request.upload_id = f"chosen-{n}"
            yield request

    async def give_up(stub: ingest_service_pb2_grpc.IngestServiceStub, n: int) -> str:
        async def cut_file() -> AsyncIterator[ingest_service_pb2.CreateUploadRequest]:
            for request in sent(n, HEADER + rows[: cuts[n % 2]]):
                yield request
            await asyncio.sleep(0.3 + 0.01 * n)  # ingest has read it all and waits for more
            raise _SenderGoneError

        try:
            await stub.CreateUpload(cut_file(), metadata=metadata, timeout=30)
        except asyncio.CancelledError:
            return "CANCELLED"
        except grpc.aio.AioRpcError as error:
            return error.code().name
        return "OK"

    async def give_up_together(target: str) -> list[str]:
        # Many at once: ingest, busy with the others, hears of each cancel later.
        async with grpc.aio.insecure_channel(target) as channel:
            stub = ingest_service_pb2_grpc.IngestServiceStub(channel)
            return await asyncio.gather(*(give_up(stub, n) for n in range(ROUNDS_GIVEN_UP)))

    with service_logging_to(log_path, "ingest", postgres.url("ingest", "app")) as (target, _):
        codes = asyncio.run(give_up_together(target))
        time.sleep(1)  # whatever ingest does after the cancels has ended by now
        with grpc.insecure_channel(target) as channel:
            stub = ingest_service_pb2_grpc.IngestServiceStub(channel)
            listed = stub.ListUploads(
                ingest_service_pb2.ListUploadsRequest(parent=f"customers/{customer}"),
                metadata=metadata,
                timeout=30,
            )
            claims_left = _count(postgres, "claims", customer)
            # Sent again whole, under the id the cut one had chosen.
            retried = stub.CreateUpload(sent(3, HEADER + rows), metadata=metadata, timeout=30)

    assert set(codes) == {"CANCELLED"}
    assert [(u.name, resources_pb2.Upload.State.Name(u.state)) for u in listed.uploads] == []
    assert claims_left == 0
    assert retried.name == f"customers/{customer}/uploads/chosen-3"
    assert (resources_pb2.Upload.State.Name(retried.state), retried.rows_accepted) == (
        "SUCCEEDED",
        20,
    )
    records = [json.loads(line) for line in log_path.read_text().splitlines() if line[:1] == "{"]
    handled = [
        r["grpc_code"]
        for r in records
        if r.get("message") == "rpc handled" and r.get("grpc_method", "").endswith("/CreateUpload")
    ]
    assert handled == ["CANCELLED"] * ROUNDS_GIVEN_UP + ["OK"]
    assert [r["message"] for r in records if r.get("level") in ("ERROR", "CRITICAL")] == []


_KILLED_SENDER = """
import sys, time
import grpc
from upstream.ingest.v1 import ingest_service_pb2, ingest_service_pb2_grpc, resources_pb2

target, token, customer, body = sys.argv[1:]

def requests():
    yield ingest_service_pb2.CreateUploadRequest(
        parent=f"customers/{customer}",
        upload=resources_pb2.Upload(file_name="killed.csv", format=resources_pb2.Upload.CSV),
    )
    request = ingest_service_pb2.CreateUploadRequest()
    request.http_body.data = body.encode()
    yield request
    print("sent", flush=True)
    time.sleep(600)  # killed before the file's end is sent

with grpc.insecure_channel(target) as channel:
    ingest_service_pb2_grpc.IngestServiceStub(channel).CreateUpload(
        requests(), metadata=[("authorization", f"Bearer {token}")], timeout=600
    )
"""


def test_an_upload_whose_sender_is_killed_keeps_nothing(system: System) -> None:
    """The sender's process dies part-way through its file (its connection closes without
    a word): ingest keeps none of what arrived, whole rows though they are."""
    customer = "killed" + uuid.uuid4().hex[:8]
    sender = subprocess.Popen(
        [
            sys.executable,
            "-c",
            _KILLED_SENDER,
            system.targets["ingest"],
            _token(customer),
            customer,
            (HEADER + _rows(0, 200)).decode(),
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert sender.stdout is not None and sender.stdout.readline().strip() == "sent"
        time.sleep(0.5)  # ingest has read the rows and waits for more
    finally:
        sender.kill()
        sender.wait(timeout=30)
    time.sleep(1)  # whatever ingest does after the connection closed has ended by now
    with system.client(customer, "admin") as client:
        uploads = client.get(f"/v1/customers/{customer}/uploads").json().get("uploads", [])
    assert uploads == []
