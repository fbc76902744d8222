"""Synthetic histories tests share."""

from __future__ import annotations

import datetime as dt
import io

from devtools.synthetic import Drift, Scenario, write_csv

DRIFTED_PAYER = "UnitedHealthcare"


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
