"""Each service's Alembic history against a real PostgreSQL."""

from __future__ import annotations

from typing import TYPE_CHECKING

import psycopg
import pytest
from alembic.script import ScriptDirectory

from runtime.schemas import SERVICES, alembic_config, libpq_url, migrate

if TYPE_CHECKING:
    from tests.conftest import PostgresUnderTest


@pytest.mark.parametrize("service", SERVICES)
def test_version_table_lives_in_the_services_schema_at_head(
    postgres: PostgresUnderTest, service: str
) -> None:
    head = ScriptDirectory.from_config(alembic_config(service)).get_current_head()
    with psycopg.connect(libpq_url(postgres.admin_url)) as connection:
        locations = connection.execute(
            "SELECT table_schema FROM information_schema.tables"
            " WHERE table_name = 'alembic_version'"
        ).fetchall()
        version = connection.execute(
            f"SELECT version_num FROM {service}.alembic_version"
        ).fetchall()
    assert sorted(schema for (schema,) in locations) == sorted(SERVICES)
    assert version == [(head,)]


@pytest.mark.parametrize("service", SERVICES)
def test_migrating_again_changes_nothing(postgres: PostgresUnderTest, service: str) -> None:
    def schema_state() -> list[tuple[str, ...]]:
        """The version row's transaction id and every relation's id: DDL or an update moves them."""
        with psycopg.connect(libpq_url(postgres.url(service, "owner"))) as connection:
            version = connection.execute("SELECT xmin::text, version_num FROM alembic_version")
            relations = connection.execute(
                "SELECT relname::text, oid::text, relfilenode::text FROM pg_class"
                " WHERE relnamespace = %s::regnamespace ORDER BY relname",
                (service,),
            )
            return [*version.fetchall(), *relations.fetchall()]

    before = schema_state()
    migrate(service, postgres.url(service, "owner"))
    assert schema_state() == before
