"""Synthetic histories tests share."""

from __future__ import annotations

import datetime as dt
import io
import time
from typing import Any

from devtools.synthetic import Drift, Scenario, write_csv
from tests.system import System

DRIFTED_PAYER = "UnitedHealthcare"
DETECTION_SECONDS = 120


def denial_drift(customer: str, start: dt.date, drift_start: dt.date) -> Scenario:
    """250 days of claims of five payers from `start` (16,000 in all), UnitedHealthcare's
    denials ×2.5 from `drift_start`: a drift detection finds at once."""
    return Scenario(
        customer=customer,
        start=start,
        days=250,
        claims=16_000,
        payers=5,
        seed=11,
        drifts=(Drift(payer=DRIFTED_PAYER, start=drift_start, metric="denial_rate", factor=2.5),),
    )


def as_csv(scenario: Scenario) -> str:
    """The scenario as the CSV a billing system exports."""
    buffer = io.StringIO()
    write_csv(scenario, buffer)
    return buffer.getvalue()


# A fixed period, so what detection finds in it (the denial drift, and the other events the
# tests that list several rely on) does not change with the day the tests run.
HISTORY_START = dt.date(2026, 2, 7)


def drifted_history(customer: str) -> str:
    """250 days from HISTORY_START, UnitedHealthcare's denials ×2.5 for the last 19: a
    CSV."""
    start = HISTORY_START
    return as_csv(denial_drift(customer, start, start + dt.timedelta(days=231)))


def upload_drifted_history(system: System, customer: str) -> list[dict[str, Any]]:
    """`drifted_history` uploaded over the REST API, and the events its detection opened
    (detection is started by the outbox relay), once the denial drift is among them."""
    with system.client(customer, "admin") as client:
        made = client.post(
            f"/v1/customers/{customer}/uploads",
            params={"upload.fileName": "history.csv"},
            content=drifted_history(customer).encode(),
            headers={"Content-Type": "text/csv"},
        )
    assert made.status_code == 200, made.text
    return wait_for_events(system, customer)


def wait_for_events(system: System, customer: str) -> list[dict[str, Any]]:
    """The customer's events, once its drifted payer's denial drift is among them."""
    deadline = time.monotonic() + DETECTION_SECONDS
    with system.client(customer, "viewer") as client:
        while True:
            found = client.get(
                f"/v1/customers/{customer}/driftEvents", params={"pageSize": 1000}
            ).json()
            events: list[dict[str, Any]] = found.get("driftEvents", [])
            if any(e["payer"] == DRIFTED_PAYER and e["metric"] == "DENIAL_RATE" for e in events):
                return events
            assert time.monotonic() < deadline, "detection found no denial drift"
            time.sleep(1)


def run_as_of(system: System, customer: str, day: dt.date) -> dict[str, Any]:
    """A detection run of the customer as of `day`, asked for over the REST API, once it
    has finished (SUCCEEDED or FAILED)."""
    with system.client(customer, "admin") as client:
        started = client.post(
            f"/v1/customers/{customer}/driftRuns",
            json={"asOf": {"year": day.year, "month": day.month, "day": day.day}},
        )
        assert started.status_code == 200, started.text
        deadline = time.monotonic() + DETECTION_SECONDS
        while (run := client.get(f"/v1/{started.json()['name']}").json())["state"] not in (
            "SUCCEEDED",
            "FAILED",
        ):
            assert time.monotonic() < deadline, "the run did not finish"
            time.sleep(0.5)
    return dict(run)
