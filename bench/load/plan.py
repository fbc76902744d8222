"""What one load run does: the profile, the rates and durations, and where the system is.

The harness writes the plan as JSON beside the run's results and hands it to locust
(`--plan`); the locustfile and the analysis read the same stages from it.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from devtools import demo
from runtime.settings import DEFAULT_GRPC_PORTS

Profile = Literal["fixed", "steps"]
PROFILES: tuple[Profile, ...] = ("fixed", "steps")


@dataclass(frozen=True)
class Stage:
    """A stretch of the run at one target rate: seconds from the start of the run. The
    first `settle` seconds of it are not measured (users still arriving, caches warming)."""

    start: float
    end: float
    rate: float
    settle: float

    @property
    def measured_from(self) -> float:
        return self.start + self.settle


@dataclass(frozen=True)
class Plan:
    """Defaults are those of `make load` against `make run`'s addresses."""

    profile: Profile = "fixed"
    # fixed: the interactive users' target, requests a second, held for `seconds` after a
    # warm-up of `warmup_seconds`.
    rate: float = 20.0
    seconds: float = 180.0
    warmup_seconds: float = 15.0
    # steps: from `start_rate`, `step_rate` more every `step_seconds`, up to `max_rate`;
    # the run stops after the first step whose p99 exceeds `p99_target_ms` or that had
    # an error. Each step's first `settle_seconds` are not measured.
    start_rate: float = 5.0
    step_rate: float = 5.0
    step_seconds: float = 30.0
    max_rate: float = 200.0
    settle_seconds: float = 5.0
    p99_target_ms: float = 1000.0

    customer: str = demo.CUSTOMER
    gateway_url: str = "http://127.0.0.1:8080"
    targets: dict[str, str] = field(
        default_factory=lambda: {s: f"127.0.0.1:{p}" for s, p in DEFAULT_GRPC_PORTS.items()}
    )
    # The last day of the customer's claims: reports and claim filters ask for the weeks
    # before it.
    period_end: str = demo.SCENARIO.end.isoformat()
    # A CSV of synthetic claims uploaded every `upload_every_seconds` from
    # `upload_first_seconds` on, each time with claim ids of its own; none when empty.
    upload_file: str = ""
    upload_every_seconds: float = 120.0
    upload_first_seconds: float = 20.0
    # A report built and downloaded every `report_every_seconds`.
    report_every_seconds: float = 60.0
    # The webhook (resource name) that admins send test deliveries to; none when empty.
    webhook: str = ""
    # Where the locust process writes `requests.csv` and `run.json`.
    output: str = ".local/load/manual"

    def stages(self) -> list[Stage]:
        if self.profile == "fixed":
            return [Stage(0.0, self.warmup_seconds + self.seconds, self.rate, self.warmup_seconds)]
        stages = []
        rate, start = self.start_rate, 0.0
        while rate <= self.max_rate + 1e-9:
            stages.append(Stage(start, start + self.step_seconds, rate, self.settle_seconds))
            rate += self.step_rate
            start += self.step_seconds
        return stages

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(dataclasses.asdict(self), indent=2) + "\n")

    @classmethod
    def read(cls, path: Path) -> Plan:
        return cls(**json.loads(path.read_text()))
