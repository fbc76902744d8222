"""Alembic environment of the ingest service: online and offline (`--sql`) upgrades."""

from runtime.schemas import run_migration_env

run_migration_env("ingest")
