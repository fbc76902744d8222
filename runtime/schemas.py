"""Each service's PostgreSQL schema and roles, and its Alembic migrations.

Service S owns schema S. `S_owner` owns the schema and runs migrations; `S_app` is what the
running service logs in as: it reads and writes S's rows and can create nothing. Neither can
see another service's schema, so data crosses a boundary only through a gRPC call.

    python -m runtime.schemas migrate [--service S]             bootstrap roles, upgrade to head
    python -m runtime.schemas sql --out-dir DIR [--service S]   each revision's SQL, for squawk
    python -m runtime.schemas upgrade --service S               to head, as DATABASE_URL's owner
    python -m runtime.schemas downgrade --service S --to REV    back to REV, as DATABASE_URL's owner
"""

from __future__ import annotations

import argparse
import io
import os
import re
import secrets
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import psycopg
from alembic import command, context, op
from alembic.config import Config
from alembic.script import ScriptDirectory
from psycopg import sql
from sqlalchemy import Engine, create_engine, make_url, pool, text

from runtime.local_secrets import load_or_create
from runtime.postgres import DEFAULT_DATA_DIR, DEFAULT_PORT, LocalPostgres
from runtime.settings import REPO_ROOT
from runtime.telemetry import setup_logging

SERVICES = ("ingest", "drift", "reports")
Role = Literal["owner", "app"]
ROLES: tuple[Role, ...] = ("owner", "app")
DRIVER = "postgresql+psycopg"
LOCK_TIMEOUT = "5s"
# Generous: a migration may rewrite a large table, but it must not hang a rollout forever.
STATEMENT_TIMEOUT = "15min"
# Tables whose rows the app role may add but never change or delete (runtime/audit.py).
APPEND_ONLY_TABLES = ("audit_entries",)
_VERSION_COLUMN = "    version_num VARCHAR"
# `ALTER TABLE … ADD COLUMN … DEFAULT <a literal> NOT NULL;` as Alembic writes it offline.
_CONSTANT_DEFAULT_COLUMN = re.compile(
    r"^(ALTER TABLE \S+ ADD COLUMN (?:IF NOT EXISTS )?\S+ [A-Z ]+ "
    r"DEFAULT (?:'[^']*'(?:::\w+)?|\d+|true|false) NOT NULL;)$",
    re.MULTILINE,
)


def role_name(service: str, role: Role) -> str:
    """Database role of `service` for `role`, e.g. `ingest_app`."""
    return f"{service}_{role}"


def libpq_url(url: str) -> str:
    """The `postgresql://` form of a SQLAlchemy URL, as psycopg and libpq take it."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def service_url(admin_url: str, service: str, role: Role, password: str) -> str:
    """URL of the admin URL's database, logged in as `service`'s `role` role."""
    return (
        make_url(admin_url)
        .set(drivername=DRIVER, username=role_name(service, role), password=password)
        .render_as_string(hide_password=False)
    )


def bootstrap(
    admin_url: str, passwords: Mapping[str, str], services: Iterable[str] = SERVICES
) -> None:
    """Create or update each service's schema and roles; `passwords` is keyed by role name."""
    with psycopg.connect(libpq_url(admin_url)) as connection:
        # Roles are cluster-wide: concurrent bootstraps would race on CREATE ROLE.
        connection.execute("SELECT pg_advisory_xact_lock(hashtext('upstream.bootstrap'))")
        database = sql.Identifier(connection.info.dbname)
        # No one creates anything outside their own schema, nor uses `public`.
        connection.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(database))
        connection.execute("REVOKE ALL ON SCHEMA public FROM PUBLIC")
        for service in services:
            _bootstrap_service(connection, service, passwords, database)


def _bootstrap_service(
    connection: psycopg.Connection,
    service: str,
    passwords: Mapping[str, str],
    database: sql.Identifier,
) -> None:
    """Schema `service`, its owner and app roles, and what each may do."""
    schema = sql.Identifier(service)
    owner = sql.Identifier(role_name(service, "owner"))
    app = sql.Identifier(role_name(service, "app"))
    for role in ROLES:
        name = role_name(service, role)
        exists = connection.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,))
        if not exists.fetchone():
            connection.execute(sql.SQL("CREATE ROLE {}").format(sql.Identifier(name)))
        # Only the SCRAM verifier travels to the server, so the password never shows in logs.
        verifier = connection.pgconn.encrypt_password(
            passwords[name].encode(), name.encode(), b"scram-sha-256"
        )
        for statement in (
            "ALTER ROLE {role} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION"
            " NOBYPASSRLS PASSWORD {verifier}",
            "ALTER ROLE {role} SET search_path = {schema}",
            "GRANT CONNECT ON DATABASE {database} TO {role}",
        ):
            connection.execute(
                sql.SQL(statement).format(
                    role=sql.Identifier(name),
                    verifier=sql.Literal(verifier.decode()),
                    schema=schema,
                    database=database,
                )
            )
    for statement in (
        "CREATE SCHEMA IF NOT EXISTS {schema} AUTHORIZATION {owner}",
        "ALTER SCHEMA {schema} OWNER TO {owner}",
        "REVOKE ALL ON SCHEMA {schema} FROM PUBLIC",
        "GRANT USAGE ON SCHEMA {schema} TO {app}",
        # Temporary tables stage COPY loads; they vanish with the session.
        "GRANT TEMPORARY ON DATABASE {database} TO {app}",
        "ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA {schema}"
        " GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {app}",
        "ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA {schema}"
        " GRANT USAGE, SELECT ON SEQUENCES TO {app}",
        "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {app}",
        "GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {app}",
    ):
        connection.execute(
            sql.SQL(statement).format(schema=schema, owner=owner, app=app, database=database)
        )
    # The grant above covers every table; append-only ones take back what it gave.
    for table in APPEND_ONLY_TABLES:
        exists = connection.execute("SELECT to_regclass(%s)", (f"{service}.{table}",))
        if (exists.fetchone() or (None,))[0] is not None:
            connection.execute(
                sql.SQL("REVOKE UPDATE, DELETE, TRUNCATE ON {}.{} FROM {}").format(
                    schema, sql.Identifier(table), app
                )
            )


def alembic_config(
    service: str, url: str | None = None, *, script_location: Path | None = None
) -> Config:
    """Alembic configuration of `service`'s migrations (those in `script_location`, if
    given), built in code (no alembic.ini)."""
    if service not in SERVICES:
        raise ValueError(f"unknown service {service!r}; one of {', '.join(SERVICES)}")
    config = Config(output_buffer=io.StringIO())
    location = script_location or REPO_ROOT / "services" / service / "migrations"
    config.set_main_option("script_location", str(location))
    # Passed as an attribute, not an ini option, since ini values treat `%` specially.
    config.attributes["url"] = url
    return config


def migrate(service: str, owner_url: str) -> None:
    """Upgrade `service`'s schema to the newest revision, as its owner role."""
    command.upgrade(alembic_config(service, owner_url), "head")


def downgrade(service: str, owner_url: str, revision: str) -> None:
    """Take `service`'s schema back to `revision` (`base`: nothing), as its owner role."""
    command.downgrade(alembic_config(service, owner_url), revision)


def revision_sql(service: str, script_location: Path | None = None) -> dict[str, str]:
    """The offline SQL of each of `service`'s revisions on its own, by revision, oldest first.

    One script per revision, as squawk reads them: a table that an earlier revision created
    counts as existing (and busy), not as created in the same transaction.
    """
    scripts: dict[str, str] = {}
    history = ScriptDirectory.from_config(
        alembic_config(service, script_location=script_location)
    ).walk_revisions()
    for revision in reversed(list(history)):
        if isinstance(revision.down_revision, tuple):
            raise ValueError(f"{service} {revision.revision}: merge revisions are not supported")
        config = alembic_config(service, script_location=script_location)
        start = f"{revision.down_revision}:" if revision.down_revision else ""
        command.upgrade(config, f"{start}{revision.revision}", sql=True)
        assert isinstance(config.output_buffer, io.StringIO)
        # Alembic's own version table has a VARCHAR(32) column: not ours to change, so not linted.
        script = config.output_buffer.getvalue().replace(
            _VERSION_COLUMN, f"    -- squawk-ignore prefer-text-field\n{_VERSION_COLUMN}", 1
        )
        # An ignore comment (`squawk_ignore`) applies to the line after it: the statement.
        script = re.sub(r"^(-- squawk-ignore [\w-]+)\n\n", r"\1\n", script, flags=re.MULTILINE)
        scripts[revision.revision] = _CONSTANT_DEFAULT_COLUMN.sub(
            r"-- A constant default: rows the previous release writes without the column get\n"
            r"-- it, so no write of theirs is refused (and PostgreSQL 11+ rewrites nothing).\n"
            r"-- squawk-ignore ban-new-write-restriction\n\1",
            script,
        )
    return scripts


def squawk_ignore(rule: str, reason: str) -> None:
    """Mark the migration's next statement as breaking squawk's `rule` on purpose, for
    `reason`: a comment in the SQL squawk reads (offline), nothing when migrating."""
    if context.is_offline_mode():
        context.get_context().impl.static_output(f"-- {reason}\n-- squawk-ignore {rule}")


def add_unique_constraint(
    table: str, name: str, columns: Sequence[str], *, schema: str, why_no_write_is_refused: str
) -> None:
    """Add a unique constraint to a table in use, without blocking its writes for long: build
    the unique index CONCURRENTLY (outside the migration's transaction), check that the
    build left a valid index, then add the constraint USING it (a brief lock, no scan).

    The release running meanwhile must never write a duplicate; the caller says why it
    does not (`why_no_write_is_refused`), which is what squawk's lint of the SQL reads. A
    build that failed (a duplicate, a timeout) leaves an invalid index behind; the check
    stops the migration there, naming it, for an operator to drop it and the duplicates."""
    with op.get_context().autocommit_block():
        squawk_ignore("ban-new-write-restriction", why_no_write_is_refused)
        op.create_index(
            name,
            table,
            list(columns),
            unique=True,
            schema=schema,
            if_not_exists=True,
            postgresql_concurrently=True,
        )
    if not context.is_offline_mode():
        valid = op.get_bind().execute(
            text(
                "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
                " WHERE c.relname = :name AND c.relnamespace = CAST(:schema AS regnamespace)"
            ),
            {"name": name, "schema": schema},
        )
        if valid.scalar() is not True:
            raise RuntimeError(
                f"the unique index {schema}.{name} was not built valid (duplicates in "
                f"{table} ({', '.join(columns)}), or a build interrupted): drop it with "
                f"DROP INDEX CONCURRENTLY {schema}.{name}, fix the rows, migrate again"
            )
    squawk_ignore("ban-new-write-restriction", why_no_write_is_refused)
    op.execute(
        f'ALTER TABLE {schema}."{table}" ADD CONSTRAINT "{name}" UNIQUE USING INDEX "{name}"'
    )


def run_migration_env(service: str) -> None:
    """Body of every service's Alembic env.py: migrate within the service's own schema."""
    if context.is_offline_mode():
        _run_migrations(service, dialect_name="postgresql", literal_binds=True)
        return
    with migration_engine(context.config.attributes["url"]).connect() as connection:
        _run_migrations(service, connection=connection)


def migration_engine(url: str) -> Engine:
    """The engine migrations run on. Its errors never carry a statement's values: a failed
    migration's log (a Job's, shipped like the services') shows the statement's shape only."""
    return create_engine(url, poolclass=pool.NullPool, hide_parameters=True)


def _run_migrations(service: str, **target: Any) -> None:
    """All pending revisions in one transaction, serialised between concurrent migrators."""
    context.configure(
        **target,
        version_table_schema=service,
        include_schemas=True,
        # Autogenerate compares our own schema only; the others belong to other services.
        include_name=lambda name, kind, _parents: kind != "schema" or name == service,
        transaction_per_migration=False,
    )
    with context.begin_transaction():
        # Two rollouts may migrate at once; the second waits, then finds nothing to do.
        context.execute(f"SELECT pg_advisory_xact_lock(hashtext('upstream.migrate.{service}'))")
        # A DDL lock queued behind a long query blocks every query after it: give up early.
        context.execute(f"SET lock_timeout = '{LOCK_TIMEOUT}'")
        context.execute(f"SET statement_timeout = '{STATEMENT_TIMEOUT}'")
        context.run_migrations()


def local_admin_url() -> str:
    """Admin URL from DATABASE_URL, else the local cluster's, started if it is not running."""
    if url := os.environ.get("DATABASE_URL"):
        return url
    cluster = LocalPostgres(DEFAULT_DATA_DIR, int(os.environ.get("UPSTREAM_PG_PORT", DEFAULT_PORT)))
    cluster.start()
    return cluster.admin_url()


def local_passwords(services: Iterable[str] = SERVICES) -> dict[str, str]:
    """Role passwords for local runs, generated once into `.local/secrets.json`."""
    return {
        name: load_or_create(f"db_password_{name}", lambda: secrets.token_urlsafe(24))
        for service in services
        for name in (role_name(service, role) for role in ROLES)
    }


def main(argv: list[str] | None = None) -> int:
    """Command line: `migrate` (bootstrap, then upgrade) or `sql` (write each revision's SQL)."""
    parser = argparse.ArgumentParser(prog="python -m runtime.schemas", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    migrate_command = commands.add_parser("migrate", help="bootstrap roles, upgrade to head")
    sql_command = commands.add_parser("sql", help="write <service>-<revision>.sql files")
    sql_command.add_argument("--out-dir", type=Path, required=True)
    for subcommand in (migrate_command, sql_command):
        subcommand.add_argument("--service", choices=SERVICES, help="default: every service")
    upgrade_command = commands.add_parser(
        "upgrade",
        help="upgrade one service to head as the owner role DATABASE_URL logs in as "
        "(a deployment's migration Job; the roles exist already)",
    )
    downgrade_command = commands.add_parser(
        "downgrade",
        help="take one service back to a revision as the owner role DATABASE_URL logs in as "
        "(an incident's last resort: releases roll back without it)",
    )
    downgrade_command.add_argument("--to", required=True, help="a revision, or base")
    for subcommand in (upgrade_command, downgrade_command):
        subcommand.add_argument("--service", choices=SERVICES, required=True)
    args = parser.parse_args(argv)
    if args.command in ("upgrade", "downgrade"):
        setup_logging("migrate", os.environ.get("LOG_LEVEL", "INFO"))
        owner_url = os.environ.get("DATABASE_URL", "")
        if not owner_url:
            parser.error(f"{args.command} needs DATABASE_URL: the service's owner role")
        owner_url = owner_url.replace("postgresql://", f"{DRIVER}://", 1)
        if args.command == "upgrade":
            migrate(args.service, owner_url)
            print(f"{args.service}: migrated to head")
        else:
            downgrade(args.service, owner_url, args.to)
            print(f"{args.service}: migrated down to {args.to}")
        return 0
    services = (args.service,) if args.service else SERVICES
    if args.command == "sql":
        for service in services:
            for revision, script in revision_sql(service).items():
                path = args.out_dir / f"{service}-{revision}.sql"
                path.write_text(script)
                print(path)
        return 0
    # The services' JSON log, scrubbed of values, also for a migration run as a Job. Not
    # `Settings.from_env`, which makes a token secret and a page-token key it has no use for.
    setup_logging("migrate", os.environ.get("LOG_LEVEL", "INFO"))
    admin_url = local_admin_url()
    passwords = local_passwords(services)
    bootstrap(admin_url, passwords, services)
    for service in services:
        owner = role_name(service, "owner")
        migrate(service, service_url(admin_url, service, "owner", passwords[owner]))
        print(f"{service}: migrated to head")
    return 0


if __name__ == "__main__":
    sys.exit(main())
