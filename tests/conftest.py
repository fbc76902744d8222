"""Fixtures shared by every test folder."""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
import psycopg
import pytest
from hypothesis import settings
from psycopg import sql
from sqlalchemy import make_url

from gen.upstream.drift.v1 import drift_service_pb2_grpc
from gen.upstream.ingest.v1 import ingest_service_pb2_grpc
from gen.upstream.reports.v1 import reports_service_pb2_grpc
from runtime import schemas
from runtime.postgres import LocalPostgres
from runtime.settings import LOCAL_DIR
from tests.system import System, running_system

# --- PostgreSQL ----------------------------------------------------------------------------
# `postgres`: one real PostgreSQL per test session with every service's schema and roles
# bootstrapped and migrated to head. A fresh local cluster under .local/, or, when
# DATABASE_URL is set, a throwaway database on that server (roles are server-wide, so there
# the fixed role names are shared and their passwords reset).


@dataclass(frozen=True)
class PostgresUnderTest:
    """The session's database: its superuser URL, and a URL for each service role."""

    admin_url: str
    passwords: Mapping[str, str]

    def url(self, service: str, role: schemas.Role = "app") -> str:
        """SQLAlchemy URL (`postgresql+psycopg://`) logged in as `service`'s `role` role."""
        name = schemas.role_name(service, role)
        return schemas.service_url(self.admin_url, service, role, self.passwords[name])


@pytest.fixture(scope="session")
def postgres(unused_tcp_port_factory: Callable[[], int]) -> Iterator[PostgresUnderTest]:
    """A migrated database for the whole session; see PostgresUnderTest."""
    passwords = {
        schemas.role_name(service, role): secrets.token_urlsafe(24)
        for service in schemas.SERVICES
        for role in schemas.ROLES
    }
    server_url = os.environ.get("DATABASE_URL")
    session_database = (
        _throwaway_database(server_url) if server_url else _local_cluster(unused_tcp_port_factory())
    )
    with session_database as admin_url:
        schemas.bootstrap(admin_url, passwords)
        database = PostgresUnderTest(admin_url, passwords)
        for service in schemas.SERVICES:
            schemas.migrate(service, database.url(service, "owner"))
        yield database


@contextmanager
def own_database(
    postgres: PostgresUnderTest, services: tuple[str, ...] = schemas.SERVICES
) -> Iterator[PostgresUnderTest]:
    """A new database on the session's server with `services` migrated, logged into by the
    session's roles, dropped afterwards: for tests whose queued work (runs, outbox events)
    the session's running system must not take."""
    name = f"upstream_own_{secrets.token_hex(4)}"
    server = schemas.libpq_url(postgres.admin_url)
    with psycopg.connect(server, autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    database = PostgresUnderTest(
        make_url(postgres.admin_url).set(database=name).render_as_string(hide_password=False),
        postgres.passwords,
    )
    try:
        schemas.bootstrap(database.admin_url, postgres.passwords, services)
        for service in services:
            schemas.migrate(service, database.url(service, "owner"))
        yield database
    finally:
        with psycopg.connect(server, autocommit=True) as connection:
            connection.execute(
                sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture
def pg_scratch_folder() -> Iterator[Path]:
    """An empty folder the PostgreSQL system user can reach; clusters in it are stopped after."""
    with _scratch_folder() as folder:
        yield folder


@contextmanager
def _scratch_folder() -> Iterator[Path]:
    """A folder under .local/ (pytest's tmp_path is 0700, closed to the pg system user)."""
    LOCAL_DIR.mkdir(exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="test-pg-", dir=LOCAL_DIR))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        for data_dir in folder.glob("*/PG_VERSION"):
            LocalPostgres(data_dir.parent, port=0).stop()
        shutil.rmtree(folder)


@contextmanager
def _local_cluster(port: int) -> Iterator[str]:
    """A new cluster on `port`; yields its admin URL."""
    with _scratch_folder() as folder:
        cluster = LocalPostgres(folder / "data", port)
        cluster.start()
        yield cluster.admin_url()


@contextmanager
def _throwaway_database(server_url: str) -> Iterator[str]:
    """A new database on the server of `server_url`, dropped afterwards; yields its URL."""
    name = f"upstream_test_{secrets.token_hex(4)}"
    with psycopg.connect(schemas.libpq_url(server_url), autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(schemas.libpq_url(server_url), autocommit=True) as connection:
            connection.execute(
                sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name))
            )


# --- The running system -------------------------------------------------------------------
# `system`: ingest, drift, reports and the gateway as real processes on free ports, each
# service logged in as its own app role, spans exported to an in-test OTLP receiver.


@pytest.fixture(scope="session")
def system(postgres: PostgresUnderTest) -> Iterator[System]:
    with running_system({s: postgres.url(s, "app") for s in schemas.SERVICES}) as running:
        yield running


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test its own node id. Schemathesis (4.32, under pytest 9) gives each operation's
    test the function's node id, its operation only in the test's name; pytest-xdist hands
    tests out by node id, so all but one operation would go untested on several workers."""
    for item in items:
        name = item.name
        if "[" in name and name.endswith("]") and not item.nodeid.endswith("]"):
            item._id = item._id.with_params(name[name.index("[") + 1 : -1])  # type: ignore[attr-defined]


# Hypothesis: no per-example deadline. Under a loaded 2-core CI machine, the first example
# of a test can take 100× its usual time, which says nothing about the code under test.
settings.register_profile("upstream", deadline=None)
settings.load_profile("upstream")


# gRPC stubs of the session's services, over real sockets.
@pytest.fixture
def ingest(system: System) -> Iterator[ingest_service_pb2_grpc.IngestServiceStub]:
    with grpc.insecure_channel(system.targets["ingest"]) as channel:
        yield ingest_service_pb2_grpc.IngestServiceStub(channel)


@pytest.fixture
def drift(system: System) -> Iterator[drift_service_pb2_grpc.DriftServiceStub]:
    with grpc.insecure_channel(system.targets["drift"]) as channel:
        yield drift_service_pb2_grpc.DriftServiceStub(channel)


@pytest.fixture
def reports(system: System) -> Iterator[reports_service_pb2_grpc.ReportsServiceStub]:
    with grpc.insecure_channel(system.targets["reports"]) as channel:
        yield reports_service_pb2_grpc.ReportsServiceStub(channel)
