"""The oracle `make eval` compares detection delays with: a one-sided CUSUM on a cell's daily
series that knows the true effect of the drift it looks for.

Each day adds the log-likelihood ratio of that day's claims, drifted against not: Bernoulli
for the denial rate (the rate before, and the rate times the drift's factor), normal for the
mean days to decision of the claims decided that day (the mean before, and the mean plus the
drift's days). What the rate or the mean was before is the cell's own, on the same days a year
earlier (±`REFERENCE_HALF_WIDTH`): the generator repeats its seasons every year, so that is
what a payer's claims on those days are expected to be. The statistic S = max(0, S + LLR)
alarms when it reaches a threshold and starts again from 0. The threshold is set on cells
without drift, to the false-alarm rate (alarms per cell-month) the detector has on them:
the oracle's delay is then what the data allow at the detector's false-alarm rate.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

# The reference is the same days 52 weeks earlier (same weekdays), ±2 weeks.
REFERENCE_LAG_DAYS = 364
REFERENCE_HALF_WIDTH = 14
# Fewer claims than this in the reference: no expectation, the day adds nothing.
MIN_REFERENCE_CLAIMS = 30
MAX_DENIAL_RATE = 0.95
DAYS_PER_MONTH = 365.25 / 12


@dataclass(frozen=True)
class DailyCell:
    """One payer × code group, day by day from `first` (consecutive days, none missing)."""

    first: dt.date
    decided: IntArray
    denied: IntArray
    timed: IntArray  # claims decided that day with a days-to-decision value
    days_sum: FloatArray  # their days to decision, summed
    days_squares: FloatArray  # and squared, summed

    def index(self, day: dt.date) -> int:
        return (day - self.first).days


def _reference(values: npt.NDArray[np.float64] | IntArray) -> FloatArray:
    """Each day's sum of `values` over the same days a year earlier (0 where none)."""
    cumulative = np.concatenate(([0.0], np.cumsum(values, dtype=np.float64)))
    days = np.arange(values.size)
    low = np.clip(days - REFERENCE_LAG_DAYS - REFERENCE_HALF_WIDTH, 0, values.size)
    high = np.clip(days - REFERENCE_LAG_DAYS + REFERENCE_HALF_WIDTH + 1, 0, values.size)
    return cumulative[high] - cumulative[low]


def denial_rate_increments(cell: DailyCell, factor: float) -> FloatArray:
    """Each day's Bernoulli log-likelihood ratio of its denials: the reference rate times
    `factor` against the reference rate."""
    reference_decided = _reference(cell.decided)
    reference_denied = _reference(cell.denied)
    known = (reference_decided >= MIN_REFERENCE_CLAIMS) & (reference_denied > 0)
    before = np.where(known, reference_denied / np.maximum(reference_decided, 1), 0.5)
    before = np.minimum(before, MAX_DENIAL_RATE / factor)
    after = before * factor
    llr = cell.denied * np.log(after / before) + (cell.decided - cell.denied) * np.log(
        (1 - after) / (1 - before)
    )
    return np.where(known, llr, 0.0)


def decision_days_increments(cell: DailyCell, shift: float) -> FloatArray:
    """Each day's normal log-likelihood ratio of the mean days to decision of the claims it
    decided: the reference mean plus `shift` against the reference mean, with the reference's
    spread."""
    timed = _reference(cell.timed)
    known = timed >= MIN_REFERENCE_CLAIMS
    count = np.maximum(timed, 1)
    mean = _reference(cell.days_sum) / count
    variance = np.maximum(_reference(cell.days_squares) / count - mean**2, 1e-9)
    llr = shift / variance * (cell.days_sum - cell.timed * (mean + shift / 2))
    return np.where(known, llr, 0.0)


def alarms(increments: FloatArray, threshold: float) -> npt.NDArray[np.bool_]:
    """Where the CUSUM of each row (a cell, its days in columns) alarms at `threshold`,
    starting again from 0 after each alarm."""
    rows = np.atleast_2d(increments)
    statistic = np.zeros(rows.shape[0])
    fired = np.zeros(rows.shape, dtype=bool)
    for day in range(rows.shape[1]):
        statistic = np.maximum(statistic + rows[:, day], 0.0)
        fired[:, day] = statistic >= threshold
        statistic[fired[:, day]] = 0.0
    return fired


def first_alarm(increments: FloatArray, threshold: float, start: int) -> int | None:
    """The first day (index) from `start` on that the CUSUM of one cell's days alarms; the
    statistic runs from day 0, as the detector runs before the drift too."""
    fired = np.flatnonzero(alarms(increments, threshold)[0, start:])
    return int(fired[0]) + start if fired.size else None


def alarms_per_cell_month(increments: FloatArray, threshold: float) -> float:
    rows = np.atleast_2d(increments)
    months = rows.size / DAYS_PER_MONTH
    return int(alarms(rows, threshold).sum()) / months if months else 0.0


@dataclass(frozen=True)
class Calibration:
    threshold: float
    alarms_per_cell_month: float  # the oracle's, on the cells without drift
    cells: int
    cell_months: float


def calibrate(increments: FloatArray, target: float, iterations: int = 40) -> Calibration:
    """The lowest threshold at which the CUSUM of the cells without drift (rows of
    `increments`) alarms at most `target` times per cell-month.

    The alarm count never grows with the threshold: between two alarms at a higher one the
    lower one, which never runs below it in between, alarms at least once. So bisection finds
    it. A target of 0 gives the threshold just above the largest value the statistic reaches.
    """
    rows = np.atleast_2d(increments)
    # Past the largest value the statistic reaches without resets, it never alarms.
    low, high = 0.0, float(np.max(_running_maximum(rows), initial=0.0)) * (1 + 1e-9) + 1e-9
    for _ in range(iterations):
        middle = (low + high) / 2
        if alarms_per_cell_month(rows, middle) > target:
            low = middle
        else:
            high = middle
    return Calibration(
        high, alarms_per_cell_month(rows, high), rows.shape[0], rows.size / DAYS_PER_MONTH
    )


def _running_maximum(rows: FloatArray) -> FloatArray:
    """The largest value each row's CUSUM reaches when it never alarms."""
    statistic = np.zeros(rows.shape[0])
    highest = np.zeros(rows.shape[0])
    for day in range(rows.shape[1]):
        statistic = np.maximum(statistic + rows[:, day], 0.0)
        highest = np.maximum(highest, statistic)
    return highest
