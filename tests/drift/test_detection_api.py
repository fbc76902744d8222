"""Detection end to end: uploads through the gateway become drift events with evidence."""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from devtools.synthetic import Drift, Scenario
from services.ingest.code_groups import code_group
from tests.browser import chromium, signed_in
from tests.scenarios import DRIFTED_PAYER, as_csv, denial_drift, run_as_of
from tests.system import System

DRIFT_START = dt.date(2026, 5, 20)


def scenario(customer: str) -> Scenario:
    """Claims of five payers from October 2025, UnitedHealthcare's denials ×2.5 from May 20."""
    return denial_drift(customer, dt.date(2025, 10, 1), DRIFT_START)


def history_csv(customer: str) -> bytes:
    """The customer's `scenario` as the CSV a billing system exports."""
    return as_csv(scenario(customer)).encode()


def _wait_for(fetch: Any, done: Any, timeout: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if done(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.5)


def _events(client: httpx.Client, customer: str, **params: str) -> list[dict[str, Any]]:
    response = client.get(f"/v1/customers/{customer}/driftEvents", params=params)
    assert response.status_code == 200, response.text
    return list(response.json()["driftEvents"])


def _finished_runs(client: httpx.Client, customer: str, count: int) -> list[dict[str, Any]]:
    """The customer's runs, newest first, once there are `count` and all succeeded."""
    found = _wait_for(
        lambda: list(client.get(f"/v1/customers/{customer}/driftRuns").json()["driftRuns"]),
        lambda found: len(found) == count and all(r["state"] == "SUCCEEDED" for r in found),
    )
    assert [r["state"] for r in found] == ["SUCCEEDED"] * count, found
    return found


def _uploaded_apart(
    client: httpx.Client, customer: str, csv_text: str, apart: Callable[[dict[str, str]], bool]
) -> str:
    """The CSV uploaded as two files, the rows `apart` picks (by their fields) last, each
    file's run awaited; the name of the second upload."""
    header, *rows = csv_text.splitlines(keepends=True)
    columns = header.strip().split(",")
    last = [apart(dict(zip(columns, row.strip().split(","), strict=True))) for row in rows]
    for part in (False, True):
        made = client.post(
            f"/v1/customers/{customer}/uploads",
            content="".join([header, *(r for r, x in zip(rows, last, strict=True) if x is part)]),
        )
        assert made.status_code == 200, made.text
        _finished_runs(client, customer, 1 + part)
    return str(made.json()["name"])


def _page_says_it_ended(system: System, event: dict[str, Any], why: str) -> None:
    """The event's page, in Chromium, says when it ended and `why`."""
    customer = event["name"].split("/")[1]
    with chromium() as browser:
        session, page = signed_in(browser, system, customer, "viewer")
        page.goto(f"{system.gateway_url}/#/events/{event['name'].rsplit('/', 1)[1]}")
        expect(page.get_by_test_id("event-ended")).to_contain_text(why)
        assert session.errors == []


@pytest.fixture(scope="module")
def drifted(system: System) -> str:
    """A customer whose uploaded history holds a known denial-rate drift, already analysed
    by the run the upload triggered."""
    customer = "drift" + uuid.uuid4().hex[:8]
    with system.client(customer, "admin") as client:
        upload = client.post(
            f"/v1/customers/{customer}/uploads",
            content=history_csv(customer),
            headers={"Idempotency-Key": "history"},
            timeout=300,
        )
        assert upload.status_code == 200, upload.text
        runs = _wait_for(
            lambda: client.get(f"/v1/customers/{customer}/driftRuns").json()["driftRuns"],
            lambda runs: runs and runs[0]["state"] in ("SUCCEEDED", "FAILED"),
        )
    assert runs and runs[0]["state"] == "SUCCEEDED", runs
    return customer


def test_an_upload_with_a_known_drift_raises_the_event_without_further_calls(
    system: System, drifted: str
) -> None:
    with system.client(drifted, "viewer") as client:
        runs = client.get(f"/v1/customers/{drifted}/driftRuns").json()["driftRuns"]
        events = _events(
            client, drifted, filter=f'payer = "{DRIFTED_PAYER}" AND metric = DENIAL_RATE'
        )
    (run,) = runs
    assert run["trigger"] == "UPLOAD"
    assert run["requestId"].startswith("u_")  # the upload id: the outbox's idempotency key
    assert int(run["cellsTested"]) > 0
    payer_level = [e for e in events if e["codeGroup"] == ""]
    assert len(payer_level) == 1, events
    event = payer_level[0]
    evidence = event["evidence"]
    assert event["state"] == "NEW" and event["active"] is True
    assert evidence["currentValue"] > 1.8 * evidence["baselineValue"]
    assert evidence["pValue"] < 0.001 and evidence["qValue"] <= 0.10
    assert evidence["effectUnit"] == "percentage points" and evidence["effectSize"] >= 5
    assert int(evidence["currentCount"]) >= 50 and int(evidence["baselineCount"]) >= 150
    assert evidence["test"] == "one-sided Fisher exact test"
    interval = evidence["currentInterval"]
    assert interval["lower"] < evidence["currentValue"] < interval["upper"]
    assert int(event["dollarsAtStake"]["units"]) > 0
    assert DRIFTED_PAYER in event["summary"] and "up from" in event["summary"]
    window = event["currentWindow"]
    assert dt.date(**window["endDate"]) - dt.date(**window["startDate"]) == dt.timedelta(days=29)
    # Payers without an injected drift raise no denial-rate alarm at the payer level.
    with system.client(drifted, "viewer") as client:
        others = _events(client, drifted, filter="metric = DENIAL_RATE")
    assert {e["payer"] for e in others if e["codeGroup"] == ""} == {DRIFTED_PAYER}


def test_events_are_found_by_the_days_of_claims_they_were_measured_on(
    system: System, drifted: str
) -> None:
    with system.client(drifted, "viewer") as client:
        everything = _events(client, drifted, pageSize="1000")
        window = everything[0]["currentWindow"]
        start, end = dt.date(**window["startDate"]), dt.date(**window["endDate"])
        overlapping = _events(
            client,
            drifted,
            pageSize="1000",
            filter=f'current_window.start_date <= "{end}" AND current_window.end_date >= "{start}"',
        )
        after = _events(client, drifted, filter=f'current_window.start_date > "{end}"')
        bad = client.get(
            f"/v1/customers/{drifted}/driftEvents",
            params={"filter": 'current_window.end_date >= "March"'},
        )

    assert {e["name"] for e in overlapping} == {e["name"] for e in everything}
    assert after == []
    assert bad.status_code == 400
    assert "current_window.end_date" in bad.text and "YYYY-MM-DD" in bad.text


def test_concurrent_runs_leave_exactly_the_events_one_run_leaves(
    system: System, drifted: str
) -> None:
    with system.client(drifted, "admin") as client:
        before = {(e["name"], e["metric"]) for e in _events(client, drifted, pageSize="1000")}

    def run(index: int) -> dict[str, Any]:
        with system.client(drifted, "admin") as client:
            response = client.post(
                f"/v1/customers/{drifted}/driftRuns", json={"requestId": f"concurrent-{index}"}
            )
            assert response.status_code == 200, response.text
            return dict(response.json())

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        started = list(pool.map(run, range(8)))
    with system.client(drifted, "admin") as client:
        finished = [
            _wait_for(
                lambda name=r["name"]: client.get(f"/v1/{name}").json(),
                lambda run: run["state"] in ("SUCCEEDED", "FAILED"),
            )
            for r in started
        ]
        after = {(e["name"], e["metric"]) for e in _events(client, drifted, pageSize="1000")}
        again = client.post(
            f"/v1/customers/{drifted}/driftRuns", json={"requestId": "concurrent-3"}
        ).json()
    assert [r["state"] for r in finished] == ["SUCCEEDED"] * 8
    assert sum(int(r["eventsOpened"]) for r in finished) == 0
    assert all(int(r["eventsUpdated"]) == len(before) for r in finished)
    assert after == before
    assert again["name"] == started[3]["name"]  # idempotent on the request id


def test_triage_is_kept_across_runs_and_checked(system: System, drifted: str) -> None:
    with system.client(drifted, "admin") as client:
        event = _events(client, drifted, filter=f'payer = "{DRIFTED_PAYER}"')[0]
        # Read once before the triage too: drift keeps each version's message for reads,
        # and the payer summaries they are counted in.
        assert client.get(f"/v1/{event['name']}").json()["state"] == event["state"]
        open_before = _open_events(client, drifted)
        acknowledged = client.patch(
            f"/v1/{event['name']}",
            params={"updateMask": "state,triage_note"},
            json={
                "state": "DISMISSED",
                "triageNote": "known payer policy change",
                "etag": event["etag"],
            },
        )
        assert acknowledged.status_code == 200, acknowledged.text
        assert acknowledged.json()["triagedBy"] == f"admin@{drifted}"
        open_after = _open_events(client, drifted)
        stale = client.patch(f"/v1/{event['name']}", json={"state": "NEW", "etag": event["etag"]})
        bad_state = client.patch(f"/v1/{event['name']}", json={"state": "SOLVED"})
        rerun = client.post(f"/v1/customers/{drifted}/driftRuns", json={}).json()
        _wait_for(
            lambda: client.get(f"/v1/{rerun['name']}").json(),
            lambda run: run["state"] in ("SUCCEEDED", "FAILED"),
        )
        after = client.get(f"/v1/{event['name']}").json()
        # A list and a read made before the triage and the run show them after too.
        listed = {
            e["name"]: e for e in _events(client, drifted, filter=f'payer = "{DRIFTED_PAYER}"')
        }
    with system.client(drifted, "viewer") as viewer:
        forbidden = viewer.patch(f"/v1/{event['name']}", json={"state": "NEW"})
    assert stale.status_code == 409
    assert bad_state.status_code == 400
    assert forbidden.status_code == 403
    assert after["state"] == "DISMISSED"  # a later run never reopens it within its episode
    assert after["triageNote"] == "known payer policy change"
    assert after["lastRun"] == rerun["name"] and after["active"] is True
    assert listed[event["name"]] == after
    # A dismissed event is no longer counted open in its payer's summary, at once.
    assert event["active"] and event["state"] != "DISMISSED"
    assert open_after[DRIFTED_PAYER] == open_before[DRIFTED_PAYER] - 1


def _open_events(client: httpx.Client, customer: str) -> dict[str, int]:
    found = client.get(f"/v1/customers/{customer}/payerSummaries").json()["payerSummaries"]
    return {s["payer"]: s.get("openEventCount", 0) for s in found}


def test_an_event_no_run_can_test_any_more_stays_open_and_says_since_when(
    system: System, drifted: str
) -> None:
    """A run as of a day months after the customer's claims (its cells hold none in its
    windows) cannot make the comparison: the event stays open, untested since that day; a run
    that makes it again says so no more."""
    which = f'payer = "{DRIFTED_PAYER}" AND metric = DENIAL_RATE AND code_group = ""'
    with system.client(drifted, "admin") as client:
        as_of = dt.date(
            **client.get(f"/v1/customers/{drifted}/driftRuns").json()["driftRuns"][-1]["asOf"]
        )
        (before,) = _events(client, drifted, filter=which)
        # Today: months after the claims (a run may not be as of a day still to come).
        later = dt.datetime.now(dt.UTC).date()
        assert later - as_of > dt.timedelta(days=60), as_of
        untested_run = run_as_of(system, drifted, later)
        (untested,) = _events(client, drifted, filter=which)
        read = client.get(f"/v1/{untested['name']}").json()
        again_run = run_as_of(system, drifted, as_of)
        (again,) = _events(client, drifted, filter=which)
    assert before["active"] is True and "untestedSince" not in before
    assert untested_run["state"] == "SUCCEEDED"
    assert int(untested_run.get("cellsTested", 0)) == 0
    assert int(untested_run.get("eventsClosed", 0)) == 0
    assert untested["name"] == before["name"] and untested["active"] is True
    assert dt.date(**untested["untestedSince"]) == later
    # The last run that found it is still the one before; the event itself changed.
    assert untested["lastRun"] == before["lastRun"] and untested["etag"] != before["etag"]
    assert read == untested
    assert again_run["state"] == "SUCCEEDED" and again["name"] == before["name"]
    assert again["active"] is True and "untestedSince" not in again
    assert again["lastRun"] == again_run["name"]


def test_an_episode_ends_when_a_run_no_longer_finds_it(system: System, drifted: str) -> None:
    before_drift = DRIFT_START - dt.timedelta(days=1)
    with system.client(drifted, "admin") as client:
        run = client.post(
            f"/v1/customers/{drifted}/driftRuns",
            json={
                "asOf": {
                    "year": before_drift.year,
                    "month": before_drift.month,
                    "day": before_drift.day,
                }
            },
        ).json()
        done = _wait_for(
            lambda: client.get(f"/v1/{run['name']}").json(),
            lambda r: r["state"] in ("SUCCEEDED", "FAILED"),
        )
        ended = _events(
            client, drifted, filter=f'payer = "{DRIFTED_PAYER}" AND metric = DENIAL_RATE'
        )
    assert done["state"] == "SUCCEEDED" and int(done["eventsClosed"]) >= 1
    payer_level = [e for e in ended if e["codeGroup"] == ""]
    assert payer_level and payer_level[0]["active"] is False and "endTime" in payer_level[0]


def _date(day: dt.date) -> dict[str, int]:
    return {"year": day.year, "month": day.month, "day": day.day}


def test_payer_summaries_show_the_drift_in_the_weekly_series(system: System, drifted: str) -> None:
    with system.client(drifted, "viewer") as client:
        summaries = client.get(f"/v1/customers/{drifted}/payerSummaries").json()["payerSummaries"]
    by_payer = {s["payer"]: s for s in summaries}
    drifted_payer = by_payer[DRIFTED_PAYER]
    weeks = drifted_payer["weeklySeries"]
    assert drifted_payer["current"]["denialRate"] > 1.8 * drifted_payer["baseline"]["denialRate"]
    assert sum(int(w["claims"]) for w in weeks) > 0
    # The windows end on the extract date, the latest decision in the upload (a Sunday): the
    # default 30 days to it and the 180 before; the 26 weeks end with the week holding it.
    extract = scenario(drifted).end
    assert extract == dt.date(2026, 6, 7)
    assert drifted_payer["currentWindow"] == {
        "startDate": _date(dt.date(2026, 5, 9)),
        "endDate": _date(extract),
    }
    assert drifted_payer["baselineWindow"] == {
        "startDate": _date(dt.date(2025, 11, 10)),
        "endDate": _date(dt.date(2026, 5, 8)),
    }
    assert [w["weekStart"] for w in weeks] == [
        _date(dt.date(2025, 12, 8) + dt.timedelta(weeks=n)) for n in range(26)
    ]


def test_drift_config_is_validated(system: System) -> None:
    customer = "cfg" + uuid.uuid4().hex[:6]
    with system.client(customer, "admin") as client:
        response = client.patch(
            f"/v1/customers/{customer}/driftConfig",
            json={"minCurrentClaims": 0, "enabledMetrics": ["DENIAL_RATE", "DENIAL_RATE"]},
        )
    assert response.status_code == 400
    fields = {
        v["field"]
        for d in response.json()["details"]
        if d["@type"].endswith("BadRequest")
        for v in d["fieldViolations"]
    }
    assert fields == {"drift_config.min_current_claims", "drift_config.enabled_metrics"}


def _claims_csv(rows: list[tuple[str, str, dt.date, int, int, int]]) -> bytes:
    """(claim id, payer, decision date, allowed, paid, patient cents) as a CSV export; each
    claim submitted 15 days before its decision."""
    lines = [
        "claim_id,payer,procedure_code,service_date,submitted_date,decision_date,status,"
        "billed_amount,allowed_amount,paid_amount,patient_responsibility"
    ]
    for claim_id, payer, decided, allowed, paid, patient in rows:
        submitted = decided - dt.timedelta(days=15)
        lines.append(
            f"{claim_id},{payer},99213,{submitted},{submitted},{decided},PAID,"
            f"{allowed / 100:.2f},{allowed / 100:.2f},{paid / 100:.2f},{patient / 100:.2f}"
        )
    return ("\n".join(lines) + "\n").encode()


def test_payer_summaries_say_when_a_new_payer_will_be_compared_and_show_the_season(
    system: System,
) -> None:
    """Aetna has a year of history and, in the current window, patients paying much more of
    the allowed amount while Aetna settles the same share: its summary says deductible
    season. Newco appeared in April: not enough history yet, and the summary says the first
    day a run will compare it. "Self Pay" (the patients themselves) is summarised and flagged,
    and no run will compare it."""
    customer = "season" + uuid.uuid4().hex[:6]
    last = dt.date(2026, 6, 30)
    rows = []
    for n in range(365):
        day = last - dt.timedelta(days=n)
        deductible = day >= dt.date(2026, 6, 1)
        patient = 6_000 if deductible else 1_000
        for k in range(4):
            rows.append((f"A{n}-{k}", "Aetna", day, 10_000, 8_000 - patient, patient))
        if day >= dt.date(2026, 4, 1):
            rows.append((f"N{n}", "Newco", day, 10_000, 8_000, 1_000))
            rows.append((f"S{n}", "Self Pay", day, 10_000, 0, 10_000))
    with system.client(customer, "admin") as client:
        upload = client.post(
            f"/v1/customers/{customer}/uploads", content=_claims_csv(rows), timeout=120
        )
        assert upload.status_code == 200, upload.text
        summaries = client.get(f"/v1/customers/{customer}/payerSummaries").json()
    by_payer = {s["payer"]: s for s in summaries["payerSummaries"]}
    aetna, newco, self_pay = by_payer["Aetna"], by_payer["Newco"], by_payer["Self Pay"]
    assert "detectionStartDate" not in aetna
    assert (aetna["selfPay"], newco["selfPay"], self_pay["selfPay"]) == (False, False, True)
    assert "detectionStartDate" not in self_pay
    assert self_pay["current"]["claims"] == "30"
    assert aetna["current"]["patientShare"] == pytest.approx(0.6)
    assert aetna["baseline"]["patientShare"] == pytest.approx(0.1)
    assert aetna["seasonNote"].startswith("Deductible season: patients pay 60% of the allowed")
    assert "what the payer settles is unchanged" in aetna["seasonNote"]
    # First decision April 1, 60 days' lead for a payer newer than the customer's data,
    # then a 180-day baseline, the 30-day window and the 6 days a finding must hold.
    assert newco["detectionStartDate"] == _date(dt.date(2026, 4, 1) + dt.timedelta(days=275))
    assert newco["seasonNote"] == ""


def test_a_payer_name_mapped_to_self_pay_is_no_longer_compared(system: System) -> None:
    """An export calls the patients "PT RESP", a name Upstream cannot know: summarised and
    compared as a payer, until a mapping names it "Self Pay"; then its claims are the
    patients' (flagged, never compared) and no payer of that name is left."""
    customer = "ptresp" + uuid.uuid4().hex[:6]
    last = dt.date(2026, 6, 30)
    rows = [
        (f"{payer[0]}{n}", payer, last - dt.timedelta(days=n), 10_000, paid, 10_000 - paid)
        for n in range(200)
        for payer, paid in (("Aetna", 8_000), ("PT RESP", 0))
    ]
    with system.client(customer, "admin") as client:

        def summaries() -> dict[str, dict[str, Any]]:
            found = client.get(f"/v1/customers/{customer}/payerSummaries")
            assert found.status_code == 200, found.text
            return {s["payer"]: s for s in found.json().get("payerSummaries", [])}

        upload = client.post(f"/v1/customers/{customer}/uploads", content=_claims_csv(rows))
        assert upload.status_code == 200, upload.text
        before = summaries()
        assert set(before) == {"Aetna", "PT RESP"}
        assert (before["Aetna"]["selfPay"], before["PT RESP"]["selfPay"]) == (False, False)

        mapped = client.post(
            f"/v1/customers/{customer}/payerMappings",
            json={"rawPayerName": "PT RESP", "canonicalPayer": "Self Pay"},
        )
        assert mapped.status_code == 200, mapped.text
        after = summaries()
    assert set(after) == {"Aetna", "Self Pay"}
    assert (after["Aetna"]["selfPay"], after["Self Pay"]["selfPay"]) == (False, True)
    assert after["Self Pay"]["current"]["claims"] == before["PT RESP"]["current"]["claims"]
    assert after["Aetna"] == before["Aetna"]


def test_payer_summaries_follow_every_change_of_the_data_and_the_settings(
    system: System,
) -> None:
    """Summaries are kept between reads, never served stale: an upload, a deleted upload and
    new detection settings show in the next read, as ingest's data state says."""
    customer = "follow" + uuid.uuid4().hex[:6]
    last = dt.date(2026, 6, 30)
    aetna = [(f"A{n}", "Aetna", last - dt.timedelta(days=n), 10_000, 8_000, 0) for n in range(200)]
    humana = [(f"H{n}", "Humana", dt.date(2026, 7, 10), 10_000, 8_000, 0) for n in range(5)]

    with system.client(customer, "admin") as client:

        def state() -> dict[str, Any]:
            response = client.get(f"/v1/customers/{customer}/dataState")
            assert response.status_code == 200, response.text
            return dict(response.json())

        def summaries() -> dict[str, dict[str, Any]]:
            found = client.get(f"/v1/customers/{customer}/payerSummaries").json()
            return {s["payer"]: s for s in found.get("payerSummaries", [])}

        empty = state()
        assert "latestDecisionDate" not in empty and summaries() == {}
        first = client.post(f"/v1/customers/{customer}/uploads", content=_claims_csv(aetna))
        assert first.status_code == 200, first.text
        after_first = state()
        assert after_first["etag"] != empty["etag"]
        assert after_first["latestDecisionDate"] == _date(last)
        assert list(summaries()) == ["Aetna"]
        assert state() == after_first  # reads change nothing

        second = client.post(f"/v1/customers/{customer}/uploads", content=_claims_csv(humana))
        assert second.status_code == 200, second.text
        assert state()["latestDecisionDate"] == _date(dt.date(2026, 7, 10))
        both = summaries()
        assert set(both) == {"Aetna", "Humana"}
        assert both["Humana"]["currentWindow"]["endDate"] == _date(dt.date(2026, 7, 10))

        patched = client.patch(
            f"/v1/customers/{customer}/driftConfig", json={"currentWindowDays": 14}
        )
        assert patched.status_code == 200, patched.text
        assert summaries()["Aetna"]["currentWindow"]["startDate"] == _date(dt.date(2026, 6, 27))

        deleted = client.delete(f"/v1/{second.json()['name']}")
        assert deleted.status_code == 200, deleted.text
        after_delete = state()
        assert after_delete["latestDecisionDate"] == _date(last)
        assert after_delete["etag"] not in (after_first["etag"], empty["etag"])
        assert list(summaries()) == ["Aetna"]


def test_deleting_the_upload_a_drift_was_found_in_runs_detection_again_and_ends_the_event(
    system: System,
) -> None:
    """A file sent by mistake (another practice's denials, say) raised a drift. Deleting its
    upload starts a run of its own (trigger DATA_CHANGE, its request id naming the upload),
    which ends the event: what data no longer there showed does not stand. A payer mapping
    that moves claims between payers starts one too."""
    customer = "deleted" + uuid.uuid4().hex[:8]
    header, *rows = as_csv(scenario(customer)).splitlines(keepends=True)
    columns = header.strip().split(",")
    payer, status, decided = (columns.index(c) for c in ("payer", "status", "decision_date"))

    def mistaken(row: str) -> bool:
        cells = row.split(",")
        return (
            cells[payer] == DRIFTED_PAYER
            and cells[status] == "DENIED"
            and dt.date.fromisoformat(cells[decided]) >= DRIFT_START
        )

    with system.client(customer, "admin") as client:

        def runs() -> list[dict[str, Any]]:
            return list(client.get(f"/v1/customers/{customer}/driftRuns").json()["driftRuns"])

        def finished(count: int) -> list[dict[str, Any]]:
            found = _wait_for(
                runs,
                lambda found: (
                    len(found) == count
                    and all(r["state"] in ("SUCCEEDED", "FAILED") for r in found)
                ),
            )
            assert len(found) == count and {r["state"] for r in found} == {"SUCCEEDED"}, found
            return found

        def upload(lines: list[str]) -> str:
            made = client.post(
                f"/v1/customers/{customer}/uploads", content="".join([header, *lines]).encode()
            )
            assert made.status_code == 200, made.text
            return str(made.json()["name"])

        upload([row for row in rows if not mistaken(row)])
        finished(1)
        second = upload([row for row in rows if mistaken(row)])
        finished(2)
        (event,) = _events(
            client,
            customer,
            filter=f'payer = "{DRIFTED_PAYER}" AND metric = DENIAL_RATE AND code_group = ""',
        )
        assert event["active"] is True

        assert client.delete(f"/v1/{second}").status_code == 200
        after_delete = finished(3)[0]
        ended = client.get(f"/v1/{event['name']}").json()

        mapped = client.post(
            f"/v1/customers/{customer}/payerMappings",
            json={"rawPayerName": DRIFTED_PAYER, "canonicalPayer": "UHC Commercial"},
        )
        assert mapped.status_code == 200, mapped.text
        after_mapping = finished(4)[0]

    assert after_delete["trigger"] == "DATA_CHANGE"
    assert after_delete["requestId"].startswith(f"upload-deleted:{second.rsplit('/', 1)[1]}:")
    assert int(after_delete["eventsClosed"]) >= 1
    assert ended["active"] is False and "endTime" in ended
    assert ended["endReason"] == "NO_LONGER_FOUND"
    assert after_mapping["trigger"] == "DATA_CHANGE"
    mapping_id = mapped.json()["name"].rsplit("/", 1)[1]
    assert after_mapping["requestId"].startswith(f"payer-mapping:{mapping_id}:")


def test_the_events_of_a_payer_whose_every_claim_went_with_a_deleted_upload_end(
    system: System,
) -> None:
    """A payer's whole history came in one file, which raised its drifts; that upload is
    deleted. Nothing is left of the payer, so its events end rather than wait, untested, for
    claims that will not come (a payer whose claims merely stopped coming stays open)."""
    customer = "gone" + uuid.uuid4().hex[:8]
    with system.client(customer, "admin") as client:
        made = _uploaded_apart(
            client, customer, as_csv(scenario(customer)), lambda r: r["payer"] == DRIFTED_PAYER
        )
        raised = _events(client, customer, filter=f'payer = "{DRIFTED_PAYER}" AND active = true')
        others = _events(client, customer, filter=f'payer != "{DRIFTED_PAYER}" AND active = true')
        assert client.delete(f"/v1/{made}").status_code == 200
        after_delete = _finished_runs(client, customer, 3)[0]
        ended = [client.get(f"/v1/{event['name']}").json() for event in raised]
        still = _events(client, customer, filter="active = true")

    assert raised
    assert int(after_delete["eventsClosed"]) == len(raised)
    assert [(e["active"], "untestedSince" in e, "endTime" in e, e["endReason"]) for e in ended] == [
        (False, False, True, "CLAIMS_REMOVED")
    ] * len(raised)
    # The event's page says when and why it ended.
    _page_says_it_ended(system, raised[0], f"none of {DRIFTED_PAYER}'s claims are left")
    assert sorted(e["name"] for e in still) == sorted(e["name"] for e in others)


def test_the_events_of_a_code_group_whose_every_claim_went_with_a_deleted_upload_end(
    system: System,
) -> None:
    """The drifted payer's evaluation and management claims, whose denials rose, came in a
    file of their own, which is deleted: that code group's events end, as nothing is left
    of it; the payer's other events and every other payer's are compared again as before."""
    customer = "gonecell" + uuid.uuid4().hex[:8]
    group = "EVALUATION_MANAGEMENT"
    drifted = replace(
        scenario(customer),
        drifts=(
            Drift(DRIFTED_PAYER, DRIFT_START, "denial_rate", factor=3.0, code_group=group),
            Drift(DRIFTED_PAYER, DRIFT_START, "decision_days", days=25, code_group="LABORATORY"),
            Drift("Medicare Part B", DRIFT_START, "denial_rate", factor=3.0),
        ),
    )
    with system.client(customer, "admin") as client:
        made = _uploaded_apart(
            client,
            customer,
            as_csv(drifted),
            lambda r: r["payer"] == DRIFTED_PAYER and code_group(r["procedure_code"]) == group,
        )
        of_group = f'payer = "{DRIFTED_PAYER}" AND code_group = "{group}" AND active = true'
        raised = _events(client, customer, filter=of_group)
        others = _events(client, customer, filter=f"NOT ({of_group}) AND active = true")
        assert client.delete(f"/v1/{made}").status_code == 200
        _finished_runs(client, customer, 3)
        ended = [client.get(f"/v1/{event['name']}").json() for event in raised]
        still = _events(client, customer, filter="active = true")
        payer_events = _events(client, customer, filter=f'payer = "{DRIFTED_PAYER}"')

    assert raised and {e["payer"] for e in others} == {DRIFTED_PAYER, "Medicare Part B"}
    assert [(e["active"], "untestedSince" in e, e["endReason"]) for e in ended] == [
        (False, False, "CLAIMS_REMOVED")
    ] * len(raised)
    # The drifts of the payer's other code groups and of the other payer go on; the payer's
    # own comparison is made again without the group (and no longer finds the drift it
    # carried), not ended for it.
    assert {(e["payer"], e["codeGroup"], e["metric"]) for e in still} == {
        (DRIFTED_PAYER, "LABORATORY", "DECISION_DAYS"),
        ("Medicare Part B", "", "DENIAL_RATE"),
    }
    assert not any(
        e["endReason"] == "CLAIMS_REMOVED" for e in payer_events if e["codeGroup"] != group
    )
    _page_says_it_ended(
        system, raised[0], f"none of {DRIFTED_PAYER}'s evaluation and management claims are left"
    )


def test_the_events_of_a_payer_whose_claims_stopped_long_ago_stay_open_untested(
    system: System,
) -> None:
    """A history that ended two years ago holds a drift; a run as of today reads none of
    it. The claims are still there, so its events stay open, not tested since, rather than
    end as if the claims had gone."""
    customer = "stopped" + uuid.uuid4().hex[:8]
    start = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1000)
    old = as_csv(denial_drift(customer, start, start + dt.timedelta(days=220))).encode()
    with system.client(customer, "admin") as client:
        made = client.post(f"/v1/customers/{customer}/uploads", content=old, timeout=300)
        assert made.status_code == 200, made.text
        _wait_for(
            lambda: client.get(f"/v1/customers/{customer}/driftRuns").json()["driftRuns"],
            lambda runs: runs and runs[0]["state"] in ("SUCCEEDED", "FAILED"),
        )
        before = _events(client, customer, filter="active = true")
    today = dt.datetime.now(dt.UTC).date()
    run = run_as_of(system, customer, today)
    with system.client(customer, "viewer") as client:
        after = {e["name"]: e for e in _events(client, customer)}

    assert before and run["state"] == "SUCCEEDED" and int(run.get("cellsTested", 0)) == 0
    assert int(run["eventsUntested"]) == len(before) and int(run["eventsClosed"]) == 0
    # The runs page says so beside what the run found.
    with chromium() as browser:
        session, page = signed_in(browser, system, customer, "viewer")
        page.goto(f"{system.gateway_url}/#/runs")
        newest = page.get_by_role("table", name="Detection runs, newest first").get_by_role("row")
        expect(newest.nth(1)).to_contain_text(
            f"0 events opened, 0 updated, 0 closed, {len(before)} not tested"
        )
        assert session.errors == []
    assert [
        (after[e["name"]]["active"], after[e["name"]].get("untestedSince")) for e in before
    ] == [(True, {"year": today.year, "month": today.month, "day": today.day})] * len(before)
