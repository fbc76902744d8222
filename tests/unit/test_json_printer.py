"""The gateway's JSON printer prints every message of the API exactly as protobuf's own
`json_format` does (proto3 JSON, fields with no presence at their defaults): random
messages of every request and response type, edge values included."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from typing import Any

import pytest
from google.protobuf import descriptor, json_format, message, message_factory, timestamp_pb2
from google.type import date_pb2

from gateway.json_printer import message_to_dict
from runtime.methods import API_SERVICES
from upstream.drift.v1 import drift_service_pb2, resources_pb2

FieldDescriptor = descriptor.FieldDescriptor

_INT64_EDGES = [0, 1, -1, 2**53 + 1, 2**63 - 1, -(2**63)]
_DOUBLE_EDGES = [
    0.0,
    -0.0,
    0.1,
    1e16,
    1e-300,
    1.7976931348623157e308,
    math.inf,
    -math.inf,
    math.nan,
]
_TEXTS = ["", "Aetna", "Cigna — Süd", 'line\nbreak "quoted" \\', "😀", "\u0000\u001f"]


def _message_types() -> list[descriptor.Descriptor]:
    """Every message type reachable from the API's requests and responses."""
    found: dict[str, descriptor.Descriptor] = {}

    def visit(message_type: descriptor.Descriptor) -> None:
        if message_type.full_name in found:
            return
        found[message_type.full_name] = message_type
        for field in message_type.fields:
            if field.message_type is not None:
                visit(field.message_type)

    for service in API_SERVICES:
        for method in service.methods:
            visit(method.input_type)
            visit(method.output_type)
    return sorted(found.values(), key=lambda d: d.full_name)


MESSAGE_TYPES = _message_types()


def _scalar(field: descriptor.FieldDescriptor, rng: random.Random) -> Any:
    kind = field.cpp_type
    if kind == FieldDescriptor.CPPTYPE_ENUM:
        numbers = [v.number for v in field.enum_type.values]
        # Proto3 enums are open: a number the enum does not name is kept and printed.
        return rng.choice([*numbers, 9_999])
    if kind == FieldDescriptor.CPPTYPE_STRING:
        if field.type == FieldDescriptor.TYPE_BYTES:
            return rng.randbytes(rng.randrange(6))
        return rng.choice(_TEXTS)
    if kind == FieldDescriptor.CPPTYPE_BOOL:
        return rng.random() < 0.5
    if kind == FieldDescriptor.CPPTYPE_INT64:
        return rng.choice([*_INT64_EDGES, rng.randrange(-(10**12), 10**12)])
    if kind == FieldDescriptor.CPPTYPE_UINT64:
        return rng.choice([0, 1, 2**64 - 1, rng.randrange(10**15)])
    if kind == FieldDescriptor.CPPTYPE_INT32:
        return rng.choice([0, -1, 2**31 - 1, -(2**31), rng.randrange(-1000, 1000)])
    if kind == FieldDescriptor.CPPTYPE_UINT32:
        return rng.choice([0, 2**32 - 1, rng.randrange(1000)])
    if kind == FieldDescriptor.CPPTYPE_FLOAT:
        return rng.choice([*_DOUBLE_EDGES[:4], 3.4e38, math.inf, math.nan, rng.random()])
    return rng.choice([*_DOUBLE_EDGES, rng.uniform(-1e6, 1e6)])


def _fill_special(target: message.Message, rng: random.Random) -> None:
    """A well-known type given a value `json_format` can print."""
    name = target.DESCRIPTOR.full_name
    if name == "google.protobuf.Timestamp":
        target.FromSeconds(rng.randrange(0, 4_000_000_000))
        target.nanos = rng.choice([0, 500_000_000, 123_456_789])
    elif name == "google.protobuf.Duration":
        target.FromMilliseconds(rng.randrange(0, 10**9))
    elif name == "google.protobuf.FieldMask":
        target.paths.extend(rng.sample(["state", "triage_note", "display_name"], 2))
    elif name == "google.protobuf.Struct":
        target.update({"a": 1.5, "b": [True, "x"], "c": None})
    elif name == "google.protobuf.Any":
        target.Pack(date_pb2.Date(year=2026, month=rng.randrange(1, 13), day=1))
    elif name.endswith("Value") and "value" in target.DESCRIPTOR.fields_by_name:
        field = target.DESCRIPTOR.fields_by_name["value"]
        value = _scalar(field, rng)
        target.value = 1.0 if isinstance(value, float) and not math.isfinite(value) else value


def _fill(target: message.Message, rng: random.Random, depth: int = 0) -> None:
    if target.DESCRIPTOR.full_name.startswith("google.protobuf."):
        _fill_special(target, rng)
        return
    for field in target.DESCRIPTOR.fields:
        if rng.random() < 0.3:
            continue  # left unset
        is_map = field.message_type is not None and field.message_type.GetOptions().map_entry
        if is_map:
            key_field = field.message_type.fields_by_name["key"]
            value_field = field.message_type.fields_by_name["value"]
            entries = getattr(target, field.name)
            for _ in range(rng.randrange(3)):
                key = _scalar(key_field, rng)
                if value_field.message_type is not None:
                    if depth < 3:
                        _fill(entries[key], rng, depth + 1)
                else:
                    entries[key] = _scalar(value_field, rng)
        elif field.message_type is not None:
            if depth >= 3:
                continue
            if field.is_repeated:
                for _ in range(rng.randrange(3)):
                    _fill(getattr(target, field.name).add(), rng, depth + 1)
            else:
                child = getattr(target, field.name)
                child.SetInParent()
                _fill(child, rng, depth + 1)
        elif field.is_repeated:
            getattr(target, field.name).extend(_scalar(field, rng) for _ in range(rng.randrange(4)))
        else:
            setattr(target, field.name, _scalar(field, rng))


def _samples(message_type: descriptor.Descriptor) -> Iterator[message.Message]:
    cls = message_factory.GetMessageClass(message_type)
    yield cls()  # every field at its default
    rng = random.Random(message_type.full_name)
    for _ in range(25):
        sample = cls()
        _fill(sample, rng)
        yield sample


def _same(ours: Any, theirs: Any) -> bool:
    """Equal, NaN equal to NaN and -0.0 told from 0.0."""
    if isinstance(ours, float) and isinstance(theirs, float):
        return (math.isnan(ours) and math.isnan(theirs)) or (
            ours == theirs and math.copysign(1, ours) == math.copysign(1, theirs)
        )
    if isinstance(ours, dict) and isinstance(theirs, dict):
        return ours.keys() == theirs.keys() and all(_same(ours[k], theirs[k]) for k in ours)
    if isinstance(ours, list) and isinstance(theirs, list):
        return len(ours) == len(theirs) and all(map(_same, ours, theirs))
    return type(ours) is type(theirs) and ours == theirs


def test_the_api_has_many_message_types() -> None:
    assert len(MESSAGE_TYPES) > 80


@pytest.mark.parametrize("message_type", MESSAGE_TYPES, ids=lambda d: d.full_name)
def test_every_message_prints_as_json_format_prints_it(message_type: descriptor.Descriptor) -> None:
    for sample in _samples(message_type):
        theirs = json_format.MessageToDict(sample, always_print_fields_with_no_presence=True)
        ours = message_to_dict(sample)
        assert _same(ours, theirs), (sample, ours, theirs)


def test_special_numbers_and_large_integers_print_as_proto3_json_says() -> None:
    weekly = resources_pb2.WeeklyPoint(
        claims=2**63 - 1, denial_rate=math.nan, median_decision_days=math.inf
    )
    weekly.week_start.CopyFrom(date_pb2.Date(year=2026, month=2, day=3))
    assert message_to_dict(weekly) == {
        "weekStart": {"year": 2026, "month": 2, "day": 3},
        "claims": "9223372036854775807",
        "denialRate": "NaN",
        "medianDecisionDays": "Infinity",
        "paidToAllowedRatio": 0.0,
    }
    stamp = timestamp_pb2.Timestamp(seconds=1_767_225_600, nanos=5_000_000)
    assert message_to_dict(stamp) == "2026-01-01T00:00:00.005Z"


def test_a_page_lists_its_items_before_its_next_page_token() -> None:
    """Fields always printed come in the order the message declares them (set fields with
    presence follow)."""
    page = drift_service_pb2.ListPayerSummariesResponse(next_page_token="next")
    page.payer_summaries.add(payer="Aetna")
    printed = message_to_dict(page)
    assert list(printed) == ["payerSummaries", "nextPageToken"]
    assert list(printed["payerSummaries"][0])[:3] == ["name", "payer", "openEventCount"]
