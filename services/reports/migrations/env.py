"""Alembic environment of the reports service: online and offline (`--sql`) upgrades."""

from runtime.schemas import run_migration_env

run_migration_env("reports")
