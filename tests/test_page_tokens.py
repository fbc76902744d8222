"""Page tokens over real gRPC against the running services: a token opens the next page of
the request it was given for, and nothing else; anything else is INVALID_ARGUMENT."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from runtime import pagination
from tests.system import System
from upstream.drift.v1 import drift_service_pb2
from upstream.ingest.v1 import ingest_service_pb2, ingest_service_pb2_grpc, resources_pb2

HEADER = b"claim_id,payer,procedure_code,decision_date,status,billed_amount,paid_amount\n"
# Three files of two claims each, every file with a payer of its own.
FILES = {
    "aetna.csv": b"A1,Aetna,99213,2026-03-02,PAID,100.00,80.00\n"
    b"A2,Aetna,99214,2026-03-03,PAID,120.00,90.00\n",
    "cigna.csv": b"C1,Cigna,99213,2026-03-04,PAID,130.00,70.00\n"
    b"C2,Cigna,71046,2026-03-05,DENIED,140.00,0.00\n",
    "humana.csv": b"H1,Humana,99213,2026-03-06,PAID,150.00,110.00\n"
    b"H2,Humana,99215,2026-03-07,PAID,160.00,120.00\n",
}
INJECTION = "2026-03-01'); DROP TABLE ingest.uploads; --"


@dataclass(frozen=True)
class Customer:
    """A customer with the three files uploaded, and how to call the services as it."""

    name: str
    uploads: frozenset[str]
    metadata: tuple[tuple[str, str], ...]

    @property
    def parent(self) -> str:
        return f"customers/{self.name}"


def _upload_requests(customer: str, file_name: str, content: bytes) -> Iterator[Any]:
    yield ingest_service_pb2.CreateUploadRequest(
        parent=f"customers/{customer}",
        request_id=file_name,
        upload=resources_pb2.Upload(file_name=file_name, format=resources_pb2.Upload.CSV),
    )
    request = ingest_service_pb2.CreateUploadRequest()
    request.http_body.data = HEADER + content
    yield request


def _customer_with_uploads(system: System) -> Customer:
    name = "pt" + uuid.uuid4().hex[:10]
    metadata = (("authorization", f"Bearer {system.token(name, 'admin')}"),)
    with grpc.insecure_channel(system.targets["ingest"]) as channel:
        stub = ingest_service_pb2_grpc.IngestServiceStub(channel)
        uploads = [
            stub.CreateUpload(
                _upload_requests(name, file_name, content), metadata=metadata, timeout=60
            )
            for file_name, content in FILES.items()
        ]
    assert [u.state for u in uploads] == [resources_pb2.Upload.SUCCEEDED] * len(FILES)
    return Customer(name, frozenset(u.name for u in uploads), metadata)


@pytest.fixture(scope="module")
def acme(system: System) -> Customer:
    return _customer_with_uploads(system)


@pytest.fixture(scope="module")
def globex(system: System) -> Customer:
    return _customer_with_uploads(system)


def every_page(call: Callable[..., Any], request: Any, field: str, metadata: Any) -> list[Any]:
    """Every item of a list, page after page, following the tokens the service gives."""
    items: list[Any] = []
    while True:
        page = call(request, metadata=metadata, timeout=30)
        items += getattr(page, field)
        if not page.next_page_token:
            return items
        request.page_token = page.next_page_token


def assert_token_refused(call: Callable[..., Any], request: Any, metadata: Any) -> None:
    with pytest.raises(grpc.RpcError) as refused:
        call(request, metadata=metadata, timeout=30)
    error: Any = refused.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert error.details() == "page_token is not valid"
    status = rpc_status.from_call(error)
    assert status is not None
    bad_request = error_details_pb2.BadRequest()
    assert any(detail.Unpack(bad_request) for detail in status.details)
    assert [v.field for v in bad_request.field_violations] == ["page_token"]


def second_page_token(ingest: Any, customer: Customer) -> str:
    page = ingest.ListUploads(
        ingest_service_pb2.ListUploadsRequest(parent=customer.parent, page_size=1),
        metadata=customer.metadata,
        timeout=30,
    )
    assert page.next_page_token
    return str(page.next_page_token)


def test_paging_with_the_tokens_given_returns_every_item_once(
    acme: Customer, ingest: Any, drift: Any
) -> None:
    uploads = every_page(
        ingest.ListUploads,
        ingest_service_pb2.ListUploadsRequest(parent=acme.parent, page_size=1),
        "uploads",
        acme.metadata,
    )
    assert sorted(u.name for u in uploads) == sorted(acme.uploads)
    claims = every_page(
        ingest.ListClaims,
        ingest_service_pb2.ListClaimsRequest(
            parent=acme.parent, page_size=4, order_by="billed_amount desc"
        ),
        "claims",
        acme.metadata,
    )
    assert [c.claim_id for c in claims] == ["H2", "H1", "C2", "C1", "A2", "A1"]
    summaries = every_page(
        drift.ListPayerSummaries,
        drift_service_pb2.ListPayerSummariesRequest(parent=acme.parent, page_size=1),
        "payer_summaries",
        acme.metadata,
    )
    assert sorted(s.payer for s in summaries) == ["Aetna", "Cigna", "Humana"]


def test_a_list_uploads_token_opens_no_other_list(acme: Customer, ingest: Any, drift: Any) -> None:
    token = second_page_token(ingest, acme)
    elsewhere: list[tuple[Callable[..., Any], Any]] = [
        (ingest.ListClaims, ingest_service_pb2.ListClaimsRequest(parent=acme.parent)),
        (
            ingest.ListPayerMappings,
            ingest_service_pb2.ListPayerMappingsRequest(parent=acme.parent),
        ),
        (ingest.ListPayers, ingest_service_pb2.ListPayersRequest(parent=acme.parent)),
        (
            ingest.ListUploads,
            ingest_service_pb2.ListUploadsRequest(parent=acme.parent, filter="state = SUCCEEDED"),
        ),
        (
            ingest.ListUploads,
            ingest_service_pb2.ListUploadsRequest(parent=acme.parent, order_by="create_time"),
        ),
        (drift.ListDriftRuns, drift_service_pb2.ListDriftRunsRequest(parent=acme.parent)),
        (
            drift.ListPayerSummaries,
            drift_service_pb2.ListPayerSummariesRequest(parent=acme.parent),
        ),
    ]
    for call, request in elsewhere:
        request.page_token = token
        assert_token_refused(call, request, acme.metadata)


def test_a_token_of_one_customer_is_refused_on_another_customers_list(
    acme: Customer, globex: Customer, ingest: Any
) -> None:
    request = ingest_service_pb2.ListUploadsRequest(
        parent=globex.parent, page_size=1, page_token=second_page_token(ingest, acme)
    )
    assert_token_refused(ingest.ListUploads, request, globex.metadata)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _forged_tokens(real_token: str, parent: str) -> list[str]:
    """Tokens as someone without the server's key could make them."""
    real = base64.urlsafe_b64decode(real_token + "=" * (-len(real_token) % 4))
    signed_part = real[: 1 + pagination.SIGNATURE_BYTES]
    # A position next to an unkeyed hash of the request, which anyone can compute.
    unkeyed = hashlib.sha256("\x1f".join((parent, "", "")).encode()).hexdigest()[:16]
    positions: list[Any] = [
        [INJECTION, "u_1"],
        ["2026-03-01", "' OR '1'='1"],
        [None, None],
        ["\x00", "\x00"],
        [{"k": 1}, [1, 2]],
        [1, 2, 3],
    ]
    forged = [_b64(json.dumps({"a": p, "f": unkeyed}).encode()) for p in positions]
    forged += [pagination.PageTokens(["x" * 32]).encode(p, parent.encode()) for p in positions]
    forged += [_b64(signed_part + json.dumps(p).encode()) for p in positions]
    return [*forged, real_token[:-1], real_token + "A", "A" * 2000, " "]


def test_a_forged_token_is_refused_and_changes_nothing(acme: Customer, ingest: Any) -> None:
    real_token = second_page_token(ingest, acme)
    for token in _forged_tokens(real_token, acme.parent):
        assert_token_refused(
            ingest.ListUploads,
            ingest_service_pb2.ListUploadsRequest(parent=acme.parent, page_token=token),
            acme.metadata,
        )
    uploads = ingest.ListUploads(
        ingest_service_pb2.ListUploadsRequest(parent=acme.parent),
        metadata=acme.metadata,
        timeout=30,
    ).uploads
    assert sorted(u.name for u in uploads) == sorted(acme.uploads)
