"""Each service's Alembic history against a real PostgreSQL."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory
from sqlalchemy.exc import DBAPIError

from runtime.postgres import LocalPostgres
from runtime.schemas import (
    SERVICES,
    alembic_config,
    bootstrap,
    libpq_url,
    local_passwords,
    migrate,
    migration_engine,
    role_name,
    service_url,
)
from runtime.settings import REPO_ROOT
from tests.system import base_env, free_port

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


def test_the_migration_engine_keeps_a_statements_values_out_of_its_errors(
    postgres: PostgresUnderTest,
) -> None:
    secret = "whsec_" + secrets.token_hex(8)
    engine = migration_engine(postgres.url("reports", "owner"))
    try:
        with engine.connect() as connection, pytest.raises(DBAPIError) as raised:
            connection.execute(
                sa.text("SELECT length(CAST(:secret AS text)) / 0"), {"secret": secret}
            )
    finally:
        engine.dispose()
    assert "division by zero" in str(raised.value)
    assert secret not in str(raised.value) and "[parameters:" not in str(raised.value)


# Fired by every DDL statement of a migration (which runs as an owner role): an error whose
# message and DETAIL quote a value, as a data migration's constraint violation does.
REFUSE_MIGRATIONS = """
CREATE FUNCTION public.refuse_migrations() RETURNS event_trigger LANGUAGE plpgsql AS $$
BEGIN
    IF session_user::text LIKE '%\\_owner' THEN
        RAISE EXCEPTION 'refused for %', '{marker}'
            USING DETAIL = 'Failing row contains ({marker})';
    END IF;
END $$;
CREATE EVENT TRIGGER refuse_migrations ON ddl_command_start
    EXECUTE FUNCTION public.refuse_migrations();
"""


def test_a_failed_migration_logs_json_without_the_values_of_its_error(
    pg_scratch_folder: Path,
) -> None:
    """`python -m runtime.schemas migrate`, as `make migrate` and a deployment's Job run it,
    on a PostgreSQL of its own (it sets the roles' passwords, shared by a whole server)."""
    marker = "customer" + secrets.token_hex(6)
    cluster = LocalPostgres(pg_scratch_folder / "data", free_port())
    cluster.start()
    with psycopg.connect(libpq_url(cluster.admin_url()), autocommit=True) as connection:
        connection.execute(REFUSE_MIGRATIONS.format(marker=marker).encode())
    migration = subprocess.run(
        [sys.executable, "-m", "runtime.schemas", "migrate", "--service", "reports"],
        cwd=REPO_ROOT,
        env=base_env(DATABASE_URL=cluster.admin_url()),
        capture_output=True,
        timeout=120,
    )
    output = (migration.stdout + migration.stderr).decode()
    assert migration.returncode != 0, output
    assert marker not in output, output
    records = [json.loads(line) for line in migration.stderr.decode().splitlines() if line]
    (failure,) = [record for record in records if record["level"] == "CRITICAL"]
    assert failure["service"] == "migrate", failure
    assert "RaiseException SQLSTATE P0001" in failure["exc_info"], failure


def test_a_deployments_upgrade_job_migrates_one_service_as_its_owner(
    pg_scratch_folder: Path,
) -> None:
    """`python -m runtime.schemas upgrade --service drift`, as the Kubernetes migration Job
    runs it: the roles exist (a DBA made them once), DATABASE_URL is the owner's."""
    cluster = LocalPostgres(pg_scratch_folder / "data", free_port())
    cluster.start()
    admin_url = cluster.admin_url()
    passwords = local_passwords(("drift",))
    bootstrap(admin_url, passwords, ("drift",))
    owner_url = service_url(admin_url, "drift", "owner", passwords[role_name("drift", "owner")])

    def upgrade(url: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [sys.executable, "-m", "runtime.schemas", "upgrade", "--service", "drift"],
            cwd=REPO_ROOT,
            env=base_env(DATABASE_URL=url),
            capture_output=True,
            timeout=120,
        )

    done = upgrade(libpq_url(owner_url))
    again = upgrade(libpq_url(owner_url))
    with psycopg.connect(libpq_url(owner_url)) as connection:
        (version,) = connection.execute("SELECT version_num FROM alembic_version").fetchone() or ()

    head = ScriptDirectory.from_config(alembic_config("drift")).get_current_head()
    assert done.returncode == 0 and again.returncode == 0, done.stderr + again.stderr
    assert b"drift: migrated to head" in done.stdout
    assert version == head
