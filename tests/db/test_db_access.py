"""What each service's database roles may and may not do, on a real PostgreSQL."""

from __future__ import annotations

import secrets
import uuid
from typing import TYPE_CHECKING

import psycopg
import pytest
from psycopg import errors
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import create_async_engine

from runtime.schemas import ROLES, SERVICES, Role, libpq_url

if TYPE_CHECKING:
    from tests.conftest import PostgresUnderTest

# One table of each service, to be read by the other services' roles.
TABLE_OF = {"ingest": "ingest.uploads", "drift": "drift.drift_runs", "reports": "reports.webhooks"}


def connect(postgres: PostgresUnderTest, service: str, role: Role) -> psycopg.Connection:
    return psycopg.connect(libpq_url(postgres.url(service, role)), autocommit=True)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(
    ("service", "foreign_table"),
    [(service, TABLE_OF[other]) for service in SERVICES for other in SERVICES if other != service],
)
def test_no_role_reads_another_services_schema(
    postgres: PostgresUnderTest, service: str, role: Role, foreign_table: str
) -> None:
    with (
        connect(postgres, service, role) as connection,
        pytest.raises(errors.InsufficientPrivilege, match="permission denied for schema"),
    ):
        connection.execute(f"SELECT * FROM {foreign_table}")


@pytest.mark.parametrize(
    "statement",
    [
        "CREATE TABLE scratch (id bigint)",
        "CREATE TABLE ingest.scratch (id bigint)",
        "CREATE TABLE public.scratch (id bigint)",
        "CREATE SCHEMA scratch",
    ],
)
def test_app_role_creates_nothing(postgres: PostgresUnderTest, statement: str) -> None:
    with (
        connect(postgres, "ingest", "app") as connection,
        pytest.raises(errors.InsufficientPrivilege),
    ):
        connection.execute(statement)


@pytest.mark.parametrize(
    "statement", ["CREATE TABLE public.scratch (id bigint)", "CREATE SCHEMA scratch"]
)
def test_owner_role_creates_only_in_its_own_schema(
    postgres: PostgresUnderTest, statement: str
) -> None:
    with (
        connect(postgres, "drift", "owner") as connection,
        pytest.raises(errors.InsufficientPrivilege),
    ):
        connection.execute(statement)


async def test_app_role_writes_and_reads_its_own_tables(postgres: PostgresUnderTest) -> None:
    customer = f"c_{secrets.token_hex(4)}"
    event_id = uuid.uuid4()
    engine = create_async_engine(postgres.url("ingest", "app"))
    try:
        # Unqualified names: the role's search_path is its own schema.
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO uploads (customer_id, upload_id, state, format, mode, creator)"
                    " VALUES (:customer, 'u_1', 'RUNNING', 'CSV', 'APPEND', 'admin@acme')"
                ),
                {"customer": customer},
            )
            await connection.execute(
                text(
                    "UPDATE uploads SET state = 'SUCCEEDED', rows_read = 3"
                    " WHERE customer_id = :customer AND upload_id = 'u_1'"
                ),
                {"customer": customer},
            )
            await connection.execute(
                text(
                    "INSERT INTO outbox (customer_id, event_id, event_type, payload)"
                    " VALUES (:customer, :event_id, 'UploadCompleted', '{\"upload\": \"u_1\"}')"
                ),
                {"customer": customer, "event_id": event_id},
            )
        async with engine.connect() as connection:
            upload = (
                await connection.execute(
                    text(
                        "SELECT state, rows_read, rows_rejected, payers, warnings"
                        " FROM uploads WHERE customer_id = :customer"
                    ),
                    {"customer": customer},
                )
            ).one()
            pending = (
                await connection.execute(
                    text(
                        "SELECT event_id, attempts, trace_context FROM outbox"
                        " WHERE customer_id = :customer AND published_time IS NULL"
                    ),
                    {"customer": customer},
                )
            ).all()
        assert tuple(upload) == ("SUCCEEDED", 3, 0, [], [])
        assert [tuple(row) for row in pending] == [(event_id, 0, {})]
    finally:
        await engine.dispose()


async def test_an_upload_is_made_once_per_idempotency_key_and_per_file(
    postgres: PostgresUnderTest,
) -> None:
    customer, other_customer = f"c_{secrets.token_hex(4)}", f"c_{secrets.token_hex(4)}"
    engine = create_async_engine(postgres.url("ingest", "app"))
    insert = text(
        "INSERT INTO uploads"
        " (customer_id, upload_id, state, format, mode, creator, request_id, sha256)"
        " VALUES (:customer, :upload, :state, 'CSV', 'APPEND', 'admin@acme', :request, :sha256)"
    )

    async def upload(customer: str, upload: str, state: str, request: str | None, sha: str) -> None:
        async with engine.begin() as connection:
            await connection.execute(
                insert,
                {
                    "customer": customer,
                    "upload": upload,
                    "state": state,
                    "request": request,
                    "sha256": sha,
                },
            )

    try:
        await upload(customer, "u_1", "FAILED", "key-1", "aaa")
        with pytest.raises(IntegrityError, match="uploads_request_id_key"):
            await upload(customer, "u_2", "SUCCEEDED", "key-1", "bbb")
        # A failed upload does not block sending the same file again.
        await upload(customer, "u_3", "SUCCEEDED", None, "aaa")
        with pytest.raises(IntegrityError, match="uploads_sha256_key"):
            await upload(customer, "u_4", "SUCCEEDED", None, "aaa")
        # Keys and files are unique per customer, not across customers.
        await upload(other_customer, "u_1", "SUCCEEDED", "key-1", "aaa")
    finally:
        await engine.dispose()


def test_customer_id_leads_every_table_primary_key_and_index(postgres: PostgresUnderTest) -> None:
    with psycopg.connect(libpq_url(postgres.admin_url)) as connection:
        tables = connection.execute(
            "SELECT c.table_schema || '.' || c.table_name, c.data_type, c.is_nullable"
            " FROM information_schema.tables t LEFT JOIN information_schema.columns c"
            "  ON c.table_schema = t.table_schema AND c.table_name = t.table_name"
            "  AND c.column_name = 'customer_id'"
            " WHERE t.table_schema = ANY(%s) AND t.table_name <> 'alembic_version'",
            (list(SERVICES),),
        ).fetchall()
        indexes = connection.execute(
            "SELECT i.indexrelid::regclass::text, first_column.attname"
            " FROM pg_index i"
            " JOIN pg_class tbl ON tbl.oid = i.indrelid"
            " LEFT JOIN pg_attribute first_column"
            "  ON first_column.attrelid = tbl.oid AND first_column.attnum = i.indkey[0]"
            " WHERE tbl.relnamespace::regnamespace::text = ANY(%s)"
            "  AND tbl.relname <> 'alembic_version'",
            (list(SERVICES),),
        ).fetchall()
    assert len(tables) >= 7
    assert [table for table, kind, nullable in tables if (kind, nullable) != ("text", "NO")] == []
    assert len(indexes) >= 12
    assert [index for index, column in indexes if column != "customer_id"] == []


def test_every_key_and_foreign_key_stays_within_one_customer(postgres: PostgresUnderTest) -> None:
    """What distributing the tables by `customer_id` (Citus) asks of the schema: every primary
    key and unique constraint holds `customer_id`, and every foreign key joins rows of one
    customer (`customer_id` on both sides, in the same place)."""
    with psycopg.connect(libpq_url(postgres.admin_url)) as connection:
        constraints = connection.execute(
            "SELECT con.conname::text, con.contype::text,"
            "  ARRAY(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY k(n, i)"
            "        JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n"
            "        ORDER BY k.i),"
            "  ARRAY(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY k(n, i)"
            "        JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n"
            "        ORDER BY k.i),"
            "  con.confrelid::regclass::text"
            " FROM pg_constraint con JOIN pg_class tbl ON tbl.oid = con.conrelid"
            " WHERE tbl.relnamespace::regnamespace::text = ANY(%s)"
            "  AND tbl.relname <> 'alembic_version' AND con.contype IN ('p', 'u', 'f')",
            (list(SERVICES),),
        ).fetchall()
    keys = [(name, columns) for name, kind, columns, _, _ in constraints if kind in "pu"]
    foreign = [
        (name, columns, referenced, table)
        for name, kind, columns, referenced, table in constraints
        if kind == "f"
    ]
    assert len(keys) >= 29 and len(foreign) >= 5
    assert [name for name, columns in keys if "customer_id" not in columns] == []
    crossing = [
        (name, table)
        for name, columns, referenced, table in foreign
        if "customer_id" not in columns
        or referenced[columns.index("customer_id")] != "customer_id"
        or table.split(".")[0] not in SERVICES
    ]
    assert crossing == []
