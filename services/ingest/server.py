"""IngestService over gRPC: a thin adapter between the contract and the domain and store."""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf import json_format
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncEngine

from runtime import errors, names, pagination
from runtime.server import ServiceDefinition
from runtime.settings import Settings
from services.ingest.store import IngestStore
from upstream.ingest.v1 import ingest_service_pb2, ingest_service_pb2_grpc, resources_pb2

UPLOAD_NAME = "customers/{customer}/uploads/{upload}"
CUSTOMER_NAME = "customers/{customer}"


def upload_message(row: Row) -> resources_pb2.Upload:
    fields: dict[str, Any] = {
        "name": UPLOAD_NAME.format(customer=row.customer_id, upload=row.upload_id),
        "state": row.state,
        "format": row.format,
        "mode": row.mode,
        "fileName": row.file_name or "",
        "sha256": row.sha256 or "",
        "sizeBytes": row.size_bytes,
        "rowsRead": row.rows_read,
        "rowsAccepted": row.rows_accepted,
        "rowsRejected": row.rows_rejected,
        "rowsUpdated": row.rows_updated,
        "payers": row.payers,
        "warnings": row.warnings,
        "creator": row.creator,
        "requestId": row.request_id or "",
        "createTime": row.create_time.isoformat(),
    }
    for column in ("first_decision_date", "last_decision_date"):
        value = getattr(row, column)
        if value is not None:
            fields[column] = {"year": value.year, "month": value.month, "day": value.day}
    if row.error is not None:
        fields["error"] = row.error
    if row.finish_time is not None:
        fields["finishTime"] = row.finish_time.isoformat()
    return json_format.ParseDict(fields, resources_pb2.Upload())


class IngestServicer(ingest_service_pb2_grpc.IngestServiceServicer):
    def __init__(self, store: IngestStore) -> None:
        self._store = store

    async def GetUpload(
        self, request: ingest_service_pb2.GetUploadRequest, context: grpc.aio.ServicerContext
    ) -> resources_pb2.Upload:
        parsed = names.parse(request.name, UPLOAD_NAME)
        row = await self._store.get_upload(parsed["customer"], parsed["upload"])
        if row is None:
            raise errors.not_found(request.name)
        return upload_message(row)

    async def ListUploads(
        self, request: ingest_service_pb2.ListUploadsRequest, context: grpc.aio.ServicerContext
    ) -> ingest_service_pb2.ListUploadsResponse:
        customer = names.parse(request.parent, CUSTOMER_NAME, field="parent")["customer"]
        size = pagination.page_size(request.page_size)
        token = pagination.decode(request.page_token, request.parent, request.filter)
        rows = await self._store.list_uploads(
            customer, request.filter, size + 1, token.after if token else None
        )
        response = ingest_service_pb2.ListUploadsResponse(
            uploads=[upload_message(row) for row in rows[:size]]
        )
        if len(rows) > size:
            last = rows[size - 1]
            response.next_page_token = pagination.encode(
                [last.create_time.isoformat(), last.upload_id], request.parent, request.filter
            )
        return response


def build(settings: Settings, engine: AsyncEngine) -> ServiceDefinition:
    return ServiceDefinition(
        full_name="upstream.ingest.v1.IngestService",
        servicer=IngestServicer(IngestStore(engine)),
        add_to_server=ingest_service_pb2_grpc.add_IngestServiceServicer_to_server,
    )
