"""Every request checked against its contract where it enters: what a client sending bad
input is told, and what a request that passes can no longer hold."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor, message_factory, timestamp_pb2
from google.protobuf.message import Message
from google.type import date_pb2
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime import errors
from runtime.errors import ApiError
from runtime.methods import API_SERVICES
from runtime.validation import MAX_VIOLATIONS, check_request
from upstream.drift.v1 import drift_service_pb2
from upstream.drift.v1 import resources_pb2 as drift_resources
from upstream.ingest.v1 import ingest_service_pb2
from upstream.ingest.v1 import resources_pb2 as ingest_resources
from upstream.reports.v1 import reports_service_pb2
from upstream.reports.v1 import resources_pb2 as reports_resources

# Enum numbers no enum of the contract defines (typed Any: the stubs accept only members).
UNDEFINED: Any = 99
NEGATIVE: Any = -1


def refusal(request: Message) -> ApiError:
    with pytest.raises(ApiError) as refused:
        check_request(request)
    assert refused.value.code == grpc.StatusCode.INVALID_ARGUMENT
    return refused.value


def violations(request: Message) -> dict[str, str]:
    return {v.field: v.description for v in refusal(request).violations}


def webhook_request(**webhook: Any) -> reports_service_pb2.CreateWebhookRequest:
    fields = {"url": "https://hooks.example.com/upstream", "event_types": [1]} | webhook
    return reports_service_pb2.CreateWebhookRequest(
        parent="customers/acme", webhook=reports_resources.Webhook(**fields)
    )


# --- control characters ------------------------------------------------------------------


@pytest.mark.parametrize("character", ["\x00", "\x01", "\x1b", "\x1f", "\t", "\n", "\r"])
def test_a_display_name_holds_no_control_character(character: str) -> None:
    found = violations(webhook_request(display_name=f"ops{character}hook"))
    assert found == {
        "webhook.display_name": (
            f"must not contain control characters; found U+{ord(character):04X} at character 4"
        )
    }


def test_nul_is_refused_in_names_filters_ids_and_map_entries() -> None:
    assert set(violations(ingest_service_pb2.GetUploadRequest(name="customers/acme/\x00"))) == {
        "name"
    }
    assert set(
        violations(ingest_service_pb2.ListClaimsRequest(parent="customers/acme", filter='a="\x00"'))
    ) == {"filter"}
    upload = ingest_service_pb2.CreateUploadRequest(
        parent="customers/acme",
        request_id="key\x00",
        upload=ingest_resources.Upload(column_map={"claim_id": "Claim\x00#", "pay\x00er": "P"}),
    )
    assert set(violations(upload)) == {
        "request_id",
        "upload.column_map[claim_id]",
        "upload.column_map",
    }


def test_free_text_may_span_lines_but_holds_no_other_control_character() -> None:
    note = drift_service_pb2.UpdateDriftEventRequest(
        drift_event=drift_resources.DriftEvent(
            name="customers/acme/driftEvents/ev_1", triage_note="appeal filed\n\tcall Friday\r\n"
        )
    )
    check_request(note)
    note.drift_event.triage_note = "appeal\x00filed"
    assert violations(note) == {
        "drift_event.triage_note": (
            "must not contain control characters other than tab and line breaks; "
            "found U+0000 at character 7"
        )
    }
    lines = ingest_service_pb2.ListClaimsRequest(
        parent="customers/acme", filter="denied = true\nAND payer = 'Aetna'"
    )
    check_request(lines)


def test_an_idempotency_key_is_printable_ascii() -> None:
    check_request(drift_service_pb2.RunDetectionRequest(parent="customers/acme", request_id="a~ Z"))
    assert violations(
        drift_service_pb2.RunDetectionRequest(parent="customers/acme", request_id="clé")
    ) == {"request_id": "must be printable ASCII (U+0020–U+007E); found U+00E9 at character 3"}


# --- enums --------------------------------------------------------------------------------


def test_an_enum_number_the_proto_does_not_define_is_refused() -> None:
    event = drift_service_pb2.UpdateDriftEventRequest(
        drift_event=drift_resources.DriftEvent(
            name="customers/acme/driftEvents/ev_1", state=UNDEFINED
        )
    )
    assert violations(event) == {
        "drift_event.state": (
            "must be one of STATE_UNSPECIFIED, NEW, ACKNOWLEDGED, RESOLVED, DISMISSED, got 99"
        )
    }
    assert set(
        violations(
            ingest_service_pb2.CreateUploadRequest(
                parent="customers/acme",
                upload=ingest_resources.Upload(mode=UNDEFINED, format=NEGATIVE),
            )
        )
    ) == {"upload.mode", "upload.format"}
    assert set(
        violations(
            drift_service_pb2.RunDetectionRequest(parent="customers/acme", trigger=UNDEFINED)
        )
    ) == {"trigger"}


def test_each_element_of_a_repeated_enum_is_checked() -> None:
    assert set(violations(webhook_request(event_types=[1, 99, 4]))) == {"webhook.event_types[1]"}
    config = drift_service_pb2.UpdateDriftConfigRequest(
        drift_config=drift_resources.DriftConfig(
            name="customers/acme/driftConfig", enabled_metrics=[UNDEFINED]
        )
    )
    assert set(violations(config)) == {"drift_config.enabled_metrics[0]"}


# --- limits from the protos, and the defaults -----------------------------------------------


@pytest.mark.parametrize(
    ("request_with_value", "field", "limit"),
    [
        (lambda v: webhook_request(display_name=v), "webhook.display_name", 100),
        (lambda v: webhook_request(url="https://h.example/" + v[18:]), "webhook.url", 2048),
        (
            lambda v: ingest_service_pb2.CreateUploadRequest(
                parent="customers/acme", upload=ingest_resources.Upload(file_name=v)
            ),
            "upload.file_name",
            255,
        ),
        (
            lambda v: reports_service_pb2.CreateReportRequest(
                parent="customers/acme", request_id=v
            ),
            "request_id",
            128,
        ),
        (
            lambda v: ingest_service_pb2.CreatePayerMappingRequest(
                parent="customers/acme",
                payer_mapping=ingest_resources.PayerMapping(raw_payer_id=v, canonical_payer="A"),
            ),
            "payer_mapping.raw_payer_id",
            80,
        ),
        (
            lambda v: ingest_service_pb2.CreatePayerMappingRequest(
                parent="customers/acme",
                payer_mapping=ingest_resources.PayerMapping(canonical_payer=v),
            ),
            "payer_mapping.canonical_payer",
            200,
        ),
        (
            lambda v: drift_service_pb2.UpdateDriftEventRequest(
                drift_event=drift_resources.DriftEvent(
                    name="customers/acme/driftEvents/ev_1", triage_note=v
                )
            ),
            "drift_event.triage_note",
            4000,
        ),
        # Defaults: resource names, filters, order_by, page tokens and any other string.
        (lambda v: reports_service_pb2.GetWebhookRequest(name=v), "name", 500),
        (
            lambda v: ingest_service_pb2.ListUploadsRequest(parent="customers/acme", filter=v),
            "filter",
            2000,
        ),
        (
            lambda v: ingest_service_pb2.ListUploadsRequest(parent="customers/acme", order_by=v),
            "order_by",
            200,
        ),
        (
            lambda v: ingest_service_pb2.ListUploadsRequest(parent="customers/acme", page_token=v),
            "page_token",
            2000,
        ),
        (lambda v: webhook_request(etag=v), "webhook.etag", 1000),
    ],
)
def test_strings_keep_to_their_stated_or_default_length(
    request_with_value: Any, field: str, limit: int
) -> None:
    check_request(request_with_value("x" * limit))
    assert violations(request_with_value("x" * (limit + 1))) == {
        field: f"must be at most {limit} characters, got {limit + 1}"
    }


def test_a_five_megabyte_display_name_is_refused_by_its_length() -> None:
    refused = refusal(webhook_request(display_name="A" * 5 * 1024 * 1024))
    assert refused.message == "webhook.display_name must be at most 100 characters, got 5242880"


def test_integers_keep_to_the_ranges_the_protos_state() -> None:
    for page_size in (0, 1, 1000):
        check_request(ingest_service_pb2.ListClaimsRequest(parent="c", page_size=page_size))
    for page_size in (-1, 1001, -(2**31)):
        assert violations(
            ingest_service_pb2.ListClaimsRequest(parent="customers/acme", page_size=page_size)
        ) == {"page_size": f"must be between 0 and 1000, got {page_size}"}
    report = reports_resources.Report(
        kind=reports_resources.DRIFT_SUMMARY,
        format=reports_resources.PDF,
        parameters=reports_resources.ReportParameters(lookback_days=731),
    )
    assert violations(
        reports_service_pb2.CreateReportRequest(parent="customers/acme", report=report)
    ) == {"report.parameters.lookback_days": "must be between 1 and 730, got 731"}


def test_an_explicit_zero_is_a_value_where_the_field_has_presence() -> None:
    # `lookback_days` is a oneof member: 0 set explicitly is out of its range.
    report = reports_resources.Report(
        kind=reports_resources.DRIFT_SUMMARY,
        format=reports_resources.PDF,
        parameters=reports_resources.ReportParameters(lookback_days=0),
    )
    assert violations(
        reports_service_pb2.CreateReportRequest(parent="customers/acme", report=report)
    ) == {"report.parameters.lookback_days": "must be between 1 and 730, got 0"}


def test_repeated_fields_keep_to_their_item_counts() -> None:
    parameters = reports_resources.ReportParameters(lookback_days=7, payers=["Aetna"] * 101)
    report = reports_resources.Report(
        kind=reports_resources.DRIFT_SUMMARY, format=reports_resources.PDF, parameters=parameters
    )
    assert violations(
        reports_service_pb2.CreateReportRequest(parent="customers/acme", report=report)
    ) == {"report.parameters.payers": "must have at most 100 items, got 101"}
    stats = ingest_service_pb2.StreamDailyStatsRequest(
        parent="customers/acme", payers=["Aetna"] * 1001
    )
    assert violations(stats) == {"payers": "must have at most 1000 items, got 1001"}


# --- dates and timestamps -----------------------------------------------------------------


def run_as_of(year: int, month: int, day: int) -> drift_service_pb2.RunDetectionRequest:
    return drift_service_pb2.RunDetectionRequest(
        parent="customers/acme", as_of=date_pb2.Date(year=year, month=month, day=day)
    )


def test_a_drift_run_as_of_year_one_is_refused() -> None:
    assert violations(run_as_of(1, 1, 1)) == {
        "as_of": "must lie in the years 1904–2199, got 0001-01-01"
    }


def test_dates_are_calendar_dates_in_range() -> None:
    check_request(run_as_of(2024, 2, 29))
    assert violations(run_as_of(2023, 2, 29)) == {
        "as_of": "must be a calendar date, got 2023-02-29"
    }
    assert set(violations(run_as_of(2024, 13, 1))) == {"as_of"}
    assert set(violations(run_as_of(2200, 1, 1))) == {"as_of"}
    series = ingest_service_pb2.StreamDailyStatSeriesRequest(
        parent="customers/acme",
        start_date=date_pb2.Date(year=1900, month=1, day=1),
        end_date=date_pb2.Date(year=2199, month=12, day=31),
        entry_span_starts=[date_pb2.Date(year=2024, month=1, day=1), date_pb2.Date()],
    )
    assert set(violations(series)) == {"entry_span_starts[1]"}


def test_timestamps_in_a_batch_of_events_are_in_range() -> None:
    event = drift_resources.DriftEvent(
        name="customers/acme/driftEvents/ev_1",
        update_time=timestamp_pb2.Timestamp(seconds=-62135596800),  # 0001-01-01
    )
    batch = reports_service_pb2.RecordDriftEventsRequest(
        parent="customers/acme", batch_id="b1", drift_events=[event]
    )
    assert set(violations(batch)) == {"drift_events[0].update_time"}


# --- output-only fields -------------------------------------------------------------------


def test_output_only_fields_a_client_sets_are_cleared_not_refused() -> None:
    request = webhook_request(
        display_name="ops",
        signing_secret="whsec_chosen_by_the_client",
        create_time=timestamp_pb2.Timestamp(seconds=-(10**11)),
    )
    check_request(request)
    assert request.webhook.signing_secret == ""
    assert not request.webhook.HasField("create_time")
    assert request.webhook.display_name == "ops"
    upload = ingest_service_pb2.CreateUploadRequest(
        parent="customers/acme",
        upload=ingest_resources.Upload(
            state=UNDEFINED, rows_accepted=5, creator="x\x00", file_name="a"
        ),
    )
    check_request(upload)
    assert upload.upload == ingest_resources.Upload(file_name="a")


def test_a_batch_of_stored_events_keeps_its_output_fields() -> None:
    event = drift_resources.DriftEvent(
        name="customers/acme/driftEvents/ev_1",
        payer="Aetna",
        metric=drift_resources.DENIAL_RATE,
        summary="denials up",
    )
    batch = reports_service_pb2.RecordDriftEventsRequest(
        parent="customers/acme", batch_id="b1", drift_events=[event]
    )
    check_request(batch)
    assert batch.drift_events[0] == event
    batch.drift_events[0].metric = 42
    assert set(violations(batch)) == {"drift_events[0].metric"}


# --- what the error says ------------------------------------------------------------------


def test_a_request_broken_everywhere_is_told_its_first_problems() -> None:
    refused = refusal(webhook_request(event_types=[99] * 500))
    assert len(refused.violations) == MAX_VIOLATIONS
    assert refused.message == (
        "webhook.event_types[0] must be one of EVENT_TYPE_UNSPECIFIED, DRIFT_EVENT_OPENED, "
        "DRIFT_EVENT_UPDATED, DRIFT_EVENT_CLOSED, REPORT_READY, TEST, got 99 "
        f"(and {MAX_VIOLATIONS - 1} more)"
    )


def test_an_error_never_echoes_an_unbounded_client_value() -> None:
    name = "customers/acme/webhooks/" + "w" * 100_000
    missing = errors.not_found(name)
    assert missing.message == name[:99] + "… not found"
    assert missing.metadata == {"resource": name[:99] + "…"}
    assert errors.client_text("a\x00b\nc") == "a\\x00b\\x0ac"
    # Whatever a message embeds, every text of the status stays within a KiB.
    quoted = errors.invalid_argument(
        f"{name} is bad", errors.FieldViolation("name", f"{name!r} is not a name")
    )
    status = quoted.to_status()
    assert len(status.message.encode()) <= errors.MAX_TEXT_BYTES
    assert len(status.SerializeToString()) < 4 * errors.MAX_TEXT_BYTES
    assert status.message.endswith("…")


# --- every request type, generated --------------------------------------------------------

REQUEST_TYPES = sorted(
    {method.input_type for service in API_SERVICES for method in service.methods},
    key=lambda message_type: message_type.full_name,
)
_F = descriptor.FieldDescriptor
_INTEGER_RANGES = {
    _F.CPPTYPE_INT32: (-(2**31), 2**31 - 1),
    _F.CPPTYPE_INT64: (-(2**63), 2**63 - 1),
    _F.CPPTYPE_UINT32: (0, 2**32 - 1),
    _F.CPPTYPE_UINT64: (0, 2**64 - 1),
}
_CONTROL = st.sampled_from([chr(c) for c in range(0x20)] + ["\x7f"])
_TEXT = st.one_of(
    st.text(st.one_of(st.characters(codec="utf-8"), _CONTROL), max_size=20),
    st.sampled_from(["", "customers/acme", "customers/acme/uploads/u_1", "state = FAILED"]),
    # Lengths around every limit the protos and the defaults set.
    st.builds(
        lambda character, length: character * length,
        st.sampled_from(["a", "é", "\x00"]),
        st.sampled_from([80, 81, 100, 101, 128, 129, 255, 256, 500, 501, 2000, 2001, 4001]),
    ),
)


def _scalars(field: descriptor.FieldDescriptor) -> st.SearchStrategy[Any]:
    if field.type == _F.TYPE_STRING:
        return _TEXT
    if field.type == _F.TYPE_BYTES:
        return st.binary(max_size=20)
    if field.type == _F.TYPE_BOOL:
        return st.booleans()
    if field.cpp_type in (_F.CPPTYPE_FLOAT, _F.CPPTYPE_DOUBLE):
        return st.floats(width=32 if field.cpp_type == _F.CPPTYPE_FLOAT else 64)
    if field.type == _F.TYPE_ENUM:
        # Defined numbers and any other int32: proto3 enums are open on the wire.
        defined = st.sampled_from([v.number for v in field.enum_type.values])
        return st.one_of(defined, st.integers(-(2**31), 2**31 - 1))
    low, high = _INTEGER_RANGES[field.cpp_type]
    return st.integers(low, high)


@st.composite
def messages(draw: st.DrawFn, message_type: descriptor.Descriptor, depth: int = 0) -> Message:
    """Any message of `message_type`: each field set or not, with hostile values."""
    message = message_factory.GetMessageClass(message_type)()
    for field in message_type.fields:
        if field.message_type is not None and depth >= 3:
            continue
        if not draw(st.booleans()):
            continue
        entry = field.message_type
        if entry is not None and entry.GetOptions().map_entry:
            key_field, value_field = entry.fields_by_name["key"], entry.fields_by_name["value"]
            entries = draw(
                st.dictionaries(_scalars(key_field), _values(value_field, depth), max_size=3)
            )
            for key, value in entries.items():
                if value_field.message_type is not None:
                    getattr(message, field.name)[key].CopyFrom(value)
                else:
                    getattr(message, field.name)[key] = value
        elif field.is_repeated:
            values = draw(st.lists(_values(field, depth), max_size=3))
            if field.message_type is not None:
                for value in values:
                    getattr(message, field.name).add().CopyFrom(value)
            else:
                getattr(message, field.name).extend(values)
        elif field.message_type is not None:
            getattr(message, field.name).CopyFrom(draw(_values(field, depth)))
        else:
            setattr(message, field.name, draw(_values(field, depth)))
    return message


def _values(field: descriptor.FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    if field.message_type is not None:
        return messages(field.message_type, depth + 1)
    return _scalars(field)


def _strings_and_enums(message: Message) -> Iterator[tuple[str, Any]]:
    """Every string ("string", text) and enum value ("enum", (enum type, number)) held
    anywhere in `message`, map keys included."""
    for field, value in message.ListFields():
        if _is_map(field):
            item_field = field.message_type.fields_by_name["value"]
            yield from (("string", key) for key in value if isinstance(key, str))
            items = list(value.values())
        else:
            item_field = field
            items = list(value) if field.is_repeated else [value]
        for item in items:
            if isinstance(item, Message):
                yield from _strings_and_enums(item)
            elif item_field.type == _F.TYPE_STRING:
                yield "string", item
            elif item_field.type == _F.TYPE_ENUM:
                yield "enum", (item_field.enum_type, item)


def _is_map(field: descriptor.FieldDescriptor) -> bool:
    return field.message_type is not None and field.message_type.GetOptions().map_entry


@settings(max_examples=400)
@given(request=st.sampled_from(REQUEST_TYPES).flatmap(messages))
def test_any_request_passes_or_is_refused_with_field_violations(request: Message) -> None:
    top_level_fields = {field.name for field in request.DESCRIPTOR.fields}
    try:
        check_request(request)
    except ApiError as refused:
        assert refused.code == grpc.StatusCode.INVALID_ARGUMENT
        assert 1 <= len(refused.violations) <= MAX_VIOLATIONS
        for violation in refused.violations:
            assert violation.field.split(".")[0].split("[")[0] in top_level_fields
            assert violation.description
        assert refused.message.startswith(refused.violations[0].field)
        return
    # What passes can reach PostgreSQL and the handlers: no NUL, no control character but
    # whitespace, no enum number outside the contract.
    for kind, value in _strings_and_enums(request):
        if kind == "string":
            assert not any(ord(c) < 0x20 and c not in "\t\n\r" for c in value)
        else:
            enum_type, number = value
            assert number in {v.number for v in enum_type.values}
    check_request(request)
