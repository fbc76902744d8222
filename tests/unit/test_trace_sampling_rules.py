"""Which spans are recorded: under `parentbased_rate_limited`, every trace while fewer than
the rate begin, that many a second when more do, and every span that is not a trace's first
follows its parent; with no exporter, none begun here (their ids still made)."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import Decision
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from runtime.telemetry import RateLimitedSampler, sampler_from_env, sdk_provider


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def kept(sampler: RateLimitedSampler, traces: int) -> int:
    return sum(
        sampler.should_sample(None, trace_id, "GET /v1/x").decision is Decision.RECORD_AND_SAMPLE
        for trace_id in range(1, traces + 1)
    )


def test_a_burst_keeps_one_seconds_worth_and_then_the_rate() -> None:
    clock = Clock()
    sampler = RateLimitedSampler(20, clock)

    assert kept(sampler, 100) == 20
    clock.now += 0.5
    assert kept(sampler, 100) == 10
    # Ten seconds at 100 traces a second: 20 of each second's 100.
    per_tick = []
    for _ in range(100):
        clock.now += 0.1
        per_tick.append(kept(sampler, 10))
    assert sum(per_tick) == 200


def test_traffic_under_the_rate_keeps_every_trace() -> None:
    clock = Clock()
    sampler = RateLimitedSampler(20, clock)
    for _ in range(300):  # 10 traces a second for 30 s
        clock.now += 0.1
        assert kept(sampler, 1) == 1


def test_a_quiet_spell_does_not_save_up_more_than_one_second() -> None:
    clock = Clock()
    sampler = RateLimitedSampler(5, clock)
    kept(sampler, 5)
    clock.now += 3600
    assert kept(sampler, 50) == 5


def test_spans_within_a_trace_follow_their_parent_and_spend_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_rate_limited")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "1")
    sampler = sampler_from_env()
    assert sampler is not None and "RateLimited{1/s}" in sampler.get_description()
    tracer = TracerProvider(sampler=sampler).get_tracer("test")

    def child_of(flags: TraceFlags) -> bool:
        parent = SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=flags)
        context = trace.set_span_in_context(NonRecordingSpan(parent))
        return tracer.start_span("call", context=context).is_recording()

    assert tracer.start_span("first").is_recording()
    assert [child_of(TraceFlags(TraceFlags.SAMPLED)) for _ in range(5)] == [True] * 5
    assert [child_of(TraceFlags(TraceFlags.DEFAULT)) for _ in range(5)] == [False] * 5
    # The one trace this second was the first one's.
    assert not tracer.start_span("second").is_recording()


@pytest.mark.parametrize("argument", ["", "lots", "0", "-3"])
def test_a_rate_that_is_not_a_positive_number_is_refused_by_name(
    monkeypatch: pytest.MonkeyPatch, argument: str
) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_rate_limited")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", argument)
    with pytest.raises(ValueError, match="parentbased_rate_limited"):
        sampler_from_env()


def test_the_standard_samplers_are_left_to_the_sdk(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
    assert sampler_from_env() is None


def test_with_no_exporter_spans_keep_their_ids_but_only_a_callers_kept_trace_is_recorded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_always_on")  # nothing to keep
    tracer = sdk_provider("upstream-test", "none").get_tracer("test")

    begun_here = tracer.start_span("GET /v1/x")
    within = tracer.start_span("call", context=trace.set_span_in_context(begun_here))
    kept = SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))
    of_a_kept_trace = tracer.start_span(
        "served", context=trace.set_span_in_context(NonRecordingSpan(kept))
    )

    ids = begun_here.get_span_context()
    assert ids.is_valid and not ids.trace_flags.sampled and not begun_here.is_recording()
    assert within.get_span_context().trace_id == ids.trace_id and not within.is_recording()
    assert of_a_kept_trace.is_recording()
    assert of_a_kept_trace.get_span_context().trace_id == 0xABC
