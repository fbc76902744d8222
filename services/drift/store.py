"""Drift's tables (schema `drift`) and the queries the service runs on them."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncEngine

from services.drift.config import DetectionConfig

metadata = sa.MetaData(schema="drift")

drift_configs = sa.Table(
    "drift_configs",
    metadata,
    sa.Column("customer_id", sa.Text, primary_key=True),
    sa.Column("config", postgresql.JSONB, nullable=False),
    sa.Column("update_time", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_by", sa.Text, nullable=False),
    sa.Column("etag", sa.Text, nullable=False),
)


@dataclass(frozen=True)
class StoredConfig:
    config: DetectionConfig
    update_time: dt.datetime | None
    updated_by: str
    etag: str


def config_etag(config: DetectionConfig) -> str:
    digest = hashlib.sha256(json.dumps(config.to_json(), sort_keys=True).encode())
    return digest.hexdigest()[:16]


class DriftStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def get_config(self, customer: str) -> StoredConfig:
        """The customer's config, or the defaults when it never changed them."""
        async with self._engine.connect() as connection:
            row = (
                await connection.execute(
                    sa.select(drift_configs).where(drift_configs.c.customer_id == customer)
                )
            ).first()
        if row is None:
            defaults = DetectionConfig()
            return StoredConfig(defaults, None, "", config_etag(defaults))
        return StoredConfig(
            DetectionConfig.from_json(row.config), row.update_time, row.updated_by, row.etag
        )

    async def put_config(
        self, customer: str, config: DetectionConfig, updated_by: str, expected_etag: str
    ) -> StoredConfig | None:
        """Store a new config; None when `expected_etag` is given and no longer current."""
        etag = config_etag(config)
        values: dict[str, Any] = {
            "customer_id": customer,
            "config": config.to_json(),
            "update_time": sa.func.now(),
            "updated_by": updated_by,
            "etag": etag,
        }
        async with self._engine.begin() as connection:
            current = (
                await connection.execute(
                    sa.select(drift_configs.c.etag)
                    .where(drift_configs.c.customer_id == customer)
                    .with_for_update()
                )
            ).scalar()
            if expected_etag and expected_etag != (current or config_etag(DetectionConfig())):
                return None
            insert = postgresql.insert(drift_configs).values(values)
            upsert = insert.on_conflict_do_update(
                index_elements=[drift_configs.c.customer_id],
                set_={k: insert.excluded[k] for k in values if k != "customer_id"},
            ).returning(drift_configs.c.update_time)
            update_time = (await connection.execute(upsert)).scalar_one()
        return StoredConfig(config, update_time, updated_by, etag)
