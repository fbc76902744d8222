"""A large answer is printed as JSON once and sent as printed while it stays the same; any
change to it is printed anew, small answers always are, and what is kept stays within its
bound."""

from __future__ import annotations

import json

from google.protobuf import json_format
from prometheus_client import REGISTRY

from gateway.transcoding import PrintedAnswers
from upstream.drift.v1 import drift_service_pb2, resources_pb2


def summaries(payers: int, claims: int = 120) -> drift_service_pb2.ListPayerSummariesResponse:
    return drift_service_pb2.ListPayerSummariesResponse(
        payer_summaries=[
            resources_pb2.PayerSummary(
                name=f"customers/acme/payerSummaries/p{n}",
                payer=f"Payer {n}",
                weekly_series=[
                    resources_pb2.WeeklyPoint(claims=claims + week, denial_rate=0.05 * n)
                    for week in range(26)
                ],
            )
            for n in range(payers)
        ]
    )


def printed_count(source: str) -> float:
    return REGISTRY.get_sample_value("gateway_json_answers_total", {"source": source}) or 0.0


def test_an_unchanged_answer_is_sent_as_printed_and_a_changed_one_printed_anew() -> None:
    answers = PrintedAnswers(max_bytes=1 << 20)
    page = summaries(20)
    kept_before = printed_count("kept")

    first = answers.json(page)
    again = answers.json(summaries(20))  # an equal message, made again
    changed = summaries(20)
    changed.payer_summaries[7].weekly_series[3].claims += 1
    other = answers.json(changed)

    expected = json_format.MessageToDict(page, always_print_fields_with_no_presence=True)
    assert json.loads(first) == expected
    assert again is first and printed_count("kept") == kept_before + 1
    assert json.loads(other)["payerSummaries"][7]["weeklySeries"][3]["claims"] == "124"
    assert other != first


def test_small_answers_are_printed_every_time() -> None:
    answers = PrintedAnswers(max_bytes=1 << 20)
    small = summaries(1, claims=1)
    small.payer_summaries[0].ClearField("weekly_series")
    assert answers.json(small) is not answers.json(small)
    assert json.loads(answers.json(small))["payerSummaries"][0]["payer"] == "Payer 0"


def test_what_is_kept_stays_within_its_bound_the_least_recently_read_going_first() -> None:
    one = len(summaries(8).SerializeToString()) + len(PrintedAnswers(1).json(summaries(8)))
    answers = PrintedAnswers(max_bytes=2 * one + 100)
    a, b, c = (summaries(8, claims=n) for n in (100, 200, 300))
    first_a = answers.json(a)
    answers.json(b)
    assert answers.json(a) is first_a  # read again: now b is the least recently read
    answers.json(c)  # over the bound: b goes

    assert answers.json(a) is first_a
    printed = printed_count("printed")
    answers.json(b)
    assert printed_count("printed") == printed + 1
