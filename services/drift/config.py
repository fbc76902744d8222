"""Detection settings of one customer: defaults, and the rules a change must satisfy."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

METRICS = ("DENIAL_RATE", "DECISION_DAYS", "PAYMENT_RATIO", "DENIAL_REASON_MIX")


@dataclass(frozen=True)
class DetectionConfig:
    current_window_days: int = 30
    baseline_window_days: int = 180
    denial_rate_min_increase_points: float = 5.0
    denial_rate_min_ratio: float = 1.25
    decision_days_min_increase: float = 3.0
    decision_days_min_increase_fraction: float = 0.20
    payment_ratio_min_drop: float = 0.05
    min_current_claims: int = 50
    min_baseline_claims: int = 150
    false_discovery_rate: float = 0.10
    enabled_metrics: tuple[str, ...] = METRICS

    def to_json(self) -> dict[str, Any]:
        stored = asdict(self)
        stored["enabled_metrics"] = list(self.enabled_metrics)
        return stored

    @classmethod
    def from_json(cls, stored: dict[str, Any]) -> DetectionConfig:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in stored.items() if k in known}
        if "enabled_metrics" in values:
            values["enabled_metrics"] = tuple(values["enabled_metrics"])
        return cls(**values)


# field → (lowest, highest) allowed, inclusive.
_RANGES: dict[str, tuple[float, float]] = {
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


def violations(config: DetectionConfig) -> list[tuple[str, str]]:
    """Every problem of a config as (field, description); empty when it is valid."""
    problems = []
    for name, (lowest, highest) in _RANGES.items():
        value = getattr(config, name)
        if not lowest <= value <= highest:
            problems.append((name, f"must be between {lowest:g} and {highest:g}, got {value:g}"))
    if config.baseline_window_days < config.current_window_days:
        problems.append(("baseline_window_days", "must be at least current_window_days"))
    if not config.enabled_metrics:
        problems.append(("enabled_metrics", "must name at least one metric"))
    elif len(set(config.enabled_metrics)) != len(config.enabled_metrics):
        problems.append(("enabled_metrics", "must not repeat a metric"))
    unknown = [m for m in config.enabled_metrics if m not in METRICS]
    if unknown:
        problems.append(("enabled_metrics", f"unknown metric {unknown[0]!r}"))
    return problems
