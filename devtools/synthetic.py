"""Synthetic claims with known, injected payer drift, for demo data, tests and benchmarks.

A `Scenario` describes a provider organisation's claims over a period: long-tailed payer
volumes, a realistic CPT/HCPCS mix, payer-specific fee schedules, denial rates and decision
times, patient responsibility, a few claims held pending, and any number of injected `Drift`s
(a payer denying more, deciding slower or paying less from a given decision date). Payers may
start late (`NewPayer`) or change volume at the same rates (`VolumeChange`). Every year brings
the same seasons for a payer: deductibles that take much of the allowed amount early in the
year, eligibility denials (CO-27) on claims of the first weeks of January as plans change, and
slower decisions over the year-end holidays. The same scenario and seed always give the same
claims and the same bytes.

Claims are generated lazily, day of service by day of service, so the CSV writer streams any
number of rows in flat memory. The 835 writer groups claims by payer and decision date, so it
holds the claims still awaiting their decision date: about claims-per-day × 30 of them.

    python -m devtools.synthetic --claims 100000 --days 365 --seed 7 --format csv --out x.csv \\
        --drift "payer=Aetna,metric=denial_rate,factor=2,start=2025-09-01"
"""

from __future__ import annotations

import argparse
import bisect
import csv
import datetime as dt
import itertools
import math
import random
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TextIO, cast, get_args

from services.ingest.code_groups import code_group
from services.ingest.denials import classify
from services.ingest.records import Adjustment, ClaimRecord, ClaimStatus, ServiceLine

Metric = Literal["denial_rate", "decision_days", "payment_ratio"]
METRICS: tuple[Metric, ...] = get_args(Metric)

CSV_HEADER = (
    "claim_id",
    "payer",
    "procedure_code",
    "service_date",
    "submitted_date",
    "decision_date",
    "status",
    "billed_amount",
    "allowed_amount",
    "paid_amount",
    "patient_responsibility",
    "carc_codes",
)


@dataclass(frozen=True)
class Drift:
    """A change in one payer's behaviour for claims decided on or after `start`."""

    payer: str  # canonical payer name it applies to
    start: dt.date  # first decision date affected
    metric: Metric
    factor: float = 1.0  # denial_rate: multiply the payer's denial probability (e.g. 2.0)
    days: float = 0.0  # decision_days: add N days to time-to-decision
    ratio_drop: float = 0.0  # payment_ratio: paid/allowed drops by this fraction (e.g. 0.10)
    code_group: str | None = None  # restrict to one procedure-code group (None = all)

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ValueError(f"metric must be one of {', '.join(METRICS)}, got {self.metric!r}")
        if self.metric == "denial_rate" and (self.factor < 0 or self.factor == 1.0):
            raise ValueError("a denial_rate drift needs a factor ≥ 0 other than 1")
        if self.metric == "decision_days" and self.days == 0:
            raise ValueError("a decision_days drift needs days other than 0")
        if self.metric == "payment_ratio" and not 0 < self.ratio_drop < 1:
            raise ValueError("a payment_ratio drift needs 0 < ratio_drop < 1")

    def __str__(self) -> str:
        change = {
            "denial_rate": f"denial probability ×{self.factor:g}",
            "decision_days": f"time to decision {self.days:+g} days",
            "payment_ratio": f"paid/allowed −{self.ratio_drop:.0%}",
        }[self.metric]
        codes = f" ({self.code_group} codes)" if self.code_group else ""
        return f"{self.payer}{codes}: {change} for decisions from {self.start.isoformat()}"


@dataclass(frozen=True)
class NewPayer:
    """A payer whose first claims are those serviced on `first_service`: none before."""

    payer: str
    first_service: dt.date


@dataclass(frozen=True)
class VolumeChange:
    """A payer's claims serviced from `start` on are `factor` times its usual volume, at the
    same rates (a practice joining the group, a new employer contract)."""

    payer: str
    start: dt.date
    factor: float

    def __post_init__(self) -> None:
        if self.factor < 0:
            raise ValueError(f"a volume factor must be ≥ 0, got {self.factor}")


@dataclass(frozen=True)
class Scenario:
    """What to generate. Service dates run from `start` for `days` days; the last of them is
    also the extract date: claims the payer would decide after it are PENDING."""

    customer: str = "acme"
    start: dt.date = dt.date(2025, 1, 1)  # first service date
    days: int = 365
    claims: int = 100_000  # total claims over the period
    payers: int = 25  # long-tailed volumes (Zipf-like): a few big payers, many small
    seed: int = 7
    # Claims held pending regardless of age (in review, awaiting records). Claims whose
    # decision would fall after the extract date are PENDING on top of these.
    pending_fraction: float = 0.03
    drifts: tuple[Drift, ...] = ()
    new_payers: tuple[NewPayer, ...] = ()
    volume_changes: tuple[VolumeChange, ...] = ()

    def __post_init__(self) -> None:
        if not 1 <= self.payers <= len(_PAYERS):
            raise ValueError(f"payers must be between 1 and {len(_PAYERS)}, got {self.payers}")
        if self.days < 1 or self.claims < 0:
            raise ValueError("days must be ≥ 1 and claims ≥ 0")
        if not 0 <= self.pending_fraction <= 1:
            raise ValueError(f"pending_fraction must be in [0, 1], got {self.pending_fraction}")
        names = payer_names(self)
        for what, payer in (
            *(("drift", d.payer) for d in self.drifts),
            *(("new payer", n.payer) for n in self.new_payers),
            *(("volume change", v.payer) for v in self.volume_changes),
        ):
            if payer not in names:
                raise ValueError(f"{what} payer {payer!r} is not one of this scenario's")
        if len({n.payer for n in self.new_payers}) < len(self.new_payers):
            raise ValueError("a payer can start only once")
        for drift in self.drifts:
            if drift.code_group is not None and drift.code_group not in CODE_GROUPS:
                raise ValueError(
                    f"drift code_group {drift.code_group!r} is not one of {', '.join(CODE_GROUPS)}"
                )

    @property
    def end(self) -> dt.date:
        """The last service date, and the date the extract is taken."""
        return self.start + dt.timedelta(days=self.days - 1)


# --- Payers --------------------------------------------------------------------------------
# In volume rank order. Ids look like EDI payer ids but are illustrative, not a directory.
# Kind drives the claim filing indicator (CLP06) and how patient responsibility works.
_PAYERS: tuple[tuple[str, str, str], ...] = (
    ("UnitedHealthcare", "87726", "commercial"),
    ("Medicare Part B", "04412", "medicare"),
    ("Blue Cross Blue Shield of Texas", "84980", "blues"),
    ("Aetna", "60054", "commercial"),
    ("Cigna", "62308", "commercial"),
    ("Humana", "61101", "commercial"),
    ("Medicaid of Ohio", "MMISODJFS", "medicaid"),
    ("Anthem", "47198", "blues"),
    ("Kaiser Permanente", "94134", "hmo"),
    ("Molina Healthcare", "20149", "medicaid"),
    ("CareSource", "31114", "medicaid"),
    ("Tricare East", "99726", "tricare"),
    ("Oscar Health", "OSCAR", "commercial"),
    ("Ambetter from Centene", "68069", "commercial"),
    ("Highmark Blue Cross Blue Shield", "54771", "blues"),
    ("Medical Mutual of Ohio", "29076", "commercial"),
    ("WellCare", "14163", "hmo"),
    ("Harvard Pilgrim Health Care", "04271", "commercial"),
    ("Geisinger Health Plan", "75273", "hmo"),
    ("Priority Health", "38217", "hmo"),
    ("Health Net", "95567", "hmo"),
    ("EmblemHealth", "13551", "commercial"),
    ("Blue Shield of California", "94036", "blues"),
    ("UPMC Health Plan", "23281", "commercial"),
    ("Tufts Health Plan", "04298", "commercial"),
    ("Independence Blue Cross", "54704", "blues"),
    ("Premera Blue Cross", "47570", "blues"),
    ("Regence BlueShield", "93221", "blues"),
    ("Amerigroup", "26375", "medicaid"),
    ("Paramount Health Care", "34097", "hmo"),
    ("SelectHealth", "SX107", "commercial"),
    ("HealthPartners", "41124", "hmo"),
    ("Presbyterian Health Plan", "77082", "hmo"),
    ("Sentara Health Plans", "54154", "commercial"),
    ("AvMed", "59274", "hmo"),
    ("Capital Blue Cross", "23045", "blues"),
    ("Fallon Health", "22254", "hmo"),
    ("Quartz Health Solutions", "39180", "hmo"),
    ("Dean Health Plan", "39113", "hmo"),
    ("Scott and White Health Plan", "88030", "hmo"),
)
# The kind of each payer, by canonical name.
PAYER_KINDS: dict[str, str] = {name: kind for name, _, kind in _PAYERS}
_FILING_INDICATOR = {
    "commercial": "CI",
    "blues": "BL",
    "hmo": "HM",
    "medicare": "MB",
    "medicaid": "MC",
    "tricare": "CH",
}
# Zipf exponent of payer volumes: with 25 payers the top three take about half the claims.
_ZIPF_EXPONENT = 1.1
_MEDICARE_PART_B_DEDUCTIBLE_CENTS = 257_00
_MEDICARE_SEQUESTRATION = 0.02

# --- Seasons -------------------------------------------------------------------------------
# Deductibles reset on January 1: the chance that a patient on a plan with a deductible has not
# met it yet, by month of service. It takes most of the allowed amount of early-year claims.
_DEDUCTIBLE_UNMET_BY_MONTH = (
    0.85, 0.70, 0.55, 0.42, 0.32, 0.24, 0.18, 0.13, 0.10, 0.08, 0.06, 0.05,
)  # fmt: skip
_MEDICARE_DEDUCTIBLE_UNMET_BY_MONTH = (
    0.65, 0.40, 0.25, 0.15, 0.10, 0.07, 0.05, 0.04, 0.03, 0.03, 0.02, 0.02,
)  # fmt: skip
# Share of members whose plan's deductible applies to office visits too, by payer kind.
_DEDUCTIBLE_MEMBERS = {
    "commercial": (0.45, 0.70),
    "blues": (0.40, 0.60),
    "hmo": (0.15, 0.30),
    "tricare": (0.20, 0.35),
    "medicare": (1.0, 1.0),
    "medicaid": (0.0, 0.0),
}
# Plans change on January 1: claims serviced in the first weeks are denied for eligibility
# (CO-27) with this peak chance on January 1, falling to none after the 21st.
_ELIGIBILITY_DENIAL_PEAK = {
    "commercial": (0.08, 0.20),
    "blues": (0.08, 0.20),
    "hmo": (0.08, 0.20),
    "tricare": (0.05, 0.10),
    "medicare": (0.03, 0.06),
    "medicaid": (0.04, 0.10),
}
_ELIGIBILITY_DAYS = 21
_ELIGIBILITY_CARC = "27"
# Decisions the payer would make from December 21 to January 4 wait for staff back from the
# holidays: the payer's holiday delay times 0.5–1.5.
_HOLIDAY_DELAY_DAYS = (3.0, 9.0)

# --- Procedures ----------------------------------------------------------------------------
# Code, typical billed dollars, relative volume. Their groups are ingest's (`code_group`).
_PROCEDURES: tuple[tuple[str, float, float], ...] = (
    ("99213", 135, 22),
    ("99214", 195, 16),
    ("99212", 90, 5),
    ("99215", 265, 3),
    ("99203", 170, 4),
    ("99204", 260, 3),
    ("80053", 45, 6),
    ("85025", 30, 6),
    ("80061", 55, 4),
    ("83036", 40, 3),
    ("84443", 50, 2),
    ("71046", 110, 4),
    ("73721", 1200, 1.5),
    ("70450", 850, 1),
    ("76700", 350, 1),
    ("77067", 250, 2),
    ("29881", 4500, 0.6),
    ("45378", 1800, 1),
    ("20610", 210, 1.5),
    ("11721", 120, 1),
    ("17110", 180, 0.8),
    ("97110", 60, 5),
    ("97140", 55, 3),
    ("93000", 60, 2),
    ("90834", 150, 2),
    ("96372", 40, 1.5),
    ("J1100", 15, 1.5),
    ("J3301", 30, 1.5),
    ("J1885", 20, 1),
    ("J0696", 25, 1),
)
_PROCEDURE_GROUPS = tuple(code_group(code) for code, _, _ in _PROCEDURES)
# The procedure-code groups the generator's claims fall in.
CODE_GROUPS: tuple[str, ...] = tuple(dict.fromkeys(_PROCEDURE_GROUPS))
# The share of every payer's claims in each group.
CODE_GROUP_SHARES: dict[str, float] = {
    group: sum(w for (_, _, w), g in zip(_PROCEDURES, _PROCEDURE_GROUPS, strict=True) if g == group)
    / sum(w for _, _, w in _PROCEDURES)
    for group in CODE_GROUPS
}
_BILLED_SIGMA = 0.2

# Denial reasons (CARC) and their baseline weights; some groups lean on some reasons
# (imaging and surgery need prior authorisation, therapy is questioned for necessity).
_DENIAL_CARCS = ("197", "16", "50", "29", "18", "96", "4", "11")
_DENIAL_WEIGHTS = {"197": 14, "16": 24, "50": 14, "29": 5, "18": 12, "96": 10, "4": 9, "11": 12}
_GROUP_DENIAL_TILT: dict[str, dict[str, float]] = {
    "EVALUATION_MANAGEMENT": {"4": 1.5, "18": 1.3},
    "LABORATORY": {"11": 2.0, "50": 1.3},
    "RADIOLOGY": {"197": 3.0, "50": 1.5},
    "SURGERY": {"197": 2.5, "4": 2.0},
    "MEDICINE": {"50": 1.8, "96": 1.3},
    "DRUGS": {"16": 1.5, "96": 1.5, "4": 1.5},
}
# Denial probability relative to the payer's baseline, by group.
_GROUP_DENIAL_MULTIPLIER = {
    "EVALUATION_MANAGEMENT": 0.8,
    "LABORATORY": 1.0,
    "RADIOLOGY": 1.4,
    "SURGERY": 1.3,
    "MEDICINE": 1.2,
    "DRUGS": 1.3,
}
_MAX_DENIAL_PROBABILITY = 0.95

# --- Timing --------------------------------------------------------------------------------
# Relative service volume Monday..Sunday: clinics, with a little weekend urgent care.
_WEEKDAY_VOLUME = (1.15, 1.1, 1.05, 1.05, 0.95, 0.2, 0.05)
# Days from service to submission, 1..10: most claims go out within three days.
_SUBMIT_DELAY_WEIGHTS = (30, 22, 14, 8, 6, 5, 4, 4, 4, 3)
_DECISION_DAYS_SIGMA = 0.55


def payer_names(s: Scenario) -> list[str]:
    """The scenario's canonical payer names, largest volume first."""
    return [name for name, _, _ in _PAYERS[: s.payers]]


# A drift as the generator applies it: first decision day (offset from the scenario start),
# value (factor, days or ratio drop), procedure group or None for all.
_DriftSpan = tuple[int, float, str | None]


@dataclass(frozen=True)
class _Payer:
    index: int
    name: str
    payer_id: str
    kind: str
    tin: str  # federal tax id, 9 digits (BPR/TRN)
    denial_probability: float
    median_decision_days: float
    fee_cents: tuple[int, ...]  # allowed amount per procedure, in _PROCEDURES order
    copay_cents: int
    coinsurance: float
    deductible_members: float  # share of members whose deductible applies to every claim
    eligibility_denial_peak: float
    holiday_delay_days: float
    denial_factors: tuple[_DriftSpan, ...]
    extra_days: tuple[_DriftSpan, ...]
    ratio_drops: tuple[_DriftSpan, ...]


def _drift_spans(
    s: Scenario, payer: str, metric: Metric, value: Callable[[Drift], float]
) -> tuple[_DriftSpan, ...]:
    return tuple(
        ((d.start - s.start).days, value(d), d.code_group)
        for d in s.drifts
        if d.payer == payer and d.metric == metric
    )


def _payer_profiles(s: Scenario) -> list[_Payer]:
    profiles = []
    for index, (name, payer_id, kind) in enumerate(_PAYERS[: s.payers]):
        # One generator per payer: a payer's profile does not change with the payer count.
        rng = random.Random(f"upstream-synthetic:{s.seed}:{name}")
        if kind == "medicare":
            allowed_fraction = rng.uniform(0.42, 0.55)
        elif kind == "medicaid":
            allowed_fraction = rng.uniform(0.40, 0.48)
        else:
            allowed_fraction = rng.uniform(0.55, 0.80)
        fees = tuple(
            round(price * 100 * allowed_fraction * rng.uniform(0.85, 1.15))
            for _, price, _ in _PROCEDURES
        )
        profiles.append(
            _Payer(
                index=index,
                name=name,
                payer_id=payer_id,
                kind=kind,
                tin=f"{rng.randrange(10**8, 10**9)}",
                denial_probability=rng.uniform(0.05, 0.12),
                median_decision_days=rng.uniform(8, 25),
                fee_cents=fees,
                copay_cents=rng.choice((20, 25, 30, 35, 40, 50)) * 100,
                coinsurance=rng.choice((0.1, 0.15, 0.2, 0.2, 0.3)),
                deductible_members=rng.uniform(*_DEDUCTIBLE_MEMBERS[kind]),
                eligibility_denial_peak=rng.uniform(*_ELIGIBILITY_DENIAL_PEAK[kind]),
                holiday_delay_days=rng.uniform(*_HOLIDAY_DELAY_DAYS),
                denial_factors=_drift_spans(s, name, "denial_rate", lambda d: d.factor),
                extra_days=_drift_spans(s, name, "decision_days", lambda d: d.days),
                ratio_drops=_drift_spans(s, name, "payment_ratio", lambda d: d.ratio_drop),
            )
        )
    return profiles


def _cumulative(weights: Iterable[float]) -> list[float]:
    return list(itertools.accumulate(weights))


def _payer_weights(count: int) -> list[float]:
    """Each payer's usual share of the claims, unnormalised, largest first."""
    return [(i + 1) ** -_ZIPF_EXPONENT for i in range(count)]


@dataclass(frozen=True)
class _Regimes:
    """Spans of service days with the same payer volumes: the first day of each (offsets,
    ascending, the first 0) and each span's payer weights."""

    starts: list[int]
    weights: list[list[float]]

    def at(self, day: int) -> list[float]:
        return self.weights[bisect.bisect(self.starts, day) - 1]


def _regimes(s: Scenario) -> _Regimes:
    names = payer_names(s)
    usual = _payer_weights(len(names))
    first = {n.payer: (n.first_service - s.start).days for n in s.new_payers}
    changes = sorted(((v.start - s.start).days, v.payer, v.factor) for v in s.volume_changes)
    starts = sorted({0, *(d for d in (*first.values(), *(c[0] for c in changes)) if d > 0)})
    weights = []
    for start in starts:
        factor = dict.fromkeys(names, 1.0)
        for day, payer, value in changes:
            if day <= start:
                factor[payer] = value
        weights.append(
            [
                0.0 if first.get(name, 0) > start else w * factor[name]
                for name, w in zip(names, usual, strict=True)
            ]
        )
    return _Regimes(starts, weights)


def _day_weights(s: Scenario, regimes: _Regimes) -> list[float]:
    """Each service day's share of the claims, unnormalised: its weekday times its payers'."""
    return [
        _WEEKDAY_VOLUME[(s.start + dt.timedelta(days=i)).weekday()] * sum(regimes.at(i))
        for i in range(s.days)
    ]


def _daily_volumes(s: Scenario, regimes: _Regimes) -> list[int]:
    """Claims per service day, summing exactly to `s.claims`."""
    weights = _day_weights(s, regimes)
    total = sum(weights)
    if not total:
        return [0] * s.days
    bounds = [round(s.claims * c / total) for c in itertools.accumulate(weights)]
    return [b - a for a, b in itertools.pairwise([0, *bounds])]


def usual_monthly_claims(s: Scenario) -> dict[str, float]:
    """Each payer's claims serviced in an average month at its usual volume (once it has
    started, before any volume change)."""
    regimes = _regimes(s)
    total = sum(_day_weights(s, regimes))
    per_weight = s.claims / total if total else 0.0
    month = sum(_WEEKDAY_VOLUME) / 7 * 365.25 / 12
    return {
        name: weight * per_weight * month
        for name, weight in zip(payer_names(s), _payer_weights(s.payers), strict=True)
    }


def _applies(offset: int, start: int, group: str | None, claim_group: str) -> bool:
    return offset >= start and (group is None or group == claim_group)


def _patient_responsibility(
    payer: _Payer, group: str, allowed: int, month: int, u1: float, u2: float, u3: float
) -> list[tuple[str, int]]:
    """PR adjustments (reason, cents) of a paid claim serviced in `month`: deductible,
    coinsurance, copay. May hold zero amounts."""
    if payer.kind == "medicaid":
        return [("3", min(allowed, 300))] if u1 < 0.15 else []
    if payer.kind == "medicare":
        deductible = 0
        if u1 < _MEDICARE_DEDUCTIBLE_UNMET_BY_MONTH[month - 1]:
            deductible = min(allowed, round(_MEDICARE_PART_B_DEDUCTIBLE_CENTS * u2))
        items = [("1", deductible)] if deductible else []
        return [*items, ("2", round(0.20 * (allowed - deductible)))]
    deductible = 0
    if u2 < payer.deductible_members * _DEDUCTIBLE_UNMET_BY_MONTH[month - 1]:
        # Half the time what is left of the deductible exceeds the claim.
        deductible = min(allowed, round(allowed * (0.4 + 1.2 * u3)))
    elif group == "EVALUATION_MANAGEMENT" and u1 < 0.75:
        return [("3", min(allowed, payer.copay_cents))]
    items = [("1", deductible)] if deductible else []
    coinsurance = round(payer.coinsurance * (allowed - deductible))
    return [*items, ("2", coinsurance)] if coinsurance else items


def _eligibility_denial_chance(payer: _Payer, service_date: dt.date) -> float:
    if service_date.month != 1 or service_date.day > _ELIGIBILITY_DAYS:
        return 0.0
    return (
        payer.eligibility_denial_peak
        * (_ELIGIBILITY_DAYS + 1 - service_date.day)
        / _ELIGIBILITY_DAYS
    )


def _in_holidays(day: dt.date) -> bool:
    return (day.month == 12 and day.day >= 21) or (day.month == 1 and day.day <= 4)


def generate_claims(s: Scenario) -> Iterator[ClaimRecord]:
    """The scenario's claims, lazily, in service-date order (then claim id order).

    Every claim draws the same random numbers whatever the drifts, so adding a drift changes
    only the claims it targets. `source_line` is the claim's line in `write_csv` output.
    """
    rng = random.Random(s.seed)
    uniform, gauss = rng.random, rng.gauss
    payers = _payer_profiles(s)
    regimes = _regimes(s)
    regime_cumulative = [_cumulative(weights) for weights in regimes.weights]
    procedure_cumulative = _cumulative(weight for *_, weight in _PROCEDURES)
    submit_cumulative = _cumulative(_SUBMIT_DELAY_WEIGHTS)
    carc_cumulative = {
        group: _cumulative(
            _DENIAL_WEIGHTS[carc] * _GROUP_DENIAL_TILT[group].get(carc, 1.0)
            for carc in _DENIAL_CARCS
        )
        for group in CODE_GROUPS
    }
    dates = [s.start + dt.timedelta(days=i) for i in range(s.days)]
    last = s.days - 1
    holidays = {day for day, date in enumerate(dates) if _in_holidays(date)}
    number = 0
    for day, volume in enumerate(_daily_volumes(s, regimes)):
        service_date = dates[day]
        payer_cumulative = regime_cumulative[bisect.bisect(regimes.starts, day) - 1]
        for _ in range(volume):
            number += 1
            # Fixed draws per claim, in a fixed order (see the docstring). Days are offsets
            # from the scenario start.
            u_payer, u_code, u_submit, u_pending, u_deny, u_carc, u1, u2, u3 = (
                uniform(), uniform(), uniform(), uniform(), uniform(), uniform(), uniform(),
                uniform(), uniform(),
            )  # fmt: skip
            u_eligibility, u_holiday = uniform(), uniform()
            z_billed, z_decision = gauss(), gauss()

            payer = payers[bisect.bisect(payer_cumulative, u_payer * payer_cumulative[-1])]
            procedure = bisect.bisect(procedure_cumulative, u_code * procedure_cumulative[-1])
            code, price, _ = _PROCEDURES[procedure]
            group = _PROCEDURE_GROUPS[procedure]
            billed = max(1, round(price * math.exp(_BILLED_SIGMA * z_billed))) * 100
            submit_day = (
                day + 1 + bisect.bisect(submit_cumulative, u_submit * submit_cumulative[-1])
            )

            raw_days = payer.median_decision_days * math.exp(_DECISION_DAYS_SIGMA * z_decision)
            # A decision_days drift applies to claims the payer would have decision_day after its
            # start, so the slowdown shows from the start date on, not from start + N days.
            would_decide_day = submit_day + max(1, round(raw_days))
            extra = sum(
                n for start, n, g in payer.extra_days if _applies(would_decide_day, start, g, group)
            )
            if would_decide_day in holidays:
                extra += payer.holiday_delay_days * (0.5 + u_holiday)
            decision_day = submit_day + max(1, round(raw_days + extra))

            # Nothing is submit_day after the extract date: late ones are dated on it.
            submitted_date = dates[min(submit_day, last)]
            if decision_day > last or u_pending < s.pending_fraction:
                yield ClaimRecord(
                    source_line=number + 1,
                    claim_id=f"CLM{number:09d}",
                    payer_name=payer.name,
                    payer_id=payer.payer_id,
                    status=ClaimStatus.PENDING,
                    procedure_codes=(code,),
                    service_date=service_date,
                    submitted_date=submitted_date,
                    billed_cents=billed,
                    allowed_cents=None,
                    lines=(ServiceLine(code, billed, 0, None),),
                )
                continue

            p_denial = payer.denial_probability * _GROUP_DENIAL_MULTIPLIER[group]
            for start, factor, g in payer.denial_factors:
                if _applies(decision_day, start, g, group):
                    p_denial *= factor
            ineligible = u_eligibility < _eligibility_denial_chance(payer, service_date)
            denied = ineligible or u_deny < min(p_denial, _MAX_DENIAL_PROBABILITY)
            if denied:
                cumulative = carc_cumulative[group]
                carc = (
                    _ELIGIBILITY_CARC
                    if ineligible
                    else _DENIAL_CARCS[bisect.bisect(cumulative, u_carc * cumulative[-1])]
                )
                allowed = paid = responsibility = 0
                adjustments = [Adjustment("CO", carc, billed)]
            else:
                allowed = min(billed, payer.fee_cents[procedure])
                adjustments = [Adjustment("CO", "45", billed - allowed)] if billed > allowed else []
                patient_items = [
                    (reason, cents)
                    for reason, cents in _patient_responsibility(
                        payer, group, allowed, service_date.month, u1, u2, u3
                    )
                    if cents
                ]
                responsibility = sum(cents for _, cents in patient_items)
                paid = allowed - responsibility
                if payer.kind == "medicare":
                    # The 2 % sequestration cut shows on every Medicare payment.
                    sequestration = round(paid * _MEDICARE_SEQUESTRATION)
                    if sequestration:
                        adjustments.append(Adjustment("CO", "253", sequestration))
                        paid -= sequestration
                kept = 1.0
                for start, ratio_drop, g in payer.ratio_drops:
                    if _applies(decision_day, start, g, group):
                        kept *= 1 - ratio_drop
                # A paid claim stays paid (a zero payment would read as a denial).
                reduction = paid - max(1, round(paid * kept)) if paid else 0
                if reduction > 0:
                    # Medicare pays less through a regulatory adjustment, others a discount.
                    reduction_reason = "237" if payer.kind == "medicare" else "131"
                    adjustments.append(Adjustment("CO", reduction_reason, reduction))
                    paid -= reduction
                adjustments += [Adjustment("PR", reason, cents) for reason, cents in patient_items]
            claim = ClaimRecord(
                source_line=number + 1,
                claim_id=f"CLM{number:09d}",
                payer_name=payer.name,
                payer_id=payer.payer_id,
                status=ClaimStatus.DENIED if denied else ClaimStatus.PAID,
                procedure_codes=(code,),
                service_date=service_date,
                submitted_date=submitted_date,
                decision_date=dates[decision_day],
                billed_cents=billed,
                allowed_cents=allowed,
                paid_cents=paid,
                patient_responsibility_cents=responsibility,
                adjustments=tuple(adjustments),
                lines=(ServiceLine(code, billed, paid, allowed),),
                payer_claim_control_number=f"{payer.index + 1:02d}{decision_day:05d}{number:09d}",
            )
            # Denied or not by ingest's rules, as every parsed claim is.
            classify(claim)
            yield claim


# --- Writers -------------------------------------------------------------------------------


def _money(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


@contextmanager
def _text_out(out: TextIO | Path) -> Iterator[TextIO]:
    if isinstance(out, Path):
        with out.open("w", encoding="utf-8", newline="") as stream:
            yield stream
    else:
        yield out


def write_csv(s: Scenario, out: TextIO | Path) -> int:
    """Write the scenario's claims as CSV with the canonical columns; return rows written.

    Amounts have two decimals; `carc_codes` lists every adjustment as `GROUP-REASON`,
    `;`-separated. Pending claims have no decision date and no allowed amount.
    """
    rows = 0
    with _text_out(out) as stream:
        writer = csv.writer(stream, lineterminator="\n")
        writer.writerow(CSV_HEADER)
        for claim in generate_claims(s):
            decision = claim.decision_date
            allowed = claim.allowed_cents
            writer.writerow(
                (
                    claim.claim_id,
                    claim.payer_name,
                    claim.procedure_codes[0],
                    claim.service_date.isoformat() if claim.service_date else "",
                    claim.submitted_date.isoformat() if claim.submitted_date else "",
                    decision.isoformat() if decision else "",
                    claim.status.value,
                    _money(claim.billed_cents),
                    "" if allowed is None else _money(allowed),
                    _money(claim.paid_cents),
                    _money(claim.patient_responsibility_cents),
                    ";".join(f"{a.group_code}-{a.reason_code}" for a in claim.adjustments),
                )
            )
            rows += 1
    return rows


def _segment(*elements: str) -> str:
    # X12 drops trailing empty elements.
    fields = list(elements)
    while fields and not fields[-1]:
        fields.pop()
    return "*".join(fields) + "~\n"


def _x12_date(day: dt.date) -> str:
    return day.strftime("%Y%m%d")


# A rendered claim loop: its text, segment count and paid cents.
_Loop = tuple[str, int, int]


@dataclass
class _RemittanceBuffer:
    """Rendered claim loops waiting for their transaction, by decision date and payer."""

    by_date: dict[dt.date, dict[int, list[_Loop]]] = field(default_factory=dict)

    def add(self, decision: dt.date, payer: int, loop: str, segments: int, paid: int) -> None:
        self.by_date.setdefault(decision, {}).setdefault(payer, []).append((loop, segments, paid))

    def pop_through(self, last: dt.date | None) -> Iterator[tuple[dt.date, int, list[_Loop]]]:
        """Take out every (date, payer) group with a date up to `last` (None = all)."""
        for day in sorted(d for d in self.by_date if last is None or d <= last):
            groups = self.by_date.pop(day)
            for payer in sorted(groups):
                yield day, payer, groups[payer]


def _claim_loop(claim: ClaimRecord, filing_indicator: str) -> tuple[str, int]:
    """Loop 2100 (and its one 2110 service line) of a decided claim, and its segment count."""
    assert claim.decision_date is not None and claim.service_date is not None
    assert claim.submitted_date is not None
    segments = [
        _segment(
            "CLP",
            claim.claim_id,
            "4" if claim.status is ClaimStatus.DENIED else "1",
            _money(claim.billed_cents),
            _money(claim.paid_cents),
            _money(claim.patient_responsibility_cents),
            filing_indicator,
            claim.payer_claim_control_number,
            "11",  # facility code: office
            "1",  # claim frequency: original
        )
    ]
    for group_code, adjustments in itertools.groupby(claim.adjustments, lambda a: a.group_code):
        triplets = [(a.reason_code, _money(a.amount_cents), "") for a in adjustments]
        segments.append(_segment("CAS", group_code, *itertools.chain(*triplets)))
    line = claim.lines[0]
    segments += [
        # An obviously fake patient: Upstream's parser must drop NM1*QC.
        _segment("NM1", "QC", "1", "SYNTHETIC", "PATIENT", "", "", "", "MI", f"ZZ{claim.claim_id}"),
        _segment("DTM", "050", _x12_date(claim.submitted_date)),
        _segment(
            "SVC", f"HC:{line.procedure_code}", _money(line.billed_cents), _money(line.paid_cents)
        ),
        _segment("DTM", "472", _x12_date(claim.service_date)),
        _segment("AMT", "B6", _money(line.allowed_cents or 0)),
    ]
    return "".join(segments), len(segments)


def write_835(s: Scenario, out: TextIO | Path, claims_per_transaction: int = 500) -> int:
    """Write the scenario's decided claims as an X12 835 (005010X221A1); return claims written.

    One interchange and one functional group; one transaction (ST/SE, one payment) per payer
    and decision date, split every `claims_per_transaction` claims. Pending claims have no
    remittance yet and are left out. Each segment ends with `~` and a newline.
    """
    if claims_per_transaction < 1:
        raise ValueError("claims_per_transaction must be ≥ 1")
    payers = _payer_profiles(s)
    index_of = {p.name: p.index for p in payers}
    provider = f"{s.customer.upper()} MEDICAL GROUP"
    provider_npi, provider_tin = "1234567893", "341234567"
    interchange_date = s.end
    sender, receiver = "UPSTREAMSYNTH", s.customer.upper()[:15]
    control = 1
    transactions = 0
    claims_written = 0
    buffer = _RemittanceBuffer()

    def transaction(stream: TextIO, day: dt.date, payer: _Payer, loops: list[_Loop]) -> None:
        nonlocal transactions
        transactions += 1
        number = f"{transactions:04d}"
        paid = sum(p for _, _, p in loops)
        date = _x12_date(day)
        if paid:
            bpr = _segment(
                "BPR", "I", _money(paid), "C", "ACH", "CCP", "01", "123456780", "DA",
                f"{payer.index + 1:09d}", f"1{payer.tin}", "", "01", "987654320", "DA",
                "8765432109", date,
            )  # fmt: skip
        else:
            bpr = _segment("BPR", "H", "0.00", "C", "NON", *[""] * 11, date)
        trace = f"{day.toordinal()}{payer.index + 1:02d}{transactions:06d}"
        header = [
            _segment("ST", "835", number, "005010X221A1"),
            bpr,
            _segment("TRN", "1", trace, f"1{payer.tin}"),
            _segment("DTM", "405", date),
            _segment("N1", "PR", payer.name, "XV", payer.payer_id),
            _segment("N3", f"PO BOX {1000 + payer.index * 37}"),
            _segment("N4", "DALLAS", "TX", "75201"),
            _segment("PER", "BL", "EDI SUPPORT", "TE", "8005550100"),
            _segment("N1", "PE", provider, "XX", provider_npi),
            _segment("REF", "TJ", provider_tin),
            _segment("LX", "1"),
        ]
        stream.writelines(header)
        stream.writelines(loop for loop, _, _ in loops)
        count = len(header) + sum(n for _, n, _ in loops) + 1
        stream.write(_segment("SE", str(count), number))

    def flush(stream: TextIO, last: dt.date | None) -> None:
        for day, payer_index, loops in buffer.pop_through(last):
            for chunk in range(0, len(loops), claims_per_transaction):
                batch = loops[chunk : chunk + claims_per_transaction]
                transaction(stream, day, payers[payer_index], batch)

    with _text_out(out) as stream:
        stamp, date = interchange_date.strftime("%y%m%d"), _x12_date(interchange_date)
        isa = _segment(
            "ISA", "00", " " * 10, "00", " " * 10, "ZZ", f"{sender:<15}", "ZZ", f"{receiver:<15}",
            stamp, "1200", "^", "00501", f"{control:09d}", "0", "T", ":",
        )  # fmt: skip
        gs = _segment("GS", "HP", sender, receiver, date, "1200", str(control), "X", "005010X221A1")
        stream.write(isa + gs)
        current_day: dt.date | None = None
        for claim in generate_claims(s):
            if claim.service_date != current_day:
                # Every later claim is decided after its service date, so decisions up to the
                # new service date are complete.
                current_day = claim.service_date
                flush(stream, current_day)
            if claim.decision_date is None:
                continue
            payer = payers[index_of[claim.payer_name]]
            loop, segments = _claim_loop(claim, _FILING_INDICATOR[payer.kind])
            buffer.add(claim.decision_date, payer.index, loop, segments, claim.paid_cents)
            claims_written += 1
        flush(stream, None)
        stream.write(_segment("GE", str(transactions), str(control)))
        stream.write(_segment("IEA", "1", f"{control:09d}"))
    return claims_written


# --- Command line --------------------------------------------------------------------------


_DRIFT_KEYS = {"payer", "metric", "start", "factor", "days", "ratio_drop", "code_group"}


def parse_drift(text: str) -> Drift:
    """A drift from `payer=Aetna,metric=denial_rate,factor=2,start=2025-09-01` (also `days`,
    `ratio_drop`, `code_group`)."""
    fields: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, equals, value = part.partition("=")
        if not equals or key.strip() not in _DRIFT_KEYS:
            raise ValueError(f"{part!r} is not one of {', '.join(sorted(_DRIFT_KEYS))} = value")
        fields[key.strip()] = value.strip()
    missing = {"payer", "metric", "start"} - set(fields)
    if missing:
        raise ValueError(f"drift {text!r} lacks {', '.join(sorted(missing))}")
    return Drift(
        payer=fields["payer"],
        start=dt.date.fromisoformat(fields["start"]),
        metric=cast(Metric, fields["metric"]),  # Drift checks it
        factor=float(fields.get("factor", 1.0)),
        days=float(fields.get("days", 0.0)),
        ratio_drop=float(fields.get("ratio_drop", 0.0)),
        code_group=fields.get("code_group"),
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.synthetic",
        description="Write synthetic claims (CSV or X12 835) with injected payer drift.",
    )
    parser.add_argument("--customer", default=Scenario.customer)
    parser.add_argument("--start", type=dt.date.fromisoformat, default=Scenario.start)
    parser.add_argument("--days", type=int, default=Scenario.days)
    parser.add_argument("--claims", type=int, default=Scenario.claims)
    parser.add_argument("--payers", type=int, default=Scenario.payers)
    parser.add_argument("--seed", type=int, default=Scenario.seed)
    parser.add_argument("--pending-fraction", type=float, default=Scenario.pending_fraction)
    parser.add_argument("--format", choices=("csv", "835"), default="csv")
    parser.add_argument("--claims-per-transaction", type=int, default=500, help="835 only")
    parser.add_argument("--out", type=Path, required=True, help="file to write")
    parser.add_argument(
        "--drift",
        action="append",
        default=[],
        metavar="SPEC",
        help='e.g. "payer=Aetna,metric=denial_rate,factor=2,start=2025-09-01"; repeatable',
    )
    args = parser.parse_args(argv)
    if args.claims_per_transaction < 1:
        parser.error("--claims-per-transaction must be ≥ 1")
    try:
        scenario = Scenario(
            customer=args.customer,
            start=args.start,
            days=args.days,
            claims=args.claims,
            payers=args.payers,
            seed=args.seed,
            pending_fraction=args.pending_fraction,
            drifts=tuple(parse_drift(spec) for spec in args.drift),
        )
    except ValueError as error:
        parser.error(str(error))
    if args.format == "csv":
        written = write_csv(scenario, args.out)
        print(f"wrote {written} claims (CSV rows) to {args.out}")
    else:
        written = write_835(scenario, args.out, args.claims_per_transaction)
        print(f"wrote {written} decided claims (835, pending claims left out) to {args.out}")
    print(
        f"service dates {scenario.start} .. {scenario.end}, seed {scenario.seed}, "
        f"{scenario.payers} payers: {', '.join(payer_names(scenario))}"
    )
    for drift in scenario.drifts:
        print(f"drift: {drift}")
    if not scenario.drifts:
        print("no drift injected")


if __name__ == "__main__":
    main()
