"""The `upstream` command as installed in the virtualenv, run as a process against the real
services over gRPC: a history with a drift uploaded (once, however often it is retried), its
uploads, payers and events listed, an event acknowledged, a claims export built and
downloaded whole; and every failure an exit status and one line a script can rely on."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os
import subprocess
import sys
import time
import uuid
import zipfile
import zoneinfo
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures import X12_835_FIXTURES
from tests.reports.test_drift_events import HIGH, LOW, drift_event, record
from tests.reports.webhook_receiver import Receiver, receiving
from tests.scenarios import DRIFTED_PAYER as DRIFTED
from tests.scenarios import as_csv, denial_drift, run_as_of
from tests.system import System

UPSTREAM = Path(sys.executable).parent / "upstream"


def run(
    system: System, customer: str, *args: str, token: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "UPSTREAM_TOKEN": token if token is not None else system.token(customer),
        "UPSTREAM_INGEST": system.targets["ingest"],
        "UPSTREAM_DRIFT": system.targets["drift"],
        "UPSTREAM_REPORTS": system.targets["reports"],
    }
    return subprocess.run(
        [str(UPSTREAM), *args], env=env, capture_output=True, text=True, timeout=300
    )


def lines(done: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def history(
    system: System, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, Path, dict[str, Any]]:
    customer = "cli" + uuid.uuid4().hex[:8]
    start = dt.date.today() - dt.timedelta(days=300)
    scenario = denial_drift(customer, start, start + dt.timedelta(days=231))
    path = tmp_path_factory.mktemp("cli") / "history.csv"
    path.write_text(as_csv(scenario))
    (made,) = lines(
        run(system, customer, "--json", "upload", str(path), "--request-id", "history-1")
    )
    return customer, path, made


def test_an_upload_is_made_once_however_often_it_is_sent(
    system: System, history: tuple[str, Path, dict[str, Any]]
) -> None:
    customer, path, made = history
    (again,) = lines(
        run(system, customer, "--json", "upload", str(path), "--request-id", "history-1")
    )
    listed = lines(run(system, customer, "--json", "uploads"))
    human = run(system, customer, "uploads")

    assert made["state"] == "SUCCEEDED" and int(made["rowsAccepted"]) == 16_000
    assert again["name"] == made["name"]
    assert [u["name"] for u in listed] == [made["name"]]
    assert made["name"] in human.stdout and "SUCCEEDED" in human.stdout


def test_payers_and_events_are_listed_and_an_event_is_acknowledged(
    system: System, history: tuple[str, Path, dict[str, Any]]
) -> None:
    customer, _, _ = history
    payers = lines(run(system, customer, "--json", "payers"))
    deadline = time.monotonic() + 120
    while not (
        found := lines(
            run(system, customer, "--json", "events", "--payer", DRIFTED, "--metric", "DENIAL_RATE")
        )
    ):
        assert time.monotonic() < deadline, "detection found no event"
        time.sleep(1)
    event = found[0]
    (acknowledged,) = lines(
        run(
            system,
            customer,
            "--json",
            "triage",
            event["name"].rsplit("/", 1)[1],
            "--state",
            "ACKNOWLEDGED",
            "--note",
            "called the payer",
        )
    )
    after = lines(run(system, customer, "--json", "events", "--state", "ACKNOWLEDGED"))
    first = lines(run(system, customer, "--json", "events", "--limit", "1"))
    whole = run(system, customer, "event", event["name"].rsplit("/", 1)[1])

    assert DRIFTED in {p["canonicalPayer"] for p in payers}
    assert all(e["payer"] == DRIFTED and e["metric"] == "DENIAL_RATE" for e in found)
    assert (acknowledged["state"], acknowledged["triageNote"]) == (
        "ACKNOWLEDGED",
        "called the payer",
    )
    assert event["name"] in {e["name"] for e in after}
    assert len(first) == 1
    # One event whole, a fact a line, as an analyst reads it.
    assert whole.returncode == 0, whole.stderr
    said = whole.stdout.splitlines()
    facts = {
        label.rstrip(":"): value.strip()
        for label, _, value in (f.partition(": ") for f in said[2:])
    }
    evidence = event["evidence"]
    assert said[:2] == [event["name"], event["summary"]]
    assert (facts["payer"], facts["metric"]) == (DRIFTED, "DENIAL_RATE")
    assert facts["state"].startswith("ACKNOWLEDGED, ")
    assert facts["current"].endswith(
        f": {evidence['currentValue'] * 100:.1f} % of {int(evidence['currentCount']):,} "
        f"decided claims ({round(evidence['currentInterval']['level'] * 100)} % interval "
        f"{evidence['currentInterval']['lower'] * 100:.1f} % – "
        f"{evidence['currentInterval']['upper'] * 100:.1f} %)"
    )
    assert facts["test"].startswith(f"{evidence['test']}: p ")
    assert (facts["triaged"].split()[:2], facts["note"]) == (
        ["by", f"admin@{customer}"],
        "called the payer",
    )
    # The triage is in the audit log, which the command reads across the services.
    (triaged,) = lines(
        run(system, customer, "--json", "audit", "--field", "triage_note", "--service", "drift")
    )
    assert (triaged["resource"], triaged["actor"]) == (event["name"], f"admin@{customer}")
    everything = lines(run(system, customer, "--json", "audit"))
    assert {e["name"].split("/")[3] for e in everything} >= {"ingest", "drift"}
    times = [e["createTime"] for e in everything]
    assert times == sorted(times, reverse=True)


def test_each_payers_current_window_is_summarised_against_its_baseline(
    system: System, history: tuple[str, Path, dict[str, Any]]
) -> None:
    customer, _, _ = history
    everyone = lines(run(system, customer, "--json", "summaries"))
    with_events = lines(run(system, customer, "--json", "summaries", "--with-events"))
    (drifted,) = lines(run(system, customer, "--json", "summaries", "--payer", DRIFTED))
    said = run(system, customer, "summaries", "--payer", DRIFTED).stdout
    by_rate = lines(
        run(system, customer, "--json", "summaries", "--order-by", "current.denial_rate desc")
    )

    now, before = drifted["current"], drifted["baseline"]
    assert said == (
        f"{DRIFTED}  {int(now['claims']):,} claims ({int(before['claims']):,} in the baseline)  "
        f"denials {now['denialRate'] * 100:.1f} % (was {before['denialRate'] * 100:.1f} %)  "
        f"decided in {now['medianDecisionDays']:g} days "
        f"(was {before['medianDecisionDays']:g} days)  "
        f"paid/allowed {now['paidToAllowedRatio']:.2f} (was {before['paidToAllowedRatio']:.2f})  "
        f"{drifted['openEventCount']} open event{'' if drifted['openEventCount'] == 1 else 's'}\n"
    )
    assert DRIFTED in {s["payer"] for s in with_events}
    assert all(s["openEventCount"] > 0 for s in with_events)
    assert len(everyone) > len(with_events)
    rates = [s["current"].get("denialRate", 0) for s in by_rate]
    assert rates == sorted(rates, reverse=True) and by_rate[0]["payer"] == DRIFTED


def test_summaries_name_the_payers_a_later_file_left_before_their_windows(
    system: System, tmp_path: Path
) -> None:
    """A later file of one payer moves the windows past the others' claims: they have no
    summary, and the list says which payers those are, most claims first."""
    customer = "cli" + uuid.uuid4().hex[:8]
    january, november = tmp_path / "january.csv", tmp_path / "november.csv"
    header = "claim_id,payer,decision_date,billed_amount,paid_amount\n"
    january.write_text(
        header
        + "".join(f"A{n},Aetna,2026-01-{10 + n % 9},100,80\n" for n in range(3))
        + "C1,Cigna,2026-01-12,100,80\n"
    )
    november.write_text(header + "H1,Humana,2026-11-20,100,80\n")
    for path in (january, november):
        assert run(system, customer, "upload", str(path)).returncode == 0

    said = run(system, customer, "summaries")
    limited = run(system, customer, "summaries", "--limit", "1")
    scripted = lines(run(system, customer, "--json", "summaries"))

    assert said.returncode == 0, said.stderr
    listed, footer = said.stdout.splitlines()
    assert listed.startswith("Humana  1 claim (0 in the baseline)  ")
    assert footer == (
        "  + 2 payers with no claims decided in these windows, which end on the latest "
        "decision date in your files: Aetna, Cigna (their open events are not tested until "
        "their later claims are uploaded; `upstream payers` lists them)"
    )
    # A list cut short says nothing of the payers after it; scripts read summaries alone.
    assert limited.stdout.splitlines() == [listed]
    assert [s["payer"] for s in scripted] == ["Humana"]


def test_events_no_run_could_test_since_say_so(
    system: System, history: tuple[str, Path, dict[str, Any]]
) -> None:
    """The history ends weeks before today: a run as of today compares none of its payers,
    and the events it leaves open say since when, to people and to scripts."""
    customer, _, _ = history
    today = dt.datetime.now(dt.UTC).date()
    assert run_as_of(system, customer, today)["state"] == "SUCCEEDED"
    scripted = lines(run(system, customer, "--json", "events", "--payer", DRIFTED, "--active"))
    human = run(system, customer, "events", "--payer", DRIFTED, "--active")

    assert scripted and all(
        e["untestedSince"] == {"year": today.year, "month": today.month, "day": today.day}
        for e in scripted
    )
    assert human.returncode == 0, human.stderr
    assert f"(not tested since {today.isoformat()})" in human.stdout
    assert len(human.stdout.splitlines()) == len(scripted)


def test_a_detection_run_is_started_waited_for_and_listed_with_what_it_did(
    system: System, history: tuple[str, Path, dict[str, Any]]
) -> None:
    """A script starts a run as of a day and waits for it; the runs, newest first, show it
    beside the one the upload started, each with its trigger and what it found."""
    customer, _, made = history
    # The upload's run is started by ingest's outbox once the upload is in.
    deadline = time.monotonic() + 120
    while not (
        uploads := lines(
            run(system, customer, "--json", "runs", "--trigger", "UPLOAD", "--state", "SUCCEEDED")
        )
    ):
        assert time.monotonic() < deadline, "the upload started no run"
        time.sleep(1)
    as_of = uploads[0]["asOf"]
    last_day = dt.date(as_of["year"], as_of["month"], as_of["day"])
    (started,) = lines(
        run(system, customer, "--json", "run", "--as-of", last_day.isoformat(), "--wait")
    )
    listed = lines(run(system, customer, "--json", "runs"))
    human = run(system, customer, "runs", "--trigger", "MANUAL", "--limit", "1")
    again = lines(
        run(system, customer, "--json", "run", "--request-id", started["requestId"], "--wait")
    )

    assert started["state"] == "SUCCEEDED" and started["trigger"] == "MANUAL"
    assert started["asOf"] == as_of
    assert int(started["cellsTested"]) > 0 and int(started["eventsUpdated"]) > 0
    assert listed[0]["name"] == started["name"]
    times = [r["createTime"] for r in listed]
    assert times == sorted(times, reverse=True)
    # The upload started one run of its own, once, named by the upload.
    assert [(r["trigger"], r["requestId"]) for r in uploads] == [
        ("UPLOAD", made["name"].rsplit("/", 1)[1])
    ]
    assert human.returncode == 0, human.stderr
    (line,) = human.stdout.splitlines()
    assert line.startswith(f"{started['name']}  SUCCEEDED  MANUAL  as of {last_day}  ")
    assert f"{started['cellsTested']} cells tested" in line
    assert f"0 events opened, {started['eventsUpdated']} updated, 0 closed" in line
    # An upload's run, asked for by the upload's name or id.
    by_upload = [
        lines(run(system, customer, "--json", "runs", "--upload", given))
        for given in (made["name"], made["name"].rsplit("/", 1)[1])
    ]
    assert by_upload == [uploads, uploads]
    # The same request id is the same run, not a second one.
    assert [r["name"] for r in again] == [started["name"]]


def test_the_drift_settings_are_listed_and_changed_as_listed(system: System) -> None:
    """`upstream config` lists each setting as `config set` takes it; a change of two is
    made conditionally on what was read, and said with who made it."""
    customer = "cli" + uuid.uuid4().hex[:8]
    before = run(system, customer, "config")
    (changed,) = lines(
        run(
            system, customer, "--json", "config", "set", "false_discovery_rate=0.05",
            "enabled_metrics=DENIAL_RATE,DECISION_DAYS",
        )
    )  # fmt: skip
    after = run(system, customer, "config")

    assert before.returncode == 0, before.stderr
    listed = dict(line.split("  ", 1) for line in before.stdout.splitlines())
    assert listed["false_discovery_rate"] == "0.1"
    assert listed["enabled_metrics"] == "DENIAL_RATE,DECISION_DAYS,PAYMENT_RATIO,DENIAL_REASON_MIX"
    assert "current_window_days" in listed and "etag" not in listed
    assert changed["falseDiscoveryRate"] == 0.05
    assert changed["enabledMetrics"] == ["DENIAL_RATE", "DECISION_DAYS"]
    assert changed["updatedBy"] == f"admin@{customer}"
    now = dict(line.split("  ", 1) for line in after.stdout.splitlines()[:-1])
    assert {name: now[name] for name in ("false_discovery_rate", "enabled_metrics")} == {
        "false_discovery_rate": "0.05",
        "enabled_metrics": "DENIAL_RATE,DECISION_DAYS",
    }
    assert {
        k: v for k, v in now.items() if k not in ("false_discovery_rate", "enabled_metrics")
    } == {k: v for k, v in listed.items() if k not in ("false_discovery_rate", "enabled_metrics")}
    assert after.stdout.splitlines()[-1].endswith(f"by admin@{customer}")


def test_a_claims_export_is_built_and_downloaded_whole(
    system: System, history: tuple[str, Path, dict[str, Any]], tmp_path: Path
) -> None:
    customer, _, _ = history
    first = dt.date.today() - dt.timedelta(days=300)
    (report,) = lines(
        run(
            system, customer, "--json", "report", "create", "--kind", "CLAIMS_EXPORT",
            "--format", "CSV", "--start", str(first), "--end", str(first + dt.timedelta(days=30)),
            "--payer", DRIFTED, "--wait",
        )
    )  # fmt: skip
    target = tmp_path / "export.csv"
    (downloaded,) = lines(
        run(system, customer, "--json", "report", "download", report["name"], "-o", str(target))
    )

    assert report["state"] == "SUCCEEDED"
    assert downloaded == {
        "report": report["name"],
        "file": str(target),
        "sizeBytes": int(report["sizeBytes"]),
    }
    body = target.read_text()
    assert body.startswith("claim_id,payer,") and f",{DRIFTED}," in body
    assert not list(tmp_path.glob("*.part"))


@pytest.mark.parametrize(
    ("args", "token", "status", "words"),
    [
        (("--customer", "acme", "uploads"), "not-a-token", 5, "upstream: UNAUTHENTICATED: "),
        (("uploads",), "not-a-token", 2, "upstream: USAGE: the token names no customer"),
        (("triage", "ev_none", "--state", "ACKNOWLEDGED"), None, 4, "upstream: NOT_FOUND: "),
        (("events", "--payer", "x" * 2000), None, 3, "upstream: INVALID_ARGUMENT: filter"),
        (("upload", "/no/such/file.csv"), None, 2, "USAGE: /no/such/file.csv: no such file"),
        (("uploads",), "", 2, "upstream: USAGE: no token"),
        (("run", "--as-of", "2100-01-01"), None, 3,
         "INVALID_ARGUMENT: as_of 2100-01-01 is in the future"),
        (("runs", "--trigger", "NIGHTLY"), None, 2, "invalid choice: 'NIGHTLY'"),
        (("config", "set", "fdr=0.05"), None, 2, "is not NAME=VALUE of a drift setting"),
        (("config", "set", "min_current_claims=many"), None, 2,
         "min_current_claims: 'many' is not a whole number"),
        (("config", "set", "enabled_metrics=DENIALS"), None, 2,
         "enabled_metrics: 'DENIALS' is not metrics separated by commas (DENIAL_RATE,"),
        (("config", "set", "false_discovery_rate=2"), None, 3,
         "drift_config.false_discovery_rate: must be between 0.001 and 0.5, got 2"),
        (("report", "create", "--kind", "CLAIMS_EXPORT", "--format", "CSV", "--start", "March",
          "--end", "2026-03-31"), None, 2, "is not a date"),
        (("alert-policy", "set", "suppression_window=soon"), None, 2,
         "suppression_window: 'soon' is not a duration (90s, 15m, 2h, 1d)"),
        (("alert-policy", "set", "minimum_severity=URGENT"), None, 2,
         "minimum_severity: 'URGENT' is not one of LOW, MEDIUM, HIGH"),
        (("alert-policy", "set", "slack_webhook_host=x"), None, 2,
         "is not NAME=VALUE of an alert setting (email_recipients, slack_webhook_url,"),
        (("alert-policy", "set", "time_zone=Mars/Olympus"), None, 3,
         "INVALID_ARGUMENT: alert_policy.time_zone must be an IANA time zone such as "
         "America/Chicago, got 'Mars/Olympus'\n"),
        (("schedule", "create", "--name", "x", "--cron", "every monday", "--kind",
          "CLAIMS_EXPORT", "--format", "CSV", "--lookback-days", "7"), None, 3,
         "INVALID_ARGUMENT: report_schedule.cron must be a 5-field cron expression"),
        (("webhook", "create", "https://hooks.example.com/x", "--event-type", "OPENED"), None, 2,
         "invalid choice: 'OPENED'"),
    ],
)  # fmt: skip
def test_a_failure_is_an_exit_status_and_one_line_on_stderr(
    system: System, args: tuple[str, ...], token: str | None, status: int, words: str
) -> None:
    customer = "cli" + uuid.uuid4().hex[:8]
    done = run(system, customer, *args, token=token)

    assert done.returncode == status, done.stderr
    assert words in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""


def test_a_reader_that_goes_away_ends_the_command_quietly(
    system: System, history: tuple[str, Path, dict[str, Any]]
) -> None:
    customer, _, _ = history
    env = {
        **os.environ,
        "UPSTREAM_TOKEN": system.token(customer),
        "UPSTREAM_INGEST": system.targets["ingest"],
    }
    reader = subprocess.Popen(
        [str(UPSTREAM), "--json", "payers"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert reader.stdout is not None and reader.stderr is not None
    reader.stdout.close()  # as `| head` does once it has read enough
    status = reader.wait(timeout=60)

    assert status == 141
    assert reader.stderr.read() == b""


@pytest.mark.parametrize("name", ["remits.835.gz", "remits.txt", "remits.zip"])
def test_a_compressed_or_plainly_named_835_uploads_as_its_content_says(
    system: System, tmp_path: Path, name: str
) -> None:
    """The file's name decides nothing its content does not: `.835.gz` is an 835, and a
    `.txt` or `.zip` is read for what it holds."""
    remits = (X12_835_FIXTURES / "managed-care.835").read_bytes()
    path = tmp_path / name
    if name.endswith(".gz"):
        path.write_bytes(gzip.compress(remits))
    elif name.endswith(".zip"):
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("remits.835", remits)
    else:
        path.write_bytes(remits)
    (made,) = lines(run(system, "cli" + uuid.uuid4().hex[:8], "--json", "upload", str(path)))
    assert (made["state"], made["format"], made["fileName"]) == ("SUCCEEDED", "X12_835", name)
    assert int(made["rowsAccepted"]) > 0


BAD_AMOUNT = "'1OO' is not an amount (e.g. 1234.56) (BAD_AMOUNT)"


def test_an_upload_says_which_rows_were_rejected_and_why(system: System, tmp_path: Path) -> None:
    """An upload with bad rows prints its first 20, each with its line, column, value and
    reason, and how to see the rest; `upstream rejections` lists them all, or one column's
    or one reason's."""
    customer = "cli" + uuid.uuid4().hex[:8]
    rows = ["claim_id,payer,decision_date,billed_amount,paid_amount"]
    for n in range(50):  # row n on line n + 2: every fourth a bad date, every fourth a bad amount
        decided = "someday" if n % 4 == 0 else "2026-02-10"
        billed = "1OO" if n % 4 == 2 else "100"
        rows.append(f"R{n},Aetna,{decided},{billed},80")
    path = tmp_path / "march.csv"
    path.write_text("\n".join(rows) + "\n")

    done = run(system, customer, "upload", str(path))
    assert done.returncode == 0, done.stderr
    printed = done.stdout.splitlines()
    upload_id = printed[0].split()[0].rsplit("/", 1)[1]
    assert printed[0].endswith("march.csv  25 rows accepted  25 rejected")
    assert printed[1:3] == [
        "  rejected: line 2  decision_date  \"someday\"  'someday' is not a date (use "
        "2026-03-14 or 03/14/2026) (BAD_DATE)",
        '  rejected: line 4  billed_amount  "1OO"  ' + BAD_AMOUNT,
    ]
    assert [line.split()[2] for line in printed[1:21]] == [str(n) for n in range(2, 42, 2)]
    assert printed[21:] == [f"  … 5 more: upstream rejections {upload_id}"]

    every = lines(run(system, customer, "--json", "rejections", upload_id))
    dates = lines(run(system, customer, "--json", "rejections", upload_id, "--code", "BAD_DATE"))
    amounts = run(system, customer, "rejections", upload_id, "--column", "billed_amount")
    assert [int(r["lineNumber"]) for r in every] == list(range(2, 52, 2))
    assert [int(r["lineNumber"]) for r in dates] == list(range(2, 52, 4))
    assert amounts.stdout.splitlines() == [
        f'line {line}  billed_amount  "1OO"  {BAD_AMOUNT}' for line in range(4, 52, 4)
    ]


def test_an_upload_may_name_its_columns_and_keep_nothing_if_a_row_is_bad(
    system: System, tmp_path: Path
) -> None:
    """`--column` names the header of a column no export spelling gives; with
    `--all-or-nothing` one bad row keeps nothing and the command fails (exit 3) saying which
    row and why; the same file fixed is kept whole."""
    customer = "cli" + uuid.uuid4().hex[:8]
    header = "Encounter Ref,Insurer,Adjudicated,Charge,Remitted"
    bad = tmp_path / "bad.csv"
    bad.write_text(f"{header}\nE1,Aetna,2026-02-10,100,80\nE2,Aetna,someday,100,80\n")
    columns = ("--column", "claim_id=Encounter Ref", "--column", "payer=Insurer",
               "--column", "decision_date=Adjudicated", "--column", "billed_amount=Charge",
               "--column", "paid_amount=Remitted")  # fmt: skip

    unnamed = run(system, customer, "upload", str(bad))
    assert unnamed.returncode == 3, unnamed.stderr
    assert unnamed.stderr.startswith("upstream: INVALID_ARGUMENT: bad.csv: ")
    assert "name those with --column NAME=HEADER" in unnamed.stderr

    failed = run(system, customer, "upload", str(bad), "--all-or-nothing", *columns)
    assert (failed.returncode, failed.stdout) == (3, ""), failed.stderr
    assert failed.stderr.startswith("upstream: INVALID_ARGUMENT: ")
    assert "ALL_OR_NOTHING" in failed.stderr
    assert "line 3 (decision_date): 'someday' is not a date" in failed.stderr
    assert lines(run(system, customer, "--json", "uploads"))[0]["state"] == "FAILED"
    # Newest first, each failed upload saying why.
    listed = run(system, customer, "uploads").stdout.splitlines()
    assert [line.split("  ")[1:5] for line in listed] == [
        ["FAILED", "bad.csv", "0 rows accepted", "1 rejected"],
        ["FAILED", "bad.csv", "0 rows accepted", "0 rejected"],
    ]
    assert listed[0].endswith(
        "line 3 (decision_date): 'someday' is not a date (use 2026-03-14 or 03/14/2026)"
    )
    assert "claim_id" in listed[1].split("  ", 5)[5]

    good = tmp_path / "good.csv"
    good.write_text(f"{header}\nE1,Aetna,2026-02-10,100,80\nE2,Aetna,2026-02-11,100,80\n")
    (made,) = lines(run(system, customer, "--json", "upload", str(good), *columns))
    assert (made["state"], made["rowsAccepted"], made["mode"]) == ("SUCCEEDED", "2", "ACCEPT_VALID")
    assert made["columnMap"]["claim_id"] == "Encounter Ref"
    assert run(system, customer, "upload", str(good), "--column", "claim_id").returncode == 2


def test_a_payer_name_is_mapped_listed_and_unmapped(system: System, tmp_path: Path) -> None:
    """`map` names the payer a raw name is (its claims move to it), `mappings` lists it,
    `unmap` takes it back; `payers` shows each step."""
    customer = "cli" + uuid.uuid4().hex[:8]
    path = tmp_path / "march.csv"
    path.write_text(
        "claim_id,payer,decision_date,billed_amount,paid_amount\n"
        "M1,Aetna,2026-02-10,100,80\nM2,PT RESP,2026-02-10,100,0\n"
    )
    assert run(system, customer, "upload", str(path)).returncode == 0

    def payers() -> dict[str, str]:
        return {
            p["rawPayerName"]: p["canonicalPayer"]
            for p in lines(run(system, customer, "--json", "payers"))
        }

    before = payers()
    made = run(system, customer, "map", "PT RESP", "Self Pay")
    assert made.returncode == 0, made.stderr
    (name, said) = made.stdout.strip().split("  ")
    assert said == "PT RESP → Self Pay"
    mapped = payers()
    listed = lines(run(system, customer, "--json", "mappings"))
    gone = run(system, customer, "unmap", name.rsplit("/", 1)[1])
    after = payers()

    assert before == {"Aetna": "Aetna", "PT RESP": "PT RESP"}
    assert mapped == {"Aetna": "Aetna", "PT RESP": "Self Pay"}
    assert [(m["name"], m["canonicalPayer"]) for m in listed] == [(name, "Self Pay")]
    assert gone.stdout.strip() == f"{name} deleted"
    assert after == before
    assert lines(run(system, customer, "--json", "mappings")) == []


def test_rejections_of_many_pages_are_listed_whole_and_in_order(
    system: System, tmp_path: Path
) -> None:
    """More rejections than a page holds (1,000): every one, in file order, printed page by
    page as they come."""
    customer = "cli" + uuid.uuid4().hex[:8]
    path = tmp_path / "bad.csv"
    path.write_text(
        "claim_id,payer,decision_date,billed_amount,paid_amount\n"
        "G1,Aetna,2026-02-10,100,80\n"
        + "".join(f"B{n},Aetna,someday,100,80\n" for n in range(2_100))
    )
    (made,) = lines(run(system, customer, "--json", "upload", str(path)))
    listed = lines(run(system, customer, "--json", "rejections", made["name"]))
    assert [int(r["lineNumber"]) for r in listed] == list(range(3, 2_103))


def test_claims_are_listed_by_what_an_analyst_asks_for(system: System, tmp_path: Path) -> None:
    """`upstream claims` lists a customer's claims newest decision first, narrowed by payer,
    denial, status, procedure code, upload and decision dates, one line each (or JSON), and
    stops at `--limit`."""
    customer = "cli" + uuid.uuid4().hex[:8]
    path = tmp_path / "march.csv"
    path.write_text(
        "claim_id,payer,procedure_code,decision_date,status,billed_amount,paid_amount,carc_codes\n"
        "A1,Aetna,99213,2026-03-02,PAID,100.00,80.00,CO-45\n"
        "A2,Aetna,99214,2026-03-09,DENIED,1250.50,0,CO-16;PR-1\n"
        "A3,Aetna,80053,2026-03-16,DENIED,40.00,0,CO-197\n"
        "C1,Cigna,99213,2026-03-20,PAID,90.00,72.00,\n"
    )
    (made,) = lines(run(system, customer, "--json", "upload", str(path)))

    every = run(system, customer, "claims")
    assert every.returncode == 0, every.stderr
    assert every.stdout.splitlines() == [
        "C1  Cigna  PAID  2026-03-20  billed $90.00  paid $72.00  -",
        "A3  Aetna  DENIED  2026-03-16  billed $40.00  paid $0.00  CO-197",
        "A2  Aetna  DENIED  2026-03-09  billed $1,250.50  paid $0.00  CO-16;PR-1",
        "A1  Aetna  PAID  2026-03-02  billed $100.00  paid $80.00  CO-45",
    ]

    def ids(*args: str) -> list[str]:
        return [
            claim["claimId"] for claim in lines(run(system, customer, "--json", "claims", *args))
        ]

    assert ids("--payer", "Aetna", "--denied") == ["A3", "A2"]
    assert ids("--status", "PAID", "--decided-from", "2026-03-03") == ["C1"]
    assert ids("--procedure-code", "99213", "--order-by", "billed_amount") == ["C1", "A1"]
    assert ids("--upload", made["name"].rsplit("/", 1)[1], "--limit", "2") == ["C1", "A3"]
    assert ids(
        "--decided-to", "2026-03-09", "--filter", 'code_group = "EVALUATION_MANAGEMENT"'
    ) == [
        "A2",
        "A1",
    ]
    refused = run(system, customer, "claims", "--decided-from", "March")
    assert refused.returncode == 2 and "'March' is not a date" in refused.stderr


def test_a_webhook_is_tested_a_failed_delivery_redelivered_and_the_webhook_turned_off_and_on(
    system: System,
) -> None:
    """What someone on call does when deliveries fail: list the webhooks, send a test, see
    why it failed, fix the receiver and send it again; turn a webhook off and on."""
    customer = "cli" + uuid.uuid4().hex[:8]
    answers = [503]
    receiver = Receiver(
        lambda _: (answers[-1], b"receiver is down" if answers[-1] >= 400 else b"ok", {})
    )
    with receiving(receiver), system.client(customer, "admin") as client:
        created = client.post(
            f"/v1/customers/{customer}/webhooks",
            json={
                "url": receiver.url(),
                "eventTypes": ["DRIFT_EVENT_OPENED"],
                "displayName": "On call",
            },
        )
        assert created.status_code == 200, created.text
        webhook = created.json()["name"]
        webhook_id = webhook.rsplit("/", 1)[1]

        listed = run(system, customer, "webhooks")
        tested = run(system, customer, "webhook", "test", webhook_id)
        answers.append(200)  # the receiver is fixed
        failed = lines(
            run(system, customer, "--json", "deliveries", webhook_id, "--state", "FAILED")
        )
        (delivery,) = failed
        redelivered = run(system, customer, "redeliver", delivery["name"], "--wait")
        every = lines(run(system, customer, "--json", "deliveries", webhook_id))
        tests = lines(
            run(system, customer, "--json", "deliveries", webhook_id, "--event-type", "TEST")
        )
        opened = run(
            system, customer, "deliveries", webhook_id, "--event-type", "DRIFT_EVENT_OPENED"
        )
        disabled = run(system, customer, "webhook", "disable", webhook)
        refused = run(
            system, customer, "redeliver", f"{webhook_id}/{delivery['name'].rsplit('/', 1)[1]}"
        )
        enabled = lines(run(system, customer, "--json", "webhook", "enable", webhook_id))
        unnamed = run(system, customer, "redeliver", "dl_123")

    assert listed.stdout.splitlines() == [
        f'{webhook}  enabled  {receiver.url()}  DRIFT_EVENT_OPENED  "On call"'
    ]
    made = delivery["createTime"]
    assert tested.returncode == 3
    assert (
        tested.stdout == f"{delivery['name']}  FAILED  TEST  created {made}  1 attempt  HTTP 503\n"
    )
    assert tested.stderr == (
        f'upstream: FAILED: {delivery["name"]}: HTTP 503, answering "receiver is down"\n'
    )
    assert redelivered.returncode == 0, redelivered.stderr
    assert redelivered.stdout == (
        f"{delivery['name']}  SUCCEEDED  TEST  created {made}  2 attempts  HTTP 200\n"
    )
    assert [(d["name"], d["state"], d["attemptCount"]) for d in every] == [
        (delivery["name"], "SUCCEEDED", 2)
    ]
    assert tests == every and (opened.returncode, opened.stdout) == (0, "")
    # The same message twice, as a receiver sees a redelivery.
    ids = receiver.message_ids()
    assert len(ids) == 2 and ids[0] == ids[1]
    assert disabled.returncode == 0 and f"{webhook}  disabled" in disabled.stdout
    assert refused.returncode == 3 and refused.stderr.startswith("upstream: FAILED_PRECONDITION: ")
    assert [w.get("disabled", False) for w in enabled] == [False]
    assert unnamed.returncode == 2
    assert "names no delivery: give its name" in unnamed.stderr


def test_uploads_are_deleted_each_in_turn_and_detection_runs_again_without_them(
    system: System, tmp_path: Path
) -> None:
    customer = "cli" + uuid.uuid4().hex[:8]
    header = "claim_id,payer,procedure_code,decision_date,status,billed_amount,paid_amount\n"
    made = []
    for month in (3, 4):
        path = tmp_path / f"claims-{month}.csv"
        path.write_text(header + f"M{month},Aetna,99213,2026-0{month}-14,PAID,100.00,80.00\n")
        (upload,) = lines(run(system, customer, "--json", "upload", str(path)))
        made.append(upload["name"])

    newest = lines(run(system, customer, "--json", "uploads", "--limit", "1"))
    deleted = run(system, customer, "uploads", "delete", made[0].rsplit("/", 1)[1], "u_missing")
    left = lines(run(system, customer, "--json", "uploads"))
    done = ("--trigger", "DATA_CHANGE", "--state", "SUCCEEDED")
    deadline = time.monotonic() + 60
    while not (changed := lines(run(system, customer, "--json", "runs", *done))):
        assert time.monotonic() < deadline, "no run followed the deletion"
        time.sleep(0.5)

    assert [u["name"] for u in newest] == [made[1]]
    assert deleted.returncode == 4
    assert deleted.stdout == f"{made[0]} deleted\n"
    assert deleted.stderr.startswith("upstream: NOT_FOUND: ") and "u_missing" in deleted.stderr
    assert [u["name"] for u in left] == [made[1]]
    (data_change,) = changed
    said = run(system, customer, "runs", *done).stdout
    assert said.startswith(
        f"{data_change['name']}  SUCCEEDED  DATA_CHANGE  "
        f"upload-deleted:{made[0].rsplit('/', 1)[1]}  as of "
    )
    assert data_change["requestId"].startswith(f"upload-deleted:{made[0].rsplit('/', 1)[1]}:")


def _secret(done: subprocess.CompletedProcess[str]) -> str:
    """The signing secret a `webhook create` or `rotate-secret` printed."""
    assert done.returncode == 0, done.stderr
    (line,) = [line for line in done.stdout.splitlines() if "signing secret: " in line]
    return line.split("signing secret: ", 1)[1]


def test_a_webhook_is_created_from_the_command_line_and_its_secret_rotated(
    system: System,
) -> None:
    """The secret shown at creation signs what the receiver gets; a rotation shows the new
    one and how long the old one still signs; a deleted webhook is gone."""
    customer = "cli" + uuid.uuid4().hex[:8]
    with receiving() as receiver:
        created = run(
            system, customer, "webhook", "create", receiver.url(), "--event-type",
            "DRIFT_EVENT_OPENED", "--event-type", "REPORT_READY", "--name", "On call",
        )  # fmt: skip
        first_secret = _secret(created)
        (webhook,) = lines(run(system, customer, "--json", "webhooks"))
        tested = run(system, customer, "webhook", "test", webhook["name"])
        rotated = run(system, customer, "webhook", "rotate-secret", webhook["name"])
        second_secret = _secret(rotated)
        tested_again = run(system, customer, "webhook", "test", webhook["name"])
        deleted = run(system, customer, "webhook", "delete", webhook["name"].rsplit("/", 1)[1])
        left = run(system, customer, "webhooks")
        posts = receiver.received()

    assert created.stdout.splitlines()[0] == (
        f'{webhook["name"]}  enabled  {receiver.url()}  DRIFT_EVENT_OPENED,REPORT_READY  "On call"'
    )
    assert first_secret.startswith("whsec_") and "signingSecret" not in webhook
    assert tested.returncode == 0 and "  SUCCEEDED  TEST  " in tested.stdout
    assert second_secret.startswith("whsec_") and second_secret != first_secret
    assert "deliveries are signed with the previous secret as well until " in rotated.stdout
    assert tested_again.returncode == 0, tested_again.stderr
    assert len(posts) == 2
    assert posts[0].verified(first_secret)["type"] == "TEST"
    assert posts[1].verified(second_secret)["type"] == "TEST"
    assert deleted.stdout == f"{webhook['name']} deleted\n"
    assert (left.returncode, left.stdout) == (0, "")


def test_a_report_schedule_is_made_paused_resumed_and_deleted_and_reports_listed(
    system: System,
) -> None:
    customer = "cli" + uuid.uuid4().hex[:8]
    made = run(
        system, customer, "--json", "schedule", "create", "--name", "Weekly export",
        "--cron", "0 7 * * MON", "--time-zone", "America/Chicago", "--kind", "CLAIMS_EXPORT",
        "--format", "CSV", "--lookback-days", "7", "--payer", "Aetna",
        "--email", "ops@example.com",
    )  # fmt: skip
    (schedule,) = lines(made)
    schedule_id = schedule["name"].rsplit("/", 1)[1]
    listed = run(system, customer, "schedules")
    paused = run(system, customer, "schedule", "pause", schedule_id)
    resumed = lines(run(system, customer, "--json", "schedule", "resume", schedule["name"]))
    day = (dt.date.today() - dt.timedelta(days=7)).isoformat()
    (report,) = lines(
        run(
            system, customer, "--json", "report", "create", "--kind", "CLAIMS_EXPORT",
            "--format", "CSV", "--start", day, "--end", day, "--wait",
        )
    )  # fmt: skip
    reports = run(system, customer, "reports", "--kind", "CLAIMS_EXPORT")
    scorecards = run(system, customer, "reports", "--kind", "PAYER_SCORECARD")
    report_deleted = run(system, customer, "report", "delete", report["name"])
    after = run(system, customer, "reports")
    schedule_deleted = run(system, customer, "schedule", "delete", schedule_id)
    none_left = run(system, customer, "schedules")

    next_run = schedule["nextRunTime"]
    assert listed.stdout == (
        f'{schedule["name"]}  active  "Weekly export"  "0 7 * * MON" America/Chicago  '
        "CLAIMS_EXPORT CSV  the last 7 days  payers Aetna  to ops@example.com  "
        f"next {next_run}\n"
    )
    # 07:00 on a Monday in Chicago.
    when = dt.datetime.fromisoformat(next_run).astimezone(zoneinfo.ZoneInfo("America/Chicago"))
    assert (when.weekday(), when.hour, when.minute) == (0, 7, 0)
    assert paused.returncode == 0 and paused.stdout.startswith(f"{schedule['name']}  paused  ")
    assert "next " not in paused.stdout
    assert [(s.get("paused", False), s["nextRunTime"]) for s in resumed] == [(False, next_run)]
    assert reports.stdout.startswith(
        f"{report['name']}  SUCCEEDED  CLAIMS_EXPORT  CSV  created {report['createTime']}  "
    )
    assert (scorecards.returncode, scorecards.stdout) == (0, "")
    assert report_deleted.stdout == f"{report['name']} deleted\n"
    assert (after.returncode, after.stdout) == (0, "")
    assert schedule_deleted.stdout == f"{schedule['name']} deleted\n"
    assert (none_left.returncode, none_left.stdout) == (0, "")


def test_the_alert_policy_is_set_as_listed_and_alerts_say_where_they_went(
    system: System, reports: Any
) -> None:
    """Slack alerts of events of at least MEDIUM: a LOW event alerts nobody, a HIGH one
    reaches the Slack receiver, and `upstream alerts` lists it as sent."""
    customer = "cli" + uuid.uuid4().hex[:8]
    before = run(system, customer, "alert-policy")
    with receiving() as slack:
        (changed,) = lines(
            run(
                system, customer, "--json", "alert-policy", "set",
                f"slack_webhook_url={slack.url('/services/T0/B0/x')}", "minimum_severity=MEDIUM",
                "suppression_window=2h", "email_recipients=", "alert_when_ended=yes",
            )
        )  # fmt: skip
        after = run(system, customer, "alert-policy")
        record(
            reports, system, customer, "b1",
            drift_event(customer, "ev_low", severity=LOW),
            drift_event(customer, "ev_high", severity=HIGH),
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while not (sent := lines(run(system, customer, "--json", "alerts", "--state", "SENT"))):
            assert time.monotonic() < deadline, "no alert was sent"
            time.sleep(0.5)
        said = run(system, customer, "alerts", "--channel", "SLACK")
        posts = slack.received()

    assert before.returncode == 0, before.stderr
    listed = dict(
        line.partition("  ")[::2]
        for line in before.stdout.splitlines()
        if not line.startswith("changed ")
    )
    assert set(listed) >= {"email_recipients", "minimum_severity", "suppression_window"}
    assert changed["minimumSeverity"] == "MEDIUM" and changed["suppressionWindow"] == "7200s"
    assert changed["slackWebhookHost"] == "127.0.0.1" and "slackWebhookUrl" not in changed
    now = after.stdout.splitlines()
    assert "slack_webhook_url  (a webhook of 127.0.0.1)" in now
    assert {
        "minimum_severity  MEDIUM", "suppression_window  2h", "email_recipients",
        "alert_when_ended  true",
    } <= set(now)  # fmt: skip
    assert changed["alertWhenEnded"] is True and "alert_when_ended  false" in before.stdout
    (alert,) = sent
    assert (alert["kind"], alert["channel"]) == ("DRIFT_EVENT", "SLACK")
    assert alert["driftEvents"] == [f"customers/{customer}/driftEvents/ev_high"]
    assert said.stdout.startswith(
        f"{alert['name']}  SENT  DRIFT_EVENT  SLACK  to 127.0.0.1  created {alert['createTime']}"
        "  1 attempt  "
    )
    assert len(posts) == 1 and "ev_high" in posts[0].body.decode()
