"""`python -m runtime.postgres`, the launcher behind `make db` and `make run`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from runtime.postgres import EXIT_NOT_RUNNING
from runtime.schemas import libpq_url
from runtime.settings import REPO_ROOT


def test_start_status_url_and_stop(pg_scratch_folder: Path, unused_tcp_port: int) -> None:
    cluster_options = [
        "--data-dir",
        str(pg_scratch_folder / "data"),
        "--port",
        str(unused_tcp_port),
    ]

    def launcher(command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "runtime.postgres", command, *cluster_options],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )

    started = launcher("start")
    assert started.returncode == 0, started.stderr
    admin_url = started.stdout.strip()
    with psycopg.connect(libpq_url(admin_url)) as connection:
        assert connection.execute("SELECT current_database()").fetchone() == ("upstream",)

    again = launcher("start")
    assert (again.returncode, again.stdout.strip()) == (0, admin_url)
    status = launcher("status")
    assert status.returncode == 0
    assert f"running on 127.0.0.1:{unused_tcp_port}" in status.stdout
    assert launcher("url").stdout.strip() == admin_url

    stopped = launcher("stop")
    assert stopped.returncode == 0, stopped.stderr
    assert launcher("status").returncode == EXIT_NOT_RUNNING
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(libpq_url(admin_url), connect_timeout=2)
