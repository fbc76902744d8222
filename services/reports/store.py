"""Reports' tables (schema `reports`) and the queries the service runs on them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncEngine

from runtime.filtering import FilterField, parse_filter
from runtime.pagination import after_position

metadata = sa.MetaData(schema="reports")

webhooks = sa.Table(
    "webhooks",
    metadata,
    sa.Column("customer_id", sa.Text, primary_key=True),
    sa.Column("webhook_id", sa.Text, primary_key=True),
    sa.Column("display_name", sa.Text, nullable=False),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("event_types", postgresql.ARRAY(sa.Text), nullable=False),
    sa.Column("signing_secret", sa.Text, nullable=False),
    sa.Column("disabled", sa.Boolean, nullable=False),
    sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
    sa.Column("update_time", sa.DateTime(timezone=True), nullable=False),
)

WEBHOOK_FILTERS = {
    "disabled": FilterField(webhooks.c.disabled, "bool"),
    "event_types": FilterField(webhooks.c.event_types, "text_array"),
}


class ReportsStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def create_webhook(
        self,
        customer: str,
        webhook_id: str,
        *,
        display_name: str,
        url: str,
        event_types: Sequence[str],
        signing_secret: str,
        disabled: bool,
    ) -> Row:
        async with self._engine.begin() as connection:
            result = await connection.execute(
                sa.insert(webhooks)
                .values(
                    customer_id=customer,
                    webhook_id=webhook_id,
                    display_name=display_name,
                    url=url,
                    event_types=list(event_types),
                    signing_secret=signing_secret,
                    disabled=disabled,
                    create_time=sa.func.now(),
                    update_time=sa.func.now(),
                )
                .returning(webhooks)
            )
            return result.one()

    async def get_webhook(self, customer: str, webhook_id: str) -> Row | None:
        async with self._engine.connect() as connection:
            result = await connection.execute(
                sa.select(webhooks).where(
                    webhooks.c.customer_id == customer, webhooks.c.webhook_id == webhook_id
                )
            )
            return result.first()

    async def delete_webhook(self, customer: str, webhook_id: str) -> bool:
        async with self._engine.begin() as connection:
            result = await connection.execute(
                sa.delete(webhooks).where(
                    webhooks.c.customer_id == customer, webhooks.c.webhook_id == webhook_id
                )
            )
            return bool(result.rowcount)

    async def list_webhooks(
        self, customer: str, filter_text: str, limit: int, after: Sequence[str] | None
    ) -> list[Row]:
        """Oldest first; `after` is the (create_time, webhook_id) the last page ended on."""
        query = (
            sa.select(webhooks)
            .where(webhooks.c.customer_id == customer, parse_filter(filter_text, WEBHOOK_FILTERS))
            .order_by(webhooks.c.create_time, webhooks.c.webhook_id)
            .limit(limit)
        )
        if after is not None:
            created = dt.datetime.fromisoformat(after[0])
            query = query.where(
                after_position(
                    (webhooks.c.create_time, webhooks.c.webhook_id),
                    (created, after[1]),
                    descending=False,
                )
            )
        async with self._engine.connect() as connection:
            return list((await connection.execute(query)).all())
