#!/usr/bin/env bash
# Lint every service's migrations with squawk, on the SQL that `alembic upgrade --sql` gives
# (offline mode), one file per revision: what squawk flags is what PostgreSQL would run.
# Exits non-zero on violations.
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-.venv/bin/python}"
squawk="${SQUAWK:-.venv/bin/squawk}"

sql_dir="$(mktemp -d)"
trap 'rm -rf "$sql_dir"' EXIT
"$python" -m runtime.schemas sql --out-dir "$sql_dir" >/dev/null
"$squawk" --config .squawk.toml "$sql_dir"/*.sql
