"""835 files as senders really write them, uploaded through ingest's gRPC `CreateUpload` over
a real socket into the real service and PostgreSQL: what was tolerated comes back as the
upload's warnings, and a file of another X12 version is a FAILED upload that says which."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from tests.fixtures import X12_835_VARIANTS
from tests.system import System
from upstream.ingest.v1 import ingest_service_pb2, ingest_service_pb2_grpc, resources_pb2

# Both readable files hold these claims: claim id → (billed, paid) in dollars and cents.
CLAIMS = {"CLM1001": ("250", "180"), "CLM1002": ("120", "0")}
NO_ENVELOPE = (
    "NO_ENVELOPE",
    "the file has no ISA header: it starts with ST; it is read as 005010X221A1 with the "
    "delimiters its ST segment shows: '*' between elements, components as each composite "
    "shows them, '~' after each segment",
    1,
)
ISA_NOT_FIXED_WIDTH = (
    "ISA_NOT_FIXED_WIDTH",
    "the ISA header's elements are not padded to their fixed widths (106 characters in all); "
    "its delimiters were read from its elements: '*' between elements, ':' between "
    "components, '~' after each segment",
    1,
)
VERSION_4010 = (
    "segment 2 (GS): GS08 is '004010X091A1', X12 version 4010; only 835 files of version "
    "005010X221A1 (5010) can be read, so ask the sender for a 5010 file"
)


def _fresh_customer() -> str:
    return "c" + uuid.uuid4().hex[:10]


def _metadata(system: System, customer: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {system.token(customer)}")]


def _create_upload(
    system: System, customer: str, file_name: str, *, chunk_bytes: int = 64
) -> resources_pb2.Upload:
    """Streams the variant `file_name` in chunks of `chunk_bytes`, as a client would."""
    body = (X12_835_VARIANTS / file_name).read_bytes()

    def requests() -> Iterator[ingest_service_pb2.CreateUploadRequest]:
        yield ingest_service_pb2.CreateUploadRequest(
            parent=f"customers/{customer}", upload=resources_pb2.Upload(file_name=file_name)
        )
        for at in range(0, len(body), chunk_bytes):
            request = ingest_service_pb2.CreateUploadRequest()
            request.http_body.data = body[at : at + chunk_bytes]
            yield request

    with grpc.insecure_channel(system.targets["ingest"]) as channel:
        upload: resources_pb2.Upload = ingest_service_pb2_grpc.IngestServiceStub(
            channel
        ).CreateUpload(requests(), metadata=_metadata(system, customer), timeout=60)
    return upload


@pytest.mark.parametrize(
    ("file_name", "warnings"),
    [("bare-st-se.835", [NO_ENVELOPE]), ("isa-not-padded.835", [ISA_NOT_FIXED_WIDTH])],
)
def test_an_835_read_leniently_succeeds_and_says_what_was_tolerated(
    system: System, file_name: str, warnings: list[tuple[str, str, int]]
) -> None:
    customer = _fresh_customer()
    upload = _create_upload(system, customer, file_name)
    assert (upload.state, upload.format) == (
        resources_pb2.Upload.SUCCEEDED,
        resources_pb2.Upload.X12_835,
    )
    assert (upload.rows_read, upload.rows_accepted, upload.rows_rejected) == (2, 2, 0)
    assert [(w.code, w.message, w.segment_number) for w in upload.warnings] == warnings
    with grpc.insecure_channel(system.targets["ingest"]) as channel:
        stub = ingest_service_pb2_grpc.IngestServiceStub(channel)
        stored = stub.GetUpload(
            ingest_service_pb2.GetUploadRequest(name=upload.name),
            metadata=_metadata(system, customer),
            timeout=10,
        )
        claims = stub.ListClaims(
            ingest_service_pb2.ListClaimsRequest(parent=f"customers/{customer}"),
            metadata=_metadata(system, customer),
            timeout=10,
        ).claims
    assert [(w.code, w.message, w.segment_number) for w in stored.warnings] == warnings
    assert {
        c.claim_id: (str(c.billed_amount.units), str(c.paid_amount.units)) for c in claims
    } == CLAIMS
    assert {c.payer_raw_name for c in claims} == {"NORTHWIND HEALTH PLAN"}


def test_a_4010_file_is_a_failed_upload_that_names_the_version(system: System) -> None:
    customer = _fresh_customer()
    with pytest.raises(grpc.RpcError) as refused:
        _create_upload(system, customer, "version-4010.835")
    error = refused.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    assert error.details() == f"version-4010.835: {VERSION_4010}"  # type: ignore[attr-defined]
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    info = error_details_pb2.ErrorInfo()
    next(d for d in status.details if d.Is(info.DESCRIPTOR)).Unpack(info)
    with grpc.insecure_channel(system.targets["ingest"]) as channel:
        stub = ingest_service_pb2_grpc.IngestServiceStub(channel)
        failed = stub.GetUpload(
            ingest_service_pb2.GetUploadRequest(name=info.metadata["upload"]),
            metadata=_metadata(system, customer),
            timeout=10,
        )
        claims = stub.ListClaims(
            ingest_service_pb2.ListClaimsRequest(parent=f"customers/{customer}"),
            metadata=_metadata(system, customer),
            timeout=10,
        ).claims
    assert (failed.state, failed.format) == (
        resources_pb2.Upload.FAILED,
        resources_pb2.Upload.X12_835,
    )
    assert failed.error.message == VERSION_4010
    assert list(claims) == []
