"""A customer's detection settings: the defaults, the limits a change must keep, storage."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.drift.config import METRICS, DetectionConfig, violations

DEFAULTS = DetectionConfig()

# field → (lowest, highest) as documented on DriftConfig; both ends are allowed.
BOUNDS = {
    "current_window_days": (7, 365),
    "baseline_window_days": (14, 730),
    "denial_rate_min_increase_points": (0, 100),
    "denial_rate_min_ratio": (1, 100),
    "decision_days_min_increase": (0, 365),
    "decision_days_min_increase_fraction": (0, 10),
    "payment_ratio_min_drop": (0, 1),
    "min_current_claims": (1, 100_000),
    "min_baseline_claims": (1, 100_000),
    "false_discovery_rate": (0.001, 0.5),
}


def with_value(name: str, value: float) -> DetectionConfig:
    """The defaults with one field changed, windows kept consistent with each other."""
    changes: dict[str, object] = {name: value}
    if name == "current_window_days":
        changes["baseline_window_days"] = 730
    if name == "baseline_window_days":
        changes["current_window_days"] = 7
    return dataclasses.replace(DEFAULTS, **changes)  # type: ignore[arg-type]


def test_the_defaults() -> None:
    assert DEFAULTS.current_window_days == 30
    assert DEFAULTS.baseline_window_days == 180
    assert DEFAULTS.denial_rate_min_increase_points == 5.0
    assert DEFAULTS.denial_rate_min_ratio == 1.25
    assert DEFAULTS.decision_days_min_increase == 3.0
    assert DEFAULTS.decision_days_min_increase_fraction == 0.20
    assert DEFAULTS.payment_ratio_min_drop == 0.05
    assert DEFAULTS.min_current_claims == 50
    assert DEFAULTS.min_baseline_claims == 150
    assert DEFAULTS.false_discovery_rate == 0.10
    assert DEFAULTS.enabled_metrics == (
        "DENIAL_RATE",
        "DECISION_DAYS",
        "PAYMENT_RATIO",
        "DENIAL_REASON_MIX",
    )


def test_the_defaults_are_valid() -> None:
    assert violations(DEFAULTS) == []


@pytest.mark.parametrize(("name", "value"), [(n, v) for n, ends in BOUNDS.items() for v in ends])
def test_both_ends_of_every_range_are_allowed(name: str, value: float) -> None:
    assert violations(with_value(name, value)) == []


@pytest.mark.parametrize(
    ("name", "value", "description"),
    [
        ("current_window_days", 6, "must be between 7 and 365, got 6"),
        ("current_window_days", 366, "must be between 7 and 365, got 366"),
        ("baseline_window_days", 13, "must be between 14 and 730, got 13"),
        ("baseline_window_days", 731, "must be between 14 and 730, got 731"),
        ("denial_rate_min_increase_points", -0.5, "must be between 0 and 100, got -0.5"),
        ("denial_rate_min_ratio", 0.99, "must be between 1 and 100, got 0.99"),
        ("decision_days_min_increase", 365.5, "must be between 0 and 365, got 365.5"),
        ("decision_days_min_increase_fraction", 10.01, "must be between 0 and 10, got 10.01"),
        ("payment_ratio_min_drop", 1.01, "must be between 0 and 1, got 1.01"),
        ("min_current_claims", 0, "must be between 1 and 100000, got 0"),
        ("min_baseline_claims", 100_001, "must be between 1 and 100000, got 100001"),
        ("false_discovery_rate", 0.0009, "must be between 0.001 and 0.5, got 0.0009"),
        ("false_discovery_rate", 0.51, "must be between 0.001 and 0.5, got 0.51"),
    ],
)
def test_a_value_just_outside_its_range_is_reported(
    name: str, value: float, description: str
) -> None:
    assert violations(with_value(name, value)) == [(name, description)]


@pytest.mark.parametrize("name", list(BOUNDS))
def test_nan_is_outside_every_range(name: str) -> None:
    problems = violations(dataclasses.replace(DEFAULTS, **{name: math.nan}))  # type: ignore[arg-type]
    assert (name, "must be between {:g} and {:g}, got nan".format(*BOUNDS[name])) in problems


def test_a_baseline_shorter_than_the_current_window_is_reported() -> None:
    config = dataclasses.replace(DEFAULTS, current_window_days=60, baseline_window_days=30)
    assert violations(config) == [("baseline_window_days", "must be at least current_window_days")]


def test_a_baseline_as_long_as_the_current_window_is_allowed() -> None:
    config = dataclasses.replace(DEFAULTS, current_window_days=60, baseline_window_days=60)
    assert violations(config) == []


def test_every_problem_is_reported_at_once() -> None:
    config = dataclasses.replace(
        DEFAULTS, current_window_days=400, min_current_claims=0, enabled_metrics=()
    )
    assert [field for field, _ in violations(config)] == [
        "current_window_days",
        "min_current_claims",
        "baseline_window_days",
        "enabled_metrics",
    ]


@pytest.mark.parametrize(
    ("metrics", "expected"),
    [
        ((), [("enabled_metrics", "must name at least one metric")]),
        (("DENIAL_RATE", "DENIAL_RATE"), [("enabled_metrics", "must not repeat a metric")]),
        (("DENIAL_RATE", "CHURN"), [("enabled_metrics", "unknown metric 'CHURN'")]),
        (("denial_rate",), [("enabled_metrics", "unknown metric 'denial_rate'")]),
        (
            ("CHURN", "CHURN"),
            [
                ("enabled_metrics", "must not repeat a metric"),
                ("enabled_metrics", "unknown metric 'CHURN'"),
            ],
        ),
        (("PAYMENT_RATIO",), []),
        (METRICS, []),
    ],
)
def test_enabled_metrics_rules(metrics: tuple[str, ...], expected: list[tuple[str, str]]) -> None:
    assert violations(dataclasses.replace(DEFAULTS, enabled_metrics=metrics)) == expected


def test_stored_json_is_plain_json_with_a_list_of_metrics() -> None:
    stored = DEFAULTS.to_json()
    assert stored["enabled_metrics"] == list(METRICS)
    assert json.loads(json.dumps(stored)) == stored


def test_missing_stored_fields_take_their_defaults_and_unknown_ones_are_ignored() -> None:
    stored = {"current_window_days": 14, "retired_setting": True}
    assert DetectionConfig.from_json(stored) == dataclasses.replace(
        DEFAULTS, current_window_days=14
    )


_VALID_CONFIGS = st.integers(7, 365).flatmap(
    lambda current: st.builds(
        DetectionConfig,
        current_window_days=st.just(current),
        baseline_window_days=st.integers(max(14, current), 730),
        denial_rate_min_increase_points=st.floats(0, 100),
        denial_rate_min_ratio=st.floats(1, 100),
        decision_days_min_increase=st.floats(0, 365),
        decision_days_min_increase_fraction=st.floats(0, 10),
        payment_ratio_min_drop=st.floats(0, 1),
        min_current_claims=st.integers(1, 100_000),
        min_baseline_claims=st.integers(1, 100_000),
        false_discovery_rate=st.floats(0.001, 0.5),
        enabled_metrics=st.lists(st.sampled_from(METRICS), min_size=1, unique=True).map(tuple),
    )
)


@settings(max_examples=200, deadline=None)
@given(config=_VALID_CONFIGS)
def test_a_valid_config_survives_storage_unchanged(config: DetectionConfig) -> None:
    assert violations(config) == []
    stored = json.loads(json.dumps(config.to_json()))
    assert DetectionConfig.from_json(stored) == config
