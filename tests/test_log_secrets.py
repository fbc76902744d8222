"""No token, webhook secret, statement value or claim data (claim ids, payers, patients' names
and member ids) reaches a log or Sentry: the whole output of a `make run` fed the error paths,
the errors its processes sent to a Sentry ingest, and the log format on real PostgreSQL
errors."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import gzip
import json
import logging
import os
import pty
import re
import secrets
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import IO, Any

import brotli
import httpx
import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError, IntegrityError

from devtools.stack import wait_or_kill
from runtime import schemas
from runtime.auth import Role, mint_token
from runtime.db import create_engine
from runtime.postgres import LocalPostgres
from runtime.settings import REPO_ROOT, Settings
from runtime.telemetry import log_formatter
from tests.conftest import PostgresUnderTest
from tests.fixtures import X12_835_FIXTURES
from tests.system import SERVICES, base_env, free_port, serving_http

JWT = re.compile(r"eyJ[\w-]+\.eyJ[\w-]+\.[\w-]+")
BANNER_END = "Ctrl-C stops everything."
STARTUP_SECONDS = 120.0
# What the test's own database constraints refuse: database errors no request validation
# prevents, whose PostgreSQL DETAIL quotes the whole refused row.
REFUSED_DISPLAY_NAME = "refused by the database"
REFUSED_CLAIM_PREFIX = "REFUSED"
CSV_HEADER = (
    "claim_id,payer,procedure_code,service_date,submitted_date,decision_date,status,"
    "billed_amount,allowed_amount,paid_amount,patient_responsibility,carc_codes\n"
)


def _marker(kind: str) -> str:
    """A value no log line could hold by chance: `kind` and a random part."""
    return f"{kind}{secrets.token_hex(6)}"


def _random_part(marker: str) -> str:
    return marker[-12:]


# --- the log format, on errors of the real PostgreSQL ---------------------------------------


def _logged(error: BaseException) -> list[str]:
    """The JSON lines of `error` logged the three ways code logs one: as the record's
    exception, as an argument of the message, and as an extra field."""
    formatter = log_formatter("tests")
    records = [
        logging.LogRecord("upstream.rpc", logging.ERROR, __file__, 1, "unhandled error", (), None),
        logging.LogRecord("upstream.rpc", logging.ERROR, __file__, 1, "failed: %s", (error,), None),
        logging.LogRecord("upstream.outbox", logging.WARNING, __file__, 1, "failed", (), None),
    ]
    records[0].exc_info = (type(error), error, error.__traceback__)
    records[2].error = error
    return [formatter.format(record) for record in records]


def test_a_unique_violation_is_logged_by_its_shape_never_its_values(
    postgres: PostgresUnderTest,
) -> None:
    customer, claim = _marker("customer"), _marker("CLM")
    # A plain engine, which shows parameters: the log format alone must keep them out.
    engine = sa.create_engine(postgres.url("reports"))
    try:
        with engine.connect() as connection:
            connection.execute(
                sa.text(
                    "CREATE TEMP TABLE claim_probe (customer_id text, claim_id text, "
                    "PRIMARY KEY (customer_id, claim_id))"
                )
            )
            insert = sa.text("INSERT INTO claim_probe (customer_id, claim_id) VALUES (:c, :k)")
            connection.execute(insert, {"c": customer, "k": claim})
            with pytest.raises(IntegrityError) as raised:
                connection.execute(insert, {"c": customer, "k": claim})
    finally:
        engine.dispose()
    # What `str(error)` and a default traceback carry: the DETAIL and the parameters.
    assert f"=({customer}, {claim}) already exists" in str(raised.value)
    assert "[parameters:" in str(raised.value)
    for line in _logged(raised.value):
        record = json.loads(line)
        assert "UniqueViolation" in line and "SQLSTATE 23505" in line, record
        assert "claim_probe_pkey" in line, record
        assert "INSERT INTO claim_probe (customer_id, claim_id) VALUES" in line, record
        for leaked in (customer, claim, "[parameters:", "already exists", "DETAIL"):
            assert leaked not in line, record
    traceback_text = json.loads(_logged(raised.value)[0])["exc_info"]
    # Both exceptions of the chain, the driver's and SQLAlchemy's, each in its shape.
    assert "psycopg.errors.UniqueViolation SQLSTATE 23505" in traceback_text
    assert "sqlalchemy.exc.IntegrityError (psycopg.errors.UniqueViolation)" in traceback_text
    assert "direct cause of the following exception" in traceback_text


def test_a_copy_error_is_logged_without_the_value_it_quotes(postgres: PostgresUnderTest) -> None:
    claim, bad_date = _marker("CLM"), _marker("date")
    with psycopg.connect(schemas.libpq_url(postgres.url("ingest"))) as connection:
        connection.execute("CREATE TEMP TABLE decision_probe (claim_id text, decision_date date)")
        with (
            pytest.raises(psycopg.errors.InvalidDatetimeFormat) as raised,
            connection.cursor().copy("COPY decision_probe FROM STDIN") as copy,
        ):
            copy.write_row((claim, bad_date))
    assert bad_date in str(raised.value)
    for line in _logged(raised.value):
        assert "psycopg.errors.InvalidDatetimeFormat SQLSTATE 22007" in line
        assert bad_date not in line and claim not in line and "decision_probe, line" not in line


async def test_the_services_engine_keeps_a_statements_values_out_of_its_errors(
    postgres: PostgresUnderTest,
) -> None:
    secret = "whsec_" + secrets.token_hex(8)
    settings = Settings.from_env("reports", base_env(DATABASE_URL=postgres.url("reports")))
    engine = create_engine(settings)
    try:
        async with engine.connect() as connection:
            with pytest.raises(DBAPIError) as raised:
                await connection.execute(
                    sa.text("SELECT length(CAST(:secret AS text)) / 0"), {"secret": secret}
                )
    finally:
        await engine.dispose()
    assert "division by zero" in str(raised.value)
    assert secret not in str(raised.value)
    assert "[parameters:" not in str(raised.value)


# --- a whole `make run` ------------------------------------------------------------------------


@dataclass
class MakeRun:
    """`python -m devtools.stack` (what `make run` starts) and how to reach what it runs."""

    process: subprocess.Popen[bytes]
    gateway_url: str
    settings: Settings
    admin_url: str

    def client(self, customer: str, token: str | None = None) -> httpx.Client:
        token = token or mint_token(
            self.settings,
            subject=f"admin@{customer}",
            customer=customer,
            role=Role.ADMIN,
            ttl_seconds=600,
        )
        return httpx.Client(
            base_url=self.gateway_url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )


@contextmanager
def make_run(
    folder: Path, stdout: IO[bytes] | int, stderr: IO[bytes] | int, **settings: str
) -> Iterator[MakeRun]:
    """The whole system as `make run` starts it, on a PostgreSQL of its own (`make run`
    resets the roles' passwords, which are shared by every database of a server), its output
    to `stdout` and `stderr`, `settings` added to its environment; stopped with Ctrl-C's
    signal."""
    cluster = LocalPostgres(folder / "data", free_port())
    cluster.start()
    env = base_env(
        DATABASE_URL=cluster.admin_url(),
        GATEWAY_PORT=str(free_port()),
        **{f"{service.upper()}_TARGET": f"127.0.0.1:{free_port()}" for service in SERVICES},
        **{f"{service.upper()}_METRICS_PORT": str(free_port()) for service in SERVICES},
        **settings,
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "devtools.stack", "--no-demo"],
        cwd=REPO_ROOT,
        env=env,
        stdout=stdout,
        stderr=stderr,
    )
    try:
        yield MakeRun(
            process,
            f"http://127.0.0.1:{env['GATEWAY_PORT']}",
            Settings.from_env("tests", env),
            cluster.admin_url(),
        )
    finally:
        stop(process)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
    wait_or_kill(process, 60)


def wait_for(what: str, ready: Callable[[], bool], process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while not ready():
        assert process.poll() is None, f"make run exited while waiting for {what}"
        assert time.monotonic() < deadline, f"no {what} after {STARTUP_SECONDS:g} s"
        time.sleep(0.2)


def test_make_run_shows_its_token_on_a_terminal_and_nowhere_else(
    pg_scratch_folder: Path,
) -> None:
    log_path = pg_scratch_folder / "run.log"
    terminal, terminal_side = pty.openpty()
    shown = bytearray()

    def banner_shown() -> bool:
        while select.select([terminal], [], [], 0.1)[0]:
            shown.extend(os.read(terminal, 65536))
        return BANNER_END.encode() in shown

    try:
        with open(log_path, "wb") as log, make_run(pg_scratch_folder, terminal_side, log) as run:
            wait_for("the banner on the terminal", banner_shown, run.process)
            token = JWT.search(shown.decode())
            assert token is not None, shown.decode()
            with run.client("acme", token.group()) as client:
                events = client.get("/v1/customers/acme/driftEvents")
            assert events.status_code == 200, events.text
    finally:
        os.close(terminal_side)
        os.close(terminal)
    log_text = log_path.read_text()
    assert '"service": "gateway"' in log_text
    assert JWT.search(log_text) is None


def _csv(rows: list[tuple[str, str]]) -> bytes:
    lines = [
        f"{claim},{payer},99213,2026-03-01,2026-03-02,2026-03-14,PAID,150.00,100.00,80.00,20.00,"
        "CO-45"
        for claim, payer in rows
    ]
    return (CSV_HEADER + "".join(line + "\n" for line in lines)).encode()


def _remittance(marks: dict[str, str]) -> bytes:
    """An X12 835 whose two patients (NM1*QC) have the marked names and member ids."""
    text = (X12_835_FIXTURES / "managed-care.835").read_text()
    for number, (last, first, member) in enumerate(
        (("BUDD", "WILLIAM", "33344555510"), ("SETTLE", "SUSAN", "44455666610"))
    ):
        text = text.replace(
            f"NM1*QC*1*{last}*{first}****MI*{member}~",
            f"NM1*QC*1*{marks[f'patient {number}']}*{marks[f'first name {number}']}****MI*"
            f"{marks[f'member id {number}']}~",
        )
    return text.encode()


def _with_position(token: str, position: list[Any]) -> str:
    """`token` with the position it records replaced, where it is readable JSON; else the
    token with `position` appended, as a client tampering blindly would."""
    try:
        payload = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, binascii.Error):
        payload = None
    if not isinstance(payload, dict) or "a" not in payload:
        return token + base64.urlsafe_b64encode(json.dumps(position).encode()).decode()
    payload["a"] = position
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


def _webhook(display_name: str, marks: dict[str, str]) -> dict[str, Any]:
    return {
        "displayName": display_name,
        "url": f"https://{marks['webhook host']}.example.com/drift",
        "eventTypes": ["DRIFT_EVENT_OPENED"],
    }


def _feed_error_paths(run: MakeRun, customer: str, marks: dict[str, str]) -> None:
    """Claims with recognisable values, a webhook, and every error path around them."""
    base = f"/v1/customers/{customer}"
    claims = [(marks[f"claim id {i}"], marks[f"payer {i % 2}"]) for i in range(4)]
    csv_headers = {"content-type": "text/csv"}
    with run.client(customer) as client:
        uploaded = client.post(
            f"{base}/uploads",
            content=_csv(claims),
            headers={**csv_headers, "Idempotency-Key": marks["idempotency key"]},
            params={"upload.fileName": f"{marks['file name']}.csv"},
        )
        assert uploaded.status_code == 200, uploaded.text
        # Remittances naming patients and their member ids: one read, one with a bad amount
        # in the claim of the second patient.
        remittance = _remittance(marks)
        for content in (remittance, remittance.replace(b"*1200.00*495.00*", b"*12X0.00*495.00*")):
            read = client.post(
                f"{base}/uploads", content=content, params={"upload.fileName": "remit.835"}
            )
            assert read.status_code == 200, read.text
        webhook = client.post(f"{base}/webhooks", json=_webhook(marks["webhook name"], marks))
        assert webhook.json()["signingSecret"].startswith("whsec_"), webhook.text
        first_page = client.get(f"{base}/claims", params={"pageSize": 1}).json()

        # Database errors no validation prevents: rows the database's constraints refuse.
        client.post(f"{base}/webhooks", json=_webhook(REFUSED_DISPLAY_NAME, marks))
        client.post(
            f"{base}/uploads",
            content=_csv([(f"{REFUSED_CLAIM_PREFIX}{marks['claim id 0']}", marks["payer 0"])]),
            headers=csv_headers,
            params={"upload.fileName": f"{marks['refused file name']}.csv"},
        )
        # Bad filters, and values PostgreSQL cannot take (NUL, a text where a date goes).
        for filter_text in (
            f'payer = "{marks["payer 0"]}" AND',
            f'claim_id = "{marks["claim id 1"]}\x00"',
            f'decision_date >= "{marks["filter value"]}"',
            f'{marks["filter value"]} = "{marks["payer 1"]}"',
        ):
            client.get(f"{base}/claims", params={"filter": filter_text})
        client.get(f"{base}/claims/{marks['claim id 2']}%00")
        client.post(
            f"{base}/payerMappings",
            json={"rawPayerName": f"{marks['payer 0']}\x00", "canonicalPayer": "Aetna"},
        )
        client.post(f"{base}/webhooks", json=_webhook(f"{marks['webhook name']}\x00", marks))
        client.post(
            f"{base}/uploads",
            content=_csv(claims),
            headers=csv_headers,
            params={"upload.fileName": f"{marks['file name']}\x00.csv"},
        )
        # Page tokens that are not ours, and one of ours pointing somewhere else.
        client.get(f"{base}/claims", params={"pageToken": marks["page token"]})
        forged = _with_position(
            first_page["nextPageToken"], [marks["claim id 3"], f"{marks['claim id 3']}\x00"]
        )
        client.get(f"{base}/claims", params={"pageToken": forged})
        # A file that is neither CSV nor 835, and a run whose date is out of range.
        client.post(
            f"{base}/uploads",
            content=f"{marks['claim id 0']}|{marks['payer 0']}\n".encode() * 3,
            params={"upload.fileName": f"{marks['failed file name']}.csv"},
        )
        client.post(f"{base}/driftRuns", json={"asOf": {"year": 1, "month": 1, "day": 1}})
    with run.client(customer, jwt_signed_elsewhere(customer)) as intruder:
        intruder.get(f"{base}/claims", params={"filter": f'claim_id = "{marks["claim id 0"]}"'})

    def runs_ended() -> bool:
        with run.client(customer) as client:
            listed = client.get(f"{base}/driftRuns").json().get("driftRuns", [])
        return bool(listed) and all(r["state"] in ("SUCCEEDED", "FAILED") for r in listed)

    wait_for("the drift runs to end", runs_ended, run.process)


def jwt_signed_elsewhere(customer: str) -> str:
    forger = dataclasses.replace(
        Settings.from_env("tests", base_env()), jwt_secret="another-secret-" + "x" * 32
    )
    return mint_token(
        forger, subject=f"admin@{customer}", customer=customer, role=Role.ADMIN, ttl_seconds=600
    )


def _without_caller_identity(line: str) -> str:
    """The line, less the caller's identity in the one line per call that names who called
    (logged on purpose: the tenant and subject of the token)."""
    try:
        record = json.loads(line)
    except ValueError:
        return line
    if isinstance(record, dict) and record.get("logger") == "upstream.rpc":
        record.pop("customer", None)
        record.pop("subject", None)
    return json.dumps(record)


@dataclass
class SentryIngest:
    """A real HTTP server standing in for Sentry's ingest: it keeps each envelope's items
    (the events) as the SDK sent them."""

    items: list[str] = dataclasses.field(default_factory=list)
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    def keep(self, encoding: str, body: bytes) -> None:
        if encoding == "gzip":
            body = gzip.decompress(body)
        elif encoding == "br":
            body = brotli.decompress(body)
        # An envelope: a header line, then each item's header line and payload line.
        with self.lock:
            self.items.extend(body.decode().splitlines()[2::2])

    def events(self) -> list[dict[str, Any]]:
        with self.lock:
            return [json.loads(item) for item in self.items]


@contextmanager
def sentry_ingest() -> Iterator[tuple[SentryIngest, str]]:
    """A Sentry ingest on 127.0.0.1 and the DSN that points at it."""
    ingest = SentryIngest()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            ingest.keep(self.headers.get("Content-Encoding", ""), body)
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    with serving_http(Handler) as url:
        yield ingest, url.replace("http://", "http://publickey@") + "/42"


def test_the_run_log_and_sentry_hold_no_token_secret_statement_value_or_claim_data(
    pg_scratch_folder: Path,
) -> None:
    customer = _marker("clinic")
    marks = {
        **{f"claim id {i}": _marker("CLM") for i in range(4)},
        **{f"payer {i}": _marker("Quillfeather Mutual ") for i in range(2)},
        **{name: _marker(name.split()[0]) for name in ("file name", "refused file name")},
        "failed file name": _marker("broken"),
        "idempotency key": _marker("key"),
        "webhook name": _marker("hook "),
        "webhook host": _marker("hooks"),
        "filter value": _marker("filter"),
        "page token": _marker("token"),
        **{f"patient {i}": _marker("PATIENT") for i in range(2)},
        **{f"first name {i}": _marker("FIRST") for i in range(2)},
        **{f"member id {i}": _marker("MEMBER") for i in range(2)},
    }
    log_path = pg_scratch_folder / "run.log"
    # The webhook's host resolves (to loopback, which `make run` allows) without asking DNS.
    resolved = f"{marks['webhook host']}.example.com=127.0.0.1"
    with (
        sentry_ingest() as (sentry, dsn),
        open(log_path, "wb") as log,
        make_run(
            pg_scratch_folder,
            log,
            subprocess.STDOUT,
            WEBHOOK_HOST_OVERRIDES=resolved,
            SENTRY_DSN=dsn,
        ) as run,
    ):
        wait_for("the banner", lambda: BANNER_END in log_path.read_text(), run.process)
        with psycopg.connect(schemas.libpq_url(run.admin_url), autocommit=True) as admin:
            admin.execute(
                "ALTER TABLE reports.webhooks ADD CONSTRAINT webhook_name_allowed "
                f"CHECK (display_name <> '{REFUSED_DISPLAY_NAME}')"
            )
            admin.execute(
                "ALTER TABLE ingest.claims ADD CONSTRAINT claim_id_allowed "
                f"CHECK (claim_id NOT LIKE '{REFUSED_CLAIM_PREFIX}%')"
            )
        _feed_error_paths(run, customer, marks)
        stop(run.process)
        assert run.process.returncode == 0
    # Sentry's events are checked as the log's lines are.
    lines = log_path.read_text().splitlines() + [f"sentry: {item}" for item in sentry.items]
    records = [json.loads(line) for line in lines if line.startswith("{")]

    leaks = []
    for number, line in enumerate(lines, 1):
        # Each value's random part, in whatever case or spelling a log might give it.
        checked = _without_caller_identity(line).lower()
        found = [value for value in marks.values() if _random_part(value) in checked]
        found += [customer] if _random_part(customer) in checked else []
        found = [_random_part(value) for value in found]
        found += [token.group() for token in JWT.finditer(line)]
        found += [text for text in ("whsec_", "[parameters:") if text in line]
        for text in found:
            at = line.lower().find(text.lower())
            leaks.append(f"line {number} holds {text!r}: …{line[max(at - 300, 0) : at + 100]}…")
    assert leaks == []
    # Every process's output was read (the migrations' too), and the refused rows were
    # logged by their shape.
    assert {"stack", "ingest", "drift", "reports", "gateway"} <= {r["service"] for r in records}
    assert any(r["logger"].startswith("alembic") for r in records)
    failures = "\n".join(r.get("exc_info", "") for r in records)
    assert "CheckViolation SQLSTATE 23514 constraint webhook_name_allowed" in failures
    assert "[SQL: INSERT INTO reports.webhooks" in failures
    assert "CheckViolation SQLSTATE 23514 constraint claim_id_allowed table ingest.claims" in (
        failures
    )
    assert "make -s token" in "\n".join(lines)
    # The refused rows reached Sentry as errors, each by its shape, from the service's tag.
    reported = [
        (event["tags"]["service"], value["value"])
        for event in sentry.events()
        for value in event.get("exception", {}).get("values", [])
    ]
    assert any(
        service == "upstream-reports" and "SQLSTATE 23514 constraint webhook_name_allowed" in shape
        for service, shape in reported
    ), reported
    assert any(
        service == "upstream-ingest" and "constraint claim_id_allowed" in shape
        for service, shape in reported
    ), reported
