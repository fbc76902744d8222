"""The service's database engine: async SQLAlchemy on psycopg 3, traced per statement."""

from __future__ import annotations

from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from runtime.settings import Settings


def create_engine(settings: Settings) -> AsyncEngine:
    """One engine per service process, connected as the service's own app role."""
    if not settings.database_url:
        raise RuntimeError(
            f"DATABASE_URL is not set for {settings.service}; `make run` sets it for local runs"
        )
    url = settings.database_url.replace("postgresql://", "postgresql+psycopg://", 1)
    engine = create_async_engine(
        url,
        pool_size=settings.database_pool_size,
        pool_pre_ping=True,
        # An error's text never carries the statement's values (claim ids, payer names,
        # secrets): it reaches logs, and the outbox's last_error column.
        hide_parameters=True,
        connect_args={"application_name": f"upstream-{settings.service}"},
    )
    SQLAlchemyInstrumentor().instrument(engine=engine.sync_engine)
    return engine


async def ping(engine: AsyncEngine) -> None:
    """Fail fast at start-up when the database is unreachable or the role cannot log in."""
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))
