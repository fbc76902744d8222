"""The web dashboard in a real headless Chromium (Debian's, driven by Playwright) against the
real gateway and services: signing in, uploading a file with a drift in it, the event it
raises, triage that survives a reload and refuses to overwrite someone else's change, what a
viewer is not offered, a phone-sized screen and the keyboard. Every page must run without a
console error."""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
from playwright.sync_api import Browser, Locator, expect
from psycopg import sql

from devtools.stack import wait_until
from runtime.schemas import libpq_url
from tests.browser import chromium, go, open_page, signed_in
from tests.conftest import PostgresUnderTest
from tests.reports.test_drift_events import HIGH, drift_event, record
from tests.reports.webhook_receiver import Receiver, receiving
from tests.scenarios import (
    DRIFTED_PAYER,
    as_csv,
    denial_drift,
    drifted_history,
    run_as_of,
    upload_drifted_history,
    wait_for_events,
)
from tests.system import System

# Chromium logs an HTTP error answer on the console; only tests that provoke one allow it.
HTTP_ERROR_LOG = "Failed to load resource: the server responded with a status of"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def rolled_up_denial_drift(events: list[dict[str, Any]]) -> dict[str, Any]:
    """The drifted payer's denial drift over all its codes."""
    (event,) = [
        e
        for e in events
        if e["payer"] == DRIFTED_PAYER and e["metric"] == "DENIAL_RATE" and not e.get("codeGroup")
    ]
    return event


@pytest.fixture(scope="module")
def drifted(system: System) -> tuple[str, dict[str, Any]]:
    """A customer whose history (uploaded over the API) holds a drift, and its event."""
    customer = "web" + uuid.uuid4().hex[:8]
    return customer, rolled_up_denial_drift(upload_drifted_history(system, customer))


def test_an_analyst_uploads_a_drift_sees_its_event_and_acknowledges_it(
    system: System, browser: Browser
) -> None:
    customer = "web" + uuid.uuid4().hex[:8]
    session, page = signed_in(browser, system, customer)
    expect(page.get_by_text("No upload yet")).to_be_visible()

    go(page, "Uploads")
    page.get_by_label("Claims file").set_input_files(
        {"name": "claims.csv", "mimeType": "text/csv", "buffer": drifted_history(customer).encode()}
    )
    page.get_by_role("button", name="Upload", exact=True).click()
    expect(page.get_by_text("16,000 rows processed: 16,000 accepted, 0 rejected.")).to_be_visible(
        timeout=60_000
    )
    progress = page.get_by_role("progressbar", name="Upload progress")
    assert progress.evaluate("bar => bar.value === bar.max && bar.max > 1000")
    expect(page.get_by_role("table", name="Uploads, newest first")).to_contain_text("claims.csv")
    # What detection made of it, once its run is done, and the way to the events.
    found = re.compile(
        r"Detection run as of \w+ \d+, \d+: [1-9]\d* events opened, 0 updated, 0 closed"
    )
    expect(page.get_by_test_id("upload-run")).to_contain_text(found, timeout=60_000)
    page.get_by_role("link", name=re.compile(r"claims\.csv: 16,000 claims stored")).click()
    expect(page.get_by_role("heading", level=1, name="claims.csv")).to_be_visible()
    expect(page.get_by_test_id("upload-run")).to_contain_text(found)
    go(page, "Uploads")

    event = rolled_up_denial_drift(wait_for_events(system, customer))
    go(page, "Drift events")
    page.get_by_label("Payer").fill(DRIFTED_PAYER)
    page.get_by_label("Metric").select_option("DENIAL_RATE")
    page.get_by_role("button", name="Filter").click()
    rows = page.get_by_role("table").get_by_role("row")
    expect(rows.filter(has_text="all codes")).to_have_count(1)
    rows.filter(has_text="all codes").get_by_role("link", name=DRIFTED_PAYER).click()

    expect(page.get_by_role("heading", level=1)).to_have_text(f"{DRIFTED_PAYER}: denial rate")
    expect(page.get_by_text(event["summary"])).to_be_visible()
    evidence = page.get_by_role("table", name="Baseline against current")
    # Each window's rate and its interval, as rates.
    interval = event["evidence"]["currentInterval"]
    expect(evidence.get_by_role("row", name=re.compile("95 % interval"))).to_contain_text(
        f"{interval['lower'] * 100:.1f} % – {interval['upper'] * 100:.1f} %"
    )
    expect(page.get_by_role("img", name="Denial rate: weekly values")).to_be_visible()
    page.get_by_label("Note").fill("Called the payer; appeal filed.")
    page.get_by_role("button", name="Acknowledge").click()
    expect(page.get_by_role("status")).to_have_text("Event acknowledged.")

    page.reload()
    expect(page.get_by_test_id("event-state")).to_have_text("acknowledged")
    expect(page.get_by_text("Called the payer; appeal filed.").first).to_be_visible()
    with system.client(customer, "viewer") as client:
        stored = client.get(f"/v1/{event['name']}").json()
    assert (stored["state"], stored["triageNote"]) == (
        "ACKNOWLEDGED",
        "Called the payer; appeal filed.",
    )
    assert session.errors == []


def test_self_pay_is_listed_among_the_payers_as_not_compared(
    system: System, browser: Browser
) -> None:
    """The patients' own claims ("Self Pay") are counted with the payers, marked as never
    compared, and the payer's page says why."""
    customer = "web" + uuid.uuid4().hex[:8]
    rows = [
        f"{prefix}{n},{payer},2026-06-{1 + n % 28:02d},100.00,{paid}"
        for n in range(40)
        for prefix, payer, paid in (("A", "Aetna", "80.00"), ("S", "Self Pay", "35.00"))
    ]
    body = "claim_id,payer,decision_date,billed_amount,paid_amount\n" + "\n".join(rows) + "\n"
    with system.client(customer, "admin") as client:
        sent = client.post(f"/v1/customers/{customer}/uploads", content=body.encode())
        assert sent.status_code == 200, sent.text
    session, page = signed_in(browser, system, customer, role="viewer")
    go(page, "Payers")
    listed = page.get_by_role("table", name="Each payer's current window against its baseline")
    expect(listed.get_by_role("row").filter(has_text="Self Pay")).to_contain_text(
        "self-pay: not compared"
    )
    expect(listed.get_by_role("row").filter(has_text="Aetna")).not_to_contain_text("self-pay")
    listed.get_by_role("link", name="Self Pay").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Self Pay")
    expect(page.get_by_text("detection does not compare them")).to_be_visible()
    assert session.errors == []


def test_payers_whose_claims_all_came_before_the_windows_are_listed_with_their_events(
    system: System, browser: Browser
) -> None:
    """A history of 2025, then a file of one payer's claims a year later: the summaries'
    windows end on that file's last decision, past the others' claims. The payers page says
    which windows it shows, and lists the payers left out of them with their claims and
    their open events, which the events page then shows."""
    customer = "web" + uuid.uuid4().hex[:8]
    history = as_csv(denial_drift(customer, dt.date(2025, 1, 6), dt.date(2025, 8, 1)))
    later = [f"L{n},Humana,2026-11-{1 + n % 28:02d},100.00,80.00" for n in range(60)] + [
        f"Z{n},Zenith Mutual Plan,2026-11-{1 + n:02d},100.00,80.00" for n in range(5)
    ]
    with system.client(customer, "admin") as client:
        sent = client.post(f"/v1/customers/{customer}/uploads", content=history.encode())
        assert sent.status_code == 200, sent.text
        wait_for_events(system, customer)
        body = "claim_id,payer,decision_date,billed_amount,paid_amount\n" + "\n".join(later)
        sent = client.post(f"/v1/customers/{customer}/uploads", content=body.encode() + b"\n")
        assert sent.status_code == 200, sent.text
        open_events = client.get(
            f"/v1/customers/{customer}/driftEvents",
            params={"filter": f'payer = "{DRIFTED_PAYER}" AND active = true', "pageSize": 1000},
        ).json()["driftEvents"]
        payers = client.get(f"/v1/customers/{customer}/payers", params={"pageSize": 1000}).json()
    drifted_claims = sum(
        int(p["claimCount"]) for p in payers["payers"] if p["canonicalPayer"] == DRIFTED_PAYER
    )
    assert open_events and drifted_claims > 0

    session, page = signed_in(browser, system, customer, role="viewer")
    # The overview's last upload says it left the others behind, and who.
    go(page, "Overview")
    last = page.get_by_role("article", name="Last upload")
    expect(last.get_by_test_id("upload-warnings")).to_have_text("1 warning")
    behind = last.get_by_test_id("payers-behind")
    expect(behind).to_contain_text("cannot test them until their later claims are uploaded")
    expect(behind).to_contain_text(re.compile(rf"{DRIFTED_PAYER} \(last in \w+ 2025\)"))
    go(page, "Payers")
    shown = page.get_by_role("table", name="Each payer's current window against its baseline")
    # Humana's claims are all in the current window: nothing to say it "was".
    humana = shown.get_by_role("row").filter(has_text="Humana")
    expect(humana).to_contain_text("60 (none in the baseline)")
    expect(humana).not_to_contain_text("was")
    # The windows, said: they end on the later file's last decision.
    expect(shown.locator("caption")).to_contain_text("– Nov 28, 2026 against")
    expect(shown).not_to_contain_text(DRIFTED_PAYER)
    earlier = page.get_by_role("table", name="Payers with no claims decided in these windows")
    row = earlier.get_by_role("row").filter(has_text=DRIFTED_PAYER)
    expect(row).to_contain_text(f"{drifted_claims:,}")
    # Names no mapping or directory entry knows are offered for mapping, the others not.
    unmapped = page.get_by_role("table", name="Payer names without a mapping")
    expect(unmapped).to_contain_text("Zenith Mutual Plan")
    expect(unmapped).not_to_contain_text(DRIFTED_PAYER)
    row.get_by_role("link", name=str(len(open_events))).click()
    expect(page.get_by_role("heading", level=1, name="Drift events")).to_be_visible()
    expect(page.get_by_label("Payer")).to_have_value(DRIFTED_PAYER)
    # Humana's charts draw no baseline line where there were no baseline claims.
    go(page, "Payers")
    page.get_by_role("link", name="Humana", exact=True).click()
    charts = page.locator(".chart-figure")
    expect(charts).to_have_count(3)
    for legend in charts.locator(".legend").all():
        expect(legend).to_contain_text("no baseline claims")
    baselines = page.locator(".chart-figure line.baseline, .chart-figure .key-baseline")
    expect(baselines).to_have_count(0)
    expect(page.locator("main")).not_to_contain_text("NaN")
    assert session.errors == []


def test_an_upload_shows_bytes_sent_and_rows_processed_while_it_is_sent(
    system: System, browser: Browser
) -> None:
    customer = "web" + uuid.uuid4().hex[:8]
    session, page = signed_in(browser, system, customer)
    go(page, "Uploads")
    # A slow line (256 KB/s up), so the upload takes seconds and is seen while it runs.
    network = page.context.new_cdp_session(page)
    network.send("Network.enable")
    network.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": 262_144},
    )

    page.get_by_label("Claims file").set_input_files(
        {"name": "slow.csv", "mimeType": "text/csv", "buffer": drifted_history(customer).encode()}
    )
    page.get_by_role("button", name="Upload", exact=True).click()
    during = page.get_by_text(re.compile(r"[\d.]+ MB sent · [\d,]+ rows processed"))
    expect(during).to_be_visible(timeout=20_000)
    seen = during.inner_text()
    expect(page.get_by_text("16,000 rows processed: 16,000 accepted, 0 rejected.")).to_be_visible(
        timeout=60_000
    )

    rows = re.search(r"([\d,]+) rows processed", seen)
    assert rows is not None and 0 < int(rows[1].replace(",", "")) < 16_000
    assert session.errors == []


def test_an_upload_names_the_headings_its_export_uses_for_columns(
    system: System, browser: Browser
) -> None:
    """A file whose headings no export spelling gives: refused naming what it lacks, with
    "Columns with other headings" opened; named there, it is read, and the upload says how."""
    customer = "web" + uuid.uuid4().hex[:8]
    session, page = signed_in(browser, system, customer)
    go(page, "Uploads")
    body = b"Chart Ref,Insurer,Adjudicated,Charge,Remitted\nE1,Aetna,2026-03-14,100,80\n"
    chosen = {"name": "visits.csv", "mimeType": "text/csv", "buffer": body}
    page.get_by_label("Claims file").set_input_files(chosen)
    page.get_by_role("button", name="Upload", exact=True).click()
    expect(page.get_by_text("The upload was refused.")).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text("claim_id")
    # Where to name them is opened, and said.
    expect(page.get_by_text("If the file has these columns under other headings")).to_be_visible()
    for label, heading in (("Claim ID", "Chart Ref"), ("Payer", "Insurer"),
                           ("Decision date", "Adjudicated"), ("Billed amount", "Charge"),
                           ("Paid amount", "Remitted")):  # fmt: skip
        page.get_by_label(label, exact=True).fill(heading)
    page.get_by_label("Claims file").set_input_files(chosen)
    page.get_by_role("button", name="Upload", exact=True).click()
    expect(page.get_by_text("1 rows processed: 1 accepted, 0 rejected.")).to_be_visible()

    page.get_by_role("link", name="visits.csv: 1 claims stored").click()
    expect(page.get_by_role("heading", level=1, name="visits.csv")).to_be_visible()
    expect(page.get_by_text("Claim ID: “Chart Ref”; Payer: “Insurer”")).to_be_visible()
    assert [e for e in session.errors if not e.startswith(HTTP_ERROR_LOG)] == []


def test_an_upload_says_how_its_file_was_read_each_line_named_once(
    system: System, browser: Browser
) -> None:
    customer = "web" + uuid.uuid4().hex[:8]
    body = (
        "Remittances, March\n"
        "claim_id,payer,decision_date,billed_amount,paid_amount,carc_codes,Notes\n"
        'C1,Aetna,2026-03-14,100,0,"CO-16, N290",called\n'
        "C1,Aetna,2026-03-14,40,0,,\n"
        "End of Report\n"
    )
    with system.client(customer, "admin") as client:
        made = client.post(f"/v1/customers/{customer}/uploads", content=body.encode())
        assert made.status_code == 200, made.text
    session, page = signed_in(browser, system, customer, role="viewer")
    # The history says the upload has something to say.
    go(page, "Uploads")
    expect(page.get_by_test_id("upload-warnings")).to_have_text("5 warnings")
    page.goto(f"{system.gateway_url}/#/uploads/{made.json()['name'].rsplit('/', 1)[1]}")
    notes = page.get_by_role("list", name="How the file was read").get_by_role("listitem")
    expect(notes).to_have_text(
        [
            "Line 2: columns not used: Notes",
            "1 line above the header (line 2) was skipped, from line 1: 'Remittances, March'",
            "line 5 holds only 'End of Report': a report's heading or note, not a claim: skipped",
            "1 row lists remark codes (RARCs) beside its reason codes, the first 'N290' on line 3:"
            " a remark explains an adjustment and is not kept; the reason codes and the claim"
            " are kept",
            # Of the whole file: no line named.
            "2 lines were combined into 1 claim",
        ]
    )
    assert session.errors == []


def test_a_change_made_meanwhile_is_shown_as_a_conflict_not_overwritten(
    system: System, browser: Browser, drifted: tuple[str, dict[str, Any]]
) -> None:
    customer, event = drifted
    session, page = signed_in(browser, system, customer)
    page.goto(f"{system.gateway_url}/#/events/{event['name'].rsplit('/', 1)[1]}")
    expect(page.get_by_role("heading", name="Triage")).to_be_visible()

    with system.client(customer, "admin") as colleague:
        changed = colleague.patch(
            f"/v1/{event['name']}",
            params={"updateMask": "triage_note"},
            json={"triageNote": "Looking into it — Sam"},
        )
    assert changed.status_code == 200, changed.text
    page.get_by_role("button", name="Dismiss").click()

    expect(page.get_by_role("alert")).to_contain_text("Someone changed this event")
    page.get_by_role("button", name="Reload the event").click()
    expect(page.get_by_label("Note")).to_have_value("Looking into it — Sam")
    with system.client(customer, "viewer") as client:
        assert client.get(f"/v1/{event['name']}").json()["state"] != "DISMISSED"
    assert [e for e in session.errors if not e.startswith(HTTP_ERROR_LOG)] == []
    assert len(session.errors) == 1 and "412" in session.errors[0]


def test_a_code_group_is_said_and_filtered_in_words(
    system: System, browser: Browser, drifted: tuple[str, dict[str, Any]]
) -> None:
    """Code groups read as people say them ("evaluation and management", not its enum
    name), are offered as such in the filter, and filter as typed."""
    customer, _ = drifted
    session, page = signed_in(browser, system, customer, role="viewer")
    go(page, "Drift events")
    offered = page.locator("#code-groups option").evaluate_all("all => all.map(o => o.value)")
    assert "evaluation and management" in offered and "laboratory" in offered
    page.get_by_label("Code group").fill("Evaluation and Management")
    page.get_by_role("button", name="Filter").click()
    rows = page.get_by_role("table").get_by_role("row")
    expect(rows.filter(has_text="evaluation and management")).to_have_count(1)
    expect(rows.filter(has_text="all codes")).to_have_count(0)
    rows.filter(has_text="evaluation and management").get_by_role("link").first.click()
    expect(page.get_by_role("heading", level=1)).to_have_text(
        f"{DRIFTED_PAYER}: denial rate, evaluation and management"
    )
    expect(page.locator(".summary")).to_contain_text("evaluation and management claims")
    # The chart is the event's own: its payer's evaluation and management claims, week by
    # week over its baseline and current windows, as the daily statistics count them.
    title = f"{DRIFTED_PAYER}, evaluation and management: Denial rate"
    expect(page.get_by_role("img", name=f"{title}: weekly values")).to_be_visible()
    page.get_by_text("The numbers").click()
    shown = [
        row.split("\t")
        for row in page.get_by_role("table", name=f"{title}, by week")
        .locator("tbody tr")
        .all_inner_texts()
    ]
    event_id = page.url.rsplit("/", 1)[1]
    assert [(day, int(claims)) for day, claims, _ in shown] == [
        (day.isoformat(), decided) for day, decided, _ in weekly_denials(system, customer, event_id)
    ]
    for (_, _, value), (_, _, rate) in zip(
        shown, weekly_denials(system, customer, event_id), strict=True
    ):
        assert value == "—" if rate is None else abs(float(value.rstrip(" %")) - rate * 100) < 0.051
    assert session.errors == []


def weekly_denials(
    system: System, customer: str, event_id: str
) -> list[tuple[dt.date, int, float | None]]:
    """An evaluation and management event's weeks (each beginning a multiple of 7 days
    before its current window), their decided claims and denial rate, from the API."""
    with system.client(customer, "viewer") as client:
        event = client.get(f"/v1/customers/{customer}/driftEvents/{event_id}").json()
        first, since, last = (
            dt.date(**event[window][end])
            for window, end in (
                ("baselineWindow", "startDate"),
                ("currentWindow", "startDate"),
                ("currentWindow", "endDate"),
            )
        )
        start = since - dt.timedelta(days=7 * ((since - first).days // 7))
        streamed = client.get(
            f"/v1/customers/{customer}/dailyStatSeries",
            params={"payers": event["payer"], "startDate": str(start), "endDate": str(last)},
        )
    weeks: dict[dt.date, list[int]] = {}
    day = start
    while day <= last:
        weeks[day] = [0, 0]
        day += dt.timedelta(days=7)
    for line in streamed.text.splitlines():
        for series in json.loads(line)["result"].get("dailyStatSeries", []):
            if series["codeGroup"] != "EVALUATION_MANAGEMENT":
                continue
            for i, number in enumerate(series.get("decisionDates", [])):
                decided = dt.date(1970, 1, 1) + dt.timedelta(days=number)
                week = weeks[start + dt.timedelta(days=7 * ((decided - start).days // 7))]
                week[0] += int(series["decidedClaims"][i])
                week[1] += int(series["deniedClaims"][i])
    return [(week, n, denied / n if n else None) for week, (n, denied) in weeks.items()]


def test_an_event_no_run_could_test_since_says_so_wherever_it_is_shown(
    system: System, browser: Browser
) -> None:
    """A run as of today, weeks after the customer's claims, cannot compare its payers: their
    events stay open, and the overview, the list and the event say since when no run tested
    them."""
    customer = "web" + uuid.uuid4().hex[:8]
    event = rolled_up_denial_drift(upload_drifted_history(system, customer))
    today = dt.datetime.now(dt.UTC).date()
    assert run_as_of(system, customer, today)["state"] == "SUCCEEDED"
    with system.client(customer, "viewer") as client:
        stored = client.get(f"/v1/{event['name']}").json()
    assert dt.date(**stored["untestedSince"]) == today and stored["active"] is True
    shown = today.strftime("%b %-d, %Y")  # as the page writes days: "Dec 7, 2026"

    session, page = signed_in(browser, system, customer, role="viewer")
    largest = page.get_by_role("table", name="Open drift events with the most dollars at stake")
    expect(largest.get_by_test_id("untested").first).to_have_text(f"not tested since {shown}")
    go(page, "Drift events")
    page.get_by_label("Payer").fill(DRIFTED_PAYER)
    page.get_by_label("Metric").select_option("DENIAL_RATE")
    page.get_by_role("button", name="Filter").click()
    row = page.get_by_role("table").get_by_role("row").filter(has_text="all codes")
    expect(row.get_by_test_id("untested")).to_have_text(f"not tested since {shown}")
    row.get_by_role("link", name=DRIFTED_PAYER).click()
    expect(page.get_by_test_id("untested-since")).to_contain_text(
        f"{shown}: the runs as of that day and since could not compare it"
    )
    expect(page.get_by_test_id("event-state")).to_have_text("new")
    assert session.errors == []


def test_detection_runs_are_listed_and_one_is_started_and_followed_to_its_end(
    system: System, browser: Browser, postgres: PostgresUnderTest
) -> None:
    """The runs page lists the upload's run; an admin who changed the drift settings is
    offered a run, starts one as of a day and follows it to its end, and it heads the list;
    a run that failed says why there and on the overview; a viewer sees the runs but is
    offered no way to start one."""
    customer = "web" + uuid.uuid4().hex[:8]
    upload_drifted_history(system, customer)
    with system.client(customer, "viewer") as client:
        (uploaded,) = client.get(f"/v1/customers/{customer}/driftRuns").json()["driftRuns"]
    as_of = dt.date(**uploaded["asOf"])
    shown = as_of.strftime("%b %-d, %Y")

    session, page = signed_in(browser, system, customer)
    go(page, "Detection runs")
    runs = page.get_by_role("table", name="Detection runs, newest first")
    expect(runs.get_by_role("row")).to_have_count(2)  # the heading's and the upload's
    first = runs.get_by_role("row").nth(1).get_by_role("cell")
    expect(first.nth(1)).to_have_text("An upload")
    expect(first.nth(2)).to_have_text(shown)
    expect(first.nth(4)).to_have_text("succeeded")
    # Settings changed, then a run to see what they find.
    go(page, "Settings")
    page.get_by_label("False discovery rate (q)").fill("0.05")
    page.get_by_role("button", name="Save drift settings").click()
    expect(page.get_by_role("status")).to_have_text("Drift settings saved.")
    saved = page.get_by_role("form", name="Drift settings")
    expect(saved).to_contain_text("Saved. Detection uses them from its next run")
    saved.get_by_role("link", name="run detection now").click()
    expect(page.get_by_role("heading", level=1, name="Detection runs")).to_be_visible()
    page.get_by_label("As of").fill(as_of.isoformat())
    page.get_by_role("button", name="Run detection").click()
    expect(page.get_by_role("status")).to_have_text(
        re.compile(r"Detection run finished: 0 events opened, [1-9]\d* updated, 0 closed\.")
    )
    expect(runs.get_by_role("row")).to_have_count(3)
    newest = runs.get_by_role("row").nth(1).get_by_role("cell")
    expect(newest.nth(1)).to_have_text("By hand")
    expect(newest.nth(2)).to_have_text(shown)
    expect(newest.nth(4)).to_have_text("succeeded")
    with system.client(customer, "viewer") as client:
        started = client.get(f"/v1/customers/{customer}/driftRuns").json()["driftRuns"][0]
    assert (started["trigger"], dt.date(**started["asOf"])) == ("MANUAL", as_of)
    with system.client(customer, "viewer") as client:
        config = client.get(f"/v1/customers/{customer}/driftConfig").json()
    assert config["falseDiscoveryRate"] == 0.05
    expect(newest.nth(6)).to_have_text(
        f"0 events opened, {started['eventsUpdated']} updated, 0 closed"
    )

    # A run that fails: this customer's events refused by the database (as a constraint a
    # later migration adds could refuse them), shown where it failed and on the overview.
    refusal = sql.Identifier(f"refuse_{uuid.uuid4().hex[:8]}")
    with psycopg.connect(libpq_url(postgres.admin_url), autocommit=True) as admin:
        admin.execute(
            sql.SQL(
                "ALTER TABLE drift.drift_events ADD CONSTRAINT {} CHECK (customer_id <> {}) "
                "NOT VALID"
            ).format(refusal, sql.Literal(customer))
        )
        try:
            page.get_by_role("button", name="Run detection").click()
            expect(page.get_by_role("status")).to_have_text("The detection run failed.")
            expect(page.get_by_role("alert")).to_contain_text(f"The run as of {shown} failed: ")
            expect(runs.get_by_role("row")).to_have_count(4)
            failed = runs.get_by_role("row").nth(1)
            expect(failed.get_by_test_id("run-error")).to_contain_text("CheckViolation")
            expect(failed.get_by_role("cell").nth(6)).to_have_text("—")
            go(page, "Overview")
            expect(page.get_by_test_id("run-error")).to_contain_text("CheckViolation")
        finally:
            admin.execute(
                sql.SQL("ALTER TABLE drift.drift_events DROP CONSTRAINT {}").format(refusal)
            )
    assert session.errors == []

    viewer, page = signed_in(browser, system, customer, role="viewer")
    go(page, "Detection runs")
    expect(page.get_by_role("table", name="Detection runs, newest first")).to_be_visible()
    expect(page.get_by_role("button", name="Run detection")).to_have_count(0)
    assert viewer.errors == []


def test_an_upload_sent_by_mistake_is_deleted_and_detection_runs_again_without_it(
    system: System, browser: Browser
) -> None:
    """An admin deletes an upload from its page (asked twice), waits for detection to run
    without its claims and finds that run on the runs page, saying what started it; the
    upload is gone from the list. A viewer is offered no way to delete one."""
    customer = "web" + uuid.uuid4().hex[:8]
    history = drifted_history(customer).splitlines(keepends=True)
    header, rows = history[0], history[1:]
    with system.client(customer, "admin") as client:
        for file_name, part in (("history.csv", rows[:-500]), ("mistake.csv", rows[-500:])):
            made = client.post(
                f"/v1/customers/{customer}/uploads",
                params={"upload.fileName": file_name},
                content="".join([header, *part]).encode(),
                headers={"Content-Type": "text/csv"},
            )
            assert made.status_code == 200, made.text
    mistake = made.json()["name"].rsplit("/", 1)[1]

    viewer, page = signed_in(browser, system, customer, role="viewer")
    page.goto(f"{system.gateway_url}/#/uploads/{mistake}")
    expect(page.get_by_role("heading", level=1, name="mistake.csv")).to_be_visible()
    expect(page.get_by_role("button", name="Delete this upload")).to_have_count(0)
    assert viewer.errors == []

    session, page = signed_in(browser, system, customer)
    page.goto(f"{system.gateway_url}/#/uploads/{mistake}")
    expect(page.get_by_role("heading", level=1, name="mistake.csv")).to_be_visible()
    page.get_by_role("button", name="Delete this upload").click()
    page.get_by_role("button", name="Yes, delete this upload").click()
    expect(page.get_by_role("status")).to_have_text(
        "Upload “mistake.csv” deleted; detection runs again without its claims.",
        timeout=30_000,
    )
    expect(page.get_by_role("heading", level=1, name="Detection runs")).to_be_visible()
    newest = (
        page.get_by_role("table", name="Detection runs, newest first").get_by_role("row").nth(1)
    )
    expect(newest.get_by_role("cell").nth(1)).to_have_text(f"An upload deleted ({mistake})")
    go(page, "Uploads")
    uploads = page.get_by_role("table", name="Uploads, newest first")
    expect(uploads).to_contain_text("history.csv")
    expect(uploads).not_to_contain_text("mistake.csv")
    assert session.errors == []


def test_a_payer_name_mapped_on_the_payers_page_moves_its_claims_and_detection_runs_again(
    system: System, browser: Browser
) -> None:
    customer = "web" + uuid.uuid4().hex[:8]
    body = "claim_id,payer,decision_date,status,billed_amount,paid_amount\n" + "".join(
        f"{payer[0]}{n},{payer},2026-03-{1 + n % 28:02d},PAID,100.00,{paid}\n"
        for n in range(60)
        for payer, paid in (("Aetna", "80.00"), ("PT RESP", "0"))
    )
    with system.client(customer, "admin") as client:
        made = client.post(f"/v1/customers/{customer}/uploads", content=body.encode())
        assert made.status_code == 200, made.text

    session, page = signed_in(browser, system, customer)
    go(page, "Payers")
    unmapped = page.get_by_role("table", name="Payer names without a mapping")
    expect(unmapped).to_contain_text("PT RESP")
    page.get_by_label("Canonical payer for “PT RESP”").fill("Self Pay")
    page.get_by_role("button", name="Map").click()
    expect(page.get_by_role("status")).to_have_text(
        "PT RESP now maps to Self Pay: its claims moved there, and detection runs again with them."
    )
    expect(page.get_by_text("Every payer name is mapped.")).to_be_visible()
    go(page, "Detection runs")
    newest = (
        page.get_by_role("table", name="Detection runs, newest first").get_by_role("row").nth(1)
    )
    for _ in range(20):  # the run is asked for by ingest's outbox just after the change
        if newest.get_by_role("cell").nth(1).inner_text().startswith("A payer mapping"):
            break
        page.wait_for_timeout(500)
        page.reload()
    expect(newest.get_by_role("cell").nth(1)).to_have_text(
        re.compile(r"A payer mapping changed \(pm_\w+\)")
    )
    with system.client(customer, "viewer") as client:
        claims = client.get(
            f"/v1/customers/{customer}/claims", params={"filter": 'payer = "Self Pay"'}
        ).json()
    assert len(claims["claims"]) == 60
    assert session.errors == []


def test_a_report_is_created_followed_until_built_and_downloaded(
    system: System, browser: Browser, drifted: tuple[str, dict[str, Any]]
) -> None:
    """An export of the drifted payer's claims, asked for on the reports page, is followed
    until it is built, then downloaded from the page: the file is the claims of that payer."""
    customer, event = drifted
    last = dt.date(**event["currentWindow"]["endDate"])
    session, page = signed_in(browser, system, customer)
    go(page, "Reports")
    form = page.get_by_role("form", name="New report")
    form.get_by_label("Kind").select_option("CLAIMS_EXPORT")
    form.get_by_label("Format").select_option("CSV")
    form.get_by_label("From").fill((last - dt.timedelta(days=29)).isoformat())
    form.get_by_label("To").fill(last.isoformat())
    form.get_by_role("group", name="Payers").get_by_label(DRIFTED_PAYER).check()
    form.get_by_role("button", name="Create report").click()
    expect(page.get_by_role("status")).to_have_text("The report is ready to download.")
    listed = page.get_by_role("table", name="Reports, newest first").get_by_role("row")
    expect(listed).to_have_count(2)
    expect(listed.nth(1)).to_contain_text(DRIFTED_PAYER)
    with page.expect_download() as downloading:
        form.get_by_role("button", name=re.compile("^Download ")).click()
    body = downloading.value.path().read_text()
    lines = body.splitlines()
    assert lines[0].startswith("claim_id,payer,") and len(lines) > 1
    assert all(f",{DRIFTED_PAYER}," in line for line in lines[1:])
    assert session.errors == []


@pytest.mark.parametrize("role", ["viewer", "admin"])
def test_write_controls_are_offered_to_writers_only(
    system: System, browser: Browser, drifted: tuple[str, dict[str, Any]], role: str
) -> None:
    customer, event = drifted
    session, page = signed_in(browser, system, customer, role)

    def offered(control: Locator) -> None:
        if role == "admin":
            expect(control.first).to_be_visible()
        else:
            expect(control).to_have_count(0)

    expect(page.get_by_role("banner")).to_contain_text(f"{customer} · {role}")
    go(page, "Uploads")
    expect(page.get_by_role("table", name="Uploads, newest first")).to_contain_text("history.csv")
    offered(page.get_by_label("Claims file"))
    page.goto(f"{system.gateway_url}/#/events/{event['name'].rsplit('/', 1)[1]}")
    expect(page.get_by_role("table", name="Baseline against current")).to_be_visible()
    for action in ("Acknowledge", "Resolve", "Dismiss", "Save note"):
        offered(page.get_by_role("button", name=action))
    go(page, "Reports")
    offered(page.get_by_role("button", name="Create report"))
    offered(page.get_by_role("button", name="Create schedule"))
    go(page, "Webhooks")
    offered(page.get_by_role("button", name="Create webhook"))
    go(page, "Settings")
    offered(page.get_by_role("button", name="Save"))
    assert session.errors == []


def test_a_webhook_is_made_its_secret_shown_once_and_a_test_event_delivered(
    system: System, browser: Browser
) -> None:
    customer = "web" + uuid.uuid4().hex[:8]
    session, page = signed_in(browser, system, customer)
    go(page, "Webhooks")

    with receiving() as receiver:
        page.get_by_label("Name").fill("Revenue cycle bot")
        page.get_by_label("URL").fill(receiver.url("/upstream"))
        page.get_by_role("button", name="Create webhook").click()
        secret_box = page.get_by_role("group", name="Signing secret of Revenue cycle bot")
        expect(secret_box).to_contain_text("it will not be shown again")
        secret = secret_box.locator("code").inner_text()
        page.get_by_role("table").get_by_role("link", name="Revenue cycle bot").click()
        expect(page.get_by_role("heading", level=1, name="Revenue cycle bot")).to_be_visible()
        page.get_by_role("button", name="Send a test event").click()
        expect(page.get_by_text("The endpoint answered HTTP 200")).to_be_visible()

    assert secret.startswith("whsec_")
    (delivered,) = receiver.received()
    assert delivered.path == "/upstream" and delivered.verified(secret)
    page.reload()
    expect(page.get_by_role("heading", level=1, name="Revenue cycle bot")).to_be_visible()
    assert secret not in page.content()
    assert session.errors == []


def test_an_alert_that_never_arrived_says_why_on_the_settings_page(
    system: System, browser: Browser, reports: Any
) -> None:
    """Slack answers 503 to every attempt: the settings page lists the alert as failed,
    with what Slack answered, and its state filter finds it."""
    customer = "web" + uuid.uuid4().hex[:8]
    slack = Receiver(lambda _: (503, b"slack is down", {}))
    with receiving(slack), system.client(customer, "admin") as client:
        changed = client.patch(
            f"/v1/customers/{customer}/alertPolicy",
            json={"slackWebhookUrl": slack.url("/services/T0/B0/x"), "emailRecipients": []},
        )
        assert changed.status_code == 200, changed.text
        record(reports, system, customer, "b1", drift_event(customer, "ev_high", severity=HIGH))
        wait_until(
            "the alert given up",
            lambda: (
                [
                    a["state"]
                    for a in client.get(f"/v1/customers/{customer}/alerts").json().get("alerts", [])
                ]
                == ["FAILED"]
            ),
            system.stack,
            timeout=60,
        )
    session, page = signed_in(browser, system, customer, "viewer")
    go(page, "Settings")
    alerts = page.get_by_role("table", name="Alerts, newest first")
    expect(alerts.get_by_role("row")).to_have_count(2)
    row = alerts.get_by_role("row").nth(1)
    expect(row).to_contain_text("Slack (127.0.0.1)")
    expect(row).to_contain_text("failed")
    expect(row.get_by_test_id("alert-error")).to_contain_text("503")
    shown = page.get_by_label("Show")
    shown.select_option("SENT")
    expect(page.get_by_text("No alert in this state.")).to_be_visible()
    shown.select_option("FAILED")
    expect(alerts.get_by_role("row")).to_have_count(2)
    assert session.errors == []


def test_an_admin_asks_for_alerts_when_alerted_drifts_end_and_a_viewer_reads_it(
    system: System, browser: Browser
) -> None:
    """The alert settings' checkbox sends only that change; the policy then says so, and
    the settings page shows it to a viewer."""
    customer = "web" + uuid.uuid4().hex[:8]
    session, page = signed_in(browser, system, customer, "admin")
    go(page, "Settings")
    form = page.get_by_role("form", name="Alert settings")
    form.get_by_label("Alert when an alerted drift ends").check()
    form.get_by_role("button", name="Save alert settings").click()
    expect(page.get_by_role("status")).to_have_text("Alert settings saved.")
    with system.client(customer, "viewer") as client:
        policy = client.get(f"/v1/customers/{customer}/alertPolicy").json()
    viewer_session, viewer = signed_in(browser, system, customer, "viewer")
    go(viewer, "Settings")

    assert policy["alertWhenEnded"] is True and policy["minimumSeverity"] == "MEDIUM"
    expect(viewer.get_by_role("region", name="Alert settings")).to_contain_text(
        re.compile(r"Alert when an alerted drift ends\s*Yes")
    )
    assert session.errors == [] and viewer_session.errors == []


def test_on_a_phone_nothing_needs_sideways_scrolling(
    system: System, browser: Browser, drifted: tuple[str, dict[str, Any]]
) -> None:
    customer, event = drifted
    session, page = signed_in(browser, system, customer, width=390)
    event_id = event["name"].rsplit("/", 1)[1]
    views = ("overview", "uploads", "events", f"events/{event_id}", "payers", "reports", "webhooks")
    for view in (*views, "settings"):
        page.goto(f"{system.gateway_url}/#/{view}")
        expect(page.get_by_role("heading", level=1)).to_be_visible()
        expect(page.locator("main[aria-busy]")).to_have_count(0)
        width = page.evaluate("document.scrollingElement.scrollWidth")
        assert width <= 390, f"#/{view} is {width} px wide on a 390 px screen"
    expect(page.get_by_role("link", name="Drift events")).to_be_in_viewport()
    assert session.errors == []


def test_signing_in_and_moving_around_by_keyboard(system: System, browser: Browser) -> None:
    session = open_page(browser)
    page = session.page
    page.goto(system.gateway_url + "/")
    expect(page.get_by_label("Bearer token")).to_be_focused()
    page.keyboard.type(system.token("web-keys", "admin"))
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Sign in")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1, name="Overview")).to_be_visible()

    page.get_by_role("link", name="Payers").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1, name="Payers")).to_be_visible()
    expect(page.get_by_role("link", name="Payers")).to_have_attribute("aria-current", "page")
    assert session.errors == []


def test_a_bad_token_is_refused_on_the_sign_in_form(system: System, browser: Browser) -> None:
    session = open_page(browser)
    page = session.page
    page.goto(system.gateway_url + "/")
    page.get_by_label("Bearer token").fill("not-a-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("not a bearer token")

    expired = system.token("web-expired", "admin", ttl=-60)
    page.get_by_label("Bearer token").fill(expired)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("expired")
    assert session.errors == []


def test_the_page_allows_no_inline_script_and_no_other_origin(system: System) -> None:
    page = httpx.get(system.gateway_url + "/")
    script = httpx.get(system.gateway_url + "/static/js/main.js")
    again = httpx.get(
        system.gateway_url + "/static/js/main.js", headers={"If-None-Match": script.headers["etag"]}
    )

    policy = page.headers["content-security-policy"]
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "script-src 'self';" in policy and "'unsafe-inline'" not in policy
    assert "frame-ancestors 'none'" in policy and "connect-src 'self'" in policy
    assert script.headers["content-type"].startswith("text/javascript")
    assert again.status_code == 304
