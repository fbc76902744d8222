"""Following an upload while it streams: a client that chose the upload's id reads it as
PROCESSING, with the bytes and rows read so far, until it is stored; ids are checked, a taken
one is ALREADY_EXISTS, and nothing of a finished or refused upload stays PROCESSING."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from tests.system import System
from tests.test_gateway_api import violations
from upstream.ingest.v1 import ingest_service_pb2, ingest_service_pb2_grpc, resources_pb2

HEADER = "claim_id,payer,procedure_code,decision_date,status,billed_amount,paid_amount\n"


def rows(start: int, count: int) -> bytes:
    return "".join(
        f"P{i},Aetna,99213,2026-03-{1 + i % 28:02d},PAID,100.00,80.00\n"
        for i in range(start, start + count)
    ).encode()


def requests(
    customer: str, upload_id: str, parts: list[bytes], paused: threading.Event | None = None
) -> Iterator[ingest_service_pb2.CreateUploadRequest]:
    """The upload's messages; with `paused`, the last part waits until it is set."""
    yield ingest_service_pb2.CreateUploadRequest(
        parent=f"customers/{customer}",
        upload_id=upload_id,
        upload=resources_pb2.Upload(file_name="followed.csv"),
    )
    for number, part in enumerate(parts):
        if paused is not None and number == len(parts) - 1:
            assert paused.wait(60), "the test never saw the upload being read"
        message = ingest_service_pb2.CreateUploadRequest()
        message.http_body.data = part
        yield message


@pytest.fixture
def ingest_as(system: System) -> Iterator[tuple[Any, str, tuple[tuple[str, str], ...]]]:
    customer = "prog" + uuid.uuid4().hex[:8]
    metadata = (("authorization", f"Bearer {system.token(customer)}"),)
    with grpc.insecure_channel(system.targets["ingest"]) as channel:
        yield ingest_service_pb2_grpc.IngestServiceStub(channel), customer, metadata


def test_an_upload_is_followed_while_it_streams_then_found_stored(
    system: System, ingest_as: tuple[Any, str, tuple[tuple[str, str], ...]]
) -> None:
    stub, customer, metadata = ingest_as
    name = f"customers/{customer}/uploads/web-followed-1"
    parts = [HEADER.encode() + rows(0, 2000), rows(2000, 2000), rows(4000, 2000)]
    # Each part after the first is sent a little over a second later: progress is written
    # at most once a second.
    release = threading.Event()

    def paced() -> Iterator[ingest_service_pb2.CreateUploadRequest]:
        for number, message in enumerate(requests(customer, "web-followed-1", parts, release)):
            if number == 2:
                time.sleep(1.2)
            yield message

    call = stub.CreateUpload.future(paced(), metadata=metadata, timeout=60)
    seen: list[resources_pb2.Upload] = []
    deadline = time.monotonic() + 30
    while not release.is_set():
        assert time.monotonic() < deadline, f"never seen PROCESSING with rows read: {seen}"
        try:
            found = stub.GetUpload(
                ingest_service_pb2.GetUploadRequest(name=name), metadata=metadata
            )
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.NOT_FOUND
            time.sleep(0.1)
            continue
        seen.append(found)
        if found.state == resources_pb2.Upload.PROCESSING and found.rows_read > 0:
            release.set()
        time.sleep(0.1)
    stored = call.result()
    after = stub.GetUpload(ingest_service_pb2.GetUploadRequest(name=name), metadata=metadata)

    reading = seen[-1]
    assert (reading.name, reading.file_name) == (name, "followed.csv")
    assert 0 < reading.rows_read < 6000 and 0 < reading.size_bytes < sum(map(len, parts))
    assert stored.name == name and stored.state == resources_pb2.Upload.SUCCEEDED
    assert (after.state, after.rows_read, after.rows_accepted) == (stored.state, 6000, 6000)


def test_upload_ids_are_checked_and_a_taken_one_refused(
    system: System, ingest_as: tuple[Any, str, tuple[tuple[str, str], ...]]
) -> None:
    stub, customer, metadata = ingest_as
    made = stub.CreateUpload(
        requests(customer, "taken-1", [HEADER.encode() + rows(0, 3)]), metadata=metadata
    )
    with pytest.raises(grpc.RpcError) as again:
        stub.CreateUpload(
            requests(customer, "taken-1", [HEADER.encode() + rows(10, 3)]), metadata=metadata
        )
    with system.client(customer) as client:
        bad = client.post(
            f"/v1/customers/{customer}/uploads",
            params={"uploadId": "Not An Id"},
            content=(HEADER.encode() + rows(0, 1)),
        )
        listed = client.get(f"/v1/customers/{customer}/uploads").json()["uploads"]

    assert made.name == f"customers/{customer}/uploads/taken-1"
    assert again.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert "taken-1 already exists" in (again.value.details() or "")
    assert bad.status_code == 400 and "upload_id" in violations(bad)
    assert [u["name"] for u in listed] == [made.name]


def test_a_refused_upload_is_stored_as_failed_not_left_processing(
    system: System, ingest_as: tuple[Any, str, tuple[tuple[str, str], ...]]
) -> None:
    stub, customer, metadata = ingest_as
    name = f"customers/{customer}/uploads/refused-1"
    with pytest.raises(grpc.RpcError) as refused:
        stub.CreateUpload(
            requests(customer, "refused-1", [b"\x00\x01 not a claims file"]), metadata=metadata
        )
    found = stub.GetUpload(ingest_service_pb2.GetUploadRequest(name=name), metadata=metadata)
    with pytest.raises(grpc.RpcError) as unknown:
        stub.GetUpload(
            ingest_service_pb2.GetUploadRequest(name=f"customers/{customer}/uploads/never-1"),
            metadata=metadata,
        )

    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert found.state == resources_pb2.Upload.FAILED
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
