"""An expand migration applied while the system serves reads and uploads: not one call fails.

The migration is a revision added after ingest's head for this test, doing what expand
steps do to the busiest table (claims) and to uploads: a nullable column, a column with a
constant default, an index built CONCURRENTLY and a unique constraint added in its three
steps (`runtime.schemas.add_unique_constraint`). It runs through the services' own migration
environment (advisory lock, lock and statement timeouts) as the owner role, and squawk,
with every rule the repository lints with, finds nothing in its SQL."""

from __future__ import annotations

import itertools
import shutil
import subprocess
from pathlib import Path

import httpx
import psycopg
from alembic import command
from alembic.script import ScriptDirectory

from devtools.stack import wait_until
from runtime.schemas import alembic_config, libpq_url, revision_sql
from runtime.settings import REPO_ROOT
from tests.conftest import PostgresUnderTest, own_database
from tests.system import SERVICES, UNLIMITED, Load, running_system

CUSTOMER = "expanding"
CSV_HEADER = "claim_id,payer,decision_date,status,billed_amount,paid_amount\n"
REVISION = '''"""Expand step rehearsed under load.

Revision ID: rehearsal
Revises: {head}
"""

import sqlalchemy as sa
from alembic import op

from runtime.schemas import add_unique_constraint

revision = "rehearsal"
down_revision = "{head}"
branch_labels = None
depends_on = None

SCHEMA = "ingest"


def upgrade() -> None:
    op.add_column(
        "claims",
        sa.Column("rehearsal_note", sa.Text(), nullable=True),
        schema=SCHEMA,
        if_not_exists=True,
    )
    op.add_column(
        "uploads",
        sa.Column("rehearsal_count", sa.BigInteger(), server_default="0", nullable=False),
        schema=SCHEMA,
        if_not_exists=True,
    )
    with op.get_context().autocommit_block():
        op.create_index(
            "claims_rehearsal_idx",
            "claims",
            ["customer_id", "payer_key", "claim_id"],
            schema=SCHEMA,
            postgresql_concurrently=True,
            if_not_exists=True,
        )
    add_unique_constraint(
        "claims",
        "claims_rehearsal_key",
        ["customer_id", "claim_uid", "claim_id"],
        schema=SCHEMA,
        why_no_write_is_refused="the primary key (customer_id, claim_uid) is unique already",
    )


def downgrade() -> None:
    op.drop_constraint("claims_rehearsal_key", "claims", schema=SCHEMA)
    with op.get_context().autocommit_block():
        op.drop_index("claims_rehearsal_idx", "claims", schema=SCHEMA, postgresql_concurrently=True)
    op.drop_column("uploads", "rehearsal_count", schema=SCHEMA)
    op.drop_column("claims", "rehearsal_note", schema=SCHEMA)
'''


def _with_rehearsal(folder: Path) -> Path:
    """ingest's migrations, copied to `folder`, with the rehearsal revision after head."""
    head = ScriptDirectory.from_config(alembic_config("ingest")).get_current_head()
    shutil.copytree(REPO_ROOT / "services" / "ingest" / "migrations", folder / "migrations")
    (folder / "migrations" / "versions" / "9999_rehearsal.py").write_text(
        REVISION.format(head=head)
    )
    return folder / "migrations"


def _claims_csv(batch: int) -> bytes:
    rows = "".join(
        f"E{batch}-{n},Aetna,2026-0{1 + n % 9}-1{n % 10},PAID,150.00,90.00\n" for n in range(20)
    )
    return (CSV_HEADER + rows).encode()


def test_an_expand_migration_under_load_fails_no_call(
    postgres: PostgresUnderTest, tmp_path: Path
) -> None:
    migrations = _with_rehearsal(tmp_path)
    # The rehearsal's SQL, as scripts/squawk.sh lints a revision, passes every rule.
    script = tmp_path / "rehearsal.sql"
    script.write_text(revision_sql("ingest", migrations)["rehearsal"])
    linted = subprocess.run(
        [str(REPO_ROOT / ".venv" / "bin" / "squawk"), "--config", ".squawk.toml", str(script)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert linted.returncode == 0, linted.stdout + linted.stderr
    assert "UNIQUE USING INDEX" in script.read_text()

    with own_database(postgres) as database:
        urls = {service: database.url(service) for service in SERVICES}
        with running_system(urls, **UNLIMITED) as system, system.client(CUSTOMER) as client:
            base = f"/v1/customers/{CUSTOMER}"
            batches = itertools.count()
            assert client.post(f"{base}/uploads", content=_claims_csv(next(batches))).is_success

            def expect_ok(answer: httpx.Response) -> None:
                if not answer.is_success:
                    raise AssertionError(f"{answer.status_code} {answer.text[:200]}")

            load = Load()
            load.run("REST claims", lambda: expect_ok(client.get(f"{base}/claims")))
            load.run("REST uploads", lambda: expect_ok(client.get(f"{base}/uploads")))
            load.run(
                "REST upload",
                lambda: expect_ok(
                    client.post(f"{base}/uploads", content=_claims_csv(next(batches)))
                ),
            )
            try:
                wait_until("load running", lambda: load.calls > 30, system.stack)
                owner = database.url("ingest", "owner")
                command.upgrade(alembic_config("ingest", owner, script_location=migrations), "head")
                calls_at_migration = load.calls
                wait_until("load after it", lambda: load.calls > calls_at_migration + 30)
            finally:
                load.stop()
        with psycopg.connect(libpq_url(database.admin_url)) as connection:
            constraint = connection.execute(
                "SELECT contype::text FROM pg_constraint WHERE conname = 'claims_rehearsal_key'"
            ).fetchone()
            columns = connection.execute(
                "SELECT table_name::text, column_name::text FROM information_schema.columns"
                " WHERE column_name LIKE 'rehearsal%' ORDER BY 1"
            ).fetchall()
            uploads = connection.execute(
                "SELECT count(*) FROM ingest.uploads WHERE customer_id = %s", (CUSTOMER,)
            ).fetchone()
    assert load.failures == [], load.failures[:10]
    assert constraint == ("u",)
    assert columns == [("claims", "rehearsal_note"), ("uploads", "rehearsal_count")]
    # Uploads went on while the migration ran, each one whole.
    assert uploads is not None and uploads[0] > 3
