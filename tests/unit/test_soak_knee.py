"""`make soak` holds half a knee it can find on a fresh clone: the newest step run of this
machine's, else the step run kept as the baseline in the repository."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from bench.load import harness, soak


@pytest.fixture
def places(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    runs, baselines = tmp_path / "load", tmp_path / "baselines"
    runs.mkdir()
    baselines.mkdir()
    monkeypatch.setattr(harness, "LOAD_DIR", runs)
    monkeypatch.setattr(harness, "BASELINE_DIR", baselines)
    return runs, baselines


def _step_run(folder: Path, knee: float | None) -> None:
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text(json.dumps({"profile": "steps", "knee": knee}))


def test_without_a_step_run_the_baseline_s_knee_is_used(places: tuple[Path, Path]) -> None:
    _, baselines = places
    (baselines / "steps.json").write_text(json.dumps({"profile": "steps", "knee": 85.0}))

    assert soak._known_knee() == (85.0, baselines / "steps.json")


def test_the_newest_step_run_here_comes_before_the_baseline(places: tuple[Path, Path]) -> None:
    runs, baselines = places
    (baselines / "steps.json").write_text(json.dumps({"profile": "steps", "knee": 85.0}))
    _step_run(runs / "steps-20261201-100000", 40.0)
    _step_run(runs / "steps-20261202-100000", 55.0)
    # A step run that found no knee (its first step already failed) says nothing.
    _step_run(runs / "steps-20261203-100000", None)

    assert soak._known_knee() == (85.0, baselines / "steps.json")
    (runs / "steps-20261203-100000" / "summary.json").unlink()
    assert soak._known_knee() == (55.0, runs / "steps-20261202-100000" / "summary.json")


def test_no_knee_anywhere_stops_before_starting_anything(
    places: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    parser = argparse.ArgumentParser()
    soak.add_arguments(parser)

    assert soak.main(parser.parse_args([])) == 2
    assert "make load PROFILE=steps" in capsys.readouterr().out


def _samples(values: dict[str, list[float]], every: float = 5.0) -> soak.Samples:
    samples = soak.Samples()
    for i in range(len(next(iter(values.values())))):
        samples.add(i * every, {name: series[i] for name, series in values.items()})
    return samples


def test_memory_is_judged_against_fresh_processes_doing_the_same_work() -> None:
    """A process whose memory rose with the data (as much as fresh processes take over that
    data) is level with them; one that kept more than they need is above them."""
    soaked = _samples(
        {
            "drift RSS MB": [200.0] * 30 + [215.0] * 30 + [230.0] * 40,
            "reports RSS MB": [250.0] * 30 + [300.0] * 30 + [380.0] * 40,
            "postgres PSS MB": [300.0] * 100,
            "database connections": [30.0] * 100,
        }
    )
    fresh = _samples(
        {"drift RSS MB": [190.0, 229.0, 232.0], "reports RSS MB": [257.0, 300.0, 331.0]}
    )
    table = soak.figures(soaked, 120.0, fresh)
    rows = {
        line.split("|")[1].strip(): line for line in table.splitlines() if line.startswith("| ")
    }
    assert "OUTSIDE ±10 %" in rows["drift RSS MB"]
    assert "level with fresh processes (230.0 against 232.0, -0.9%)" in rows["drift RSS MB"]
    assert "ABOVE fresh processes (380.0 against 331.0, +14.8%)" in rows["reports RSS MB"]
    assert "level; quarter means 30.0 → 30.0" in rows["database connections"]
    # PostgreSQL holds the data and is not restarted: no fresh reference for it.
    assert "fresh" not in rows["postgres PSS MB"]
    assert "fresh processes: 3 samples over 10 s" in table
