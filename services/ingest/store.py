"""Ingest's tables (schema `ingest`) and the queries the service runs on them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncEngine

from runtime.filtering import FilterField, parse_filter

metadata = sa.MetaData(schema="ingest")

uploads = sa.Table(
    "uploads",
    metadata,
    sa.Column("customer_id", sa.Text, primary_key=True),
    sa.Column("upload_id", sa.Text, primary_key=True),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("format", sa.Text, nullable=False),
    sa.Column("mode", sa.Text, nullable=False),
    sa.Column("file_name", sa.Text),
    sa.Column("size_bytes", sa.BigInteger, nullable=False),
    sa.Column("sha256", sa.Text),
    sa.Column("request_id", sa.Text),
    sa.Column("creator", sa.Text, nullable=False),
    sa.Column("rows_read", sa.BigInteger, nullable=False),
    sa.Column("rows_accepted", sa.BigInteger, nullable=False),
    sa.Column("rows_rejected", sa.BigInteger, nullable=False),
    sa.Column("rows_updated", sa.BigInteger, nullable=False),
    sa.Column("first_decision_date", sa.Date),
    sa.Column("last_decision_date", sa.Date),
    sa.Column("payers", postgresql.ARRAY(sa.Text), nullable=False),
    sa.Column("warnings", postgresql.JSONB, nullable=False),
    sa.Column("error", postgresql.JSONB),
    sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finish_time", sa.DateTime(timezone=True)),
)

UPLOAD_STATES = ("PROCESSING", "SUCCEEDED", "FAILED")
UPLOAD_FILTERS = {
    "state": FilterField(uploads.c.state, "enum", {s: s for s in UPLOAD_STATES}),
    "format": FilterField(uploads.c.format, "enum", {"CSV": "CSV", "X12_835": "X12_835"}),
    "create_time": FilterField(uploads.c.create_time, "timestamp"),
    "file_name": FilterField(uploads.c.file_name),
    "payers": FilterField(uploads.c.payers, "text_array"),
}


class IngestStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def get_upload(self, customer: str, upload_id: str) -> Row | None:
        async with self._engine.connect() as connection:
            result = await connection.execute(
                sa.select(uploads).where(
                    uploads.c.customer_id == customer, uploads.c.upload_id == upload_id
                )
            )
            return result.first()

    async def list_uploads(
        self, customer: str, filter_text: str, limit: int, after: Sequence[str] | None
    ) -> list[Row]:
        """Newest first; `after` is the (create_time, upload_id) the previous page ended on."""
        query = (
            sa.select(uploads)
            .where(uploads.c.customer_id == customer, parse_filter(filter_text, UPLOAD_FILTERS))
            .order_by(uploads.c.create_time.desc(), uploads.c.upload_id.desc())
            .limit(limit)
        )
        if after is not None:
            created, upload_id = dt.datetime.fromisoformat(after[0]), after[1]
            query = query.where(
                sa.tuple_(uploads.c.create_time, uploads.c.upload_id) < (created, upload_id)
            )
        async with self._engine.connect() as connection:
            return list((await connection.execute(query)).all())
