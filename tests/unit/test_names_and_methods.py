"""Resource names and what the contract says about each RPC."""

from __future__ import annotations

import grpc
import pytest
from hypothesis import given
from hypothesis import strategies as st

from runtime import methods, names
from runtime.errors import ApiError
from upstream.drift.v1 import drift_service_pb2, resources_pb2

UPLOAD = "customers/{customer}/uploads/{upload}"
CONFIG = "customers/{customer}/driftConfig"


def test_a_name_gives_its_variables() -> None:
    assert names.parse("customers/acme/uploads/u_1", UPLOAD) == {
        "customer": "acme",
        "upload": "u_1",
    }
    assert names.parse("customers/acme/driftConfig", CONFIG) == {"customer": "acme"}


@pytest.mark.parametrize(
    "value",
    [
        "customers/acme",
        "customers/acme/uploads",
        "customers/acme/uploads/",
        "customers//uploads/u_1",
        "customers/acme/uploads/u_1/rejections/r1",
        "/customers/acme/uploads/u_1",
        "customers/acme/claims/c1",
        "Customers/acme/uploads/u_1",
        "",
    ],
)
def test_a_name_that_does_not_fit_is_refused_naming_the_field(value: str) -> None:
    with pytest.raises(ApiError) as caught:
        names.parse(value, UPLOAD, field="parent")
    error = caught.value
    assert error.code is grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in error.violations] == ["parent"]
    assert error.message == f"parent must look like {UPLOAD}, got {value!r}"


def test_the_field_defaults_to_name() -> None:
    with pytest.raises(ApiError) as caught:
        names.parse("nope", CONFIG)
    assert [v.field for v in caught.value.violations] == ["name"]


@pytest.mark.parametrize("value", ["customers/acme/driftConfig\n", "customers/acme/driftConfigs"])
def test_nothing_may_follow_a_literal_ending(value: str) -> None:
    # A trailing newline used to be accepted: `$` also matches before a final "\n".
    with pytest.raises(ApiError):
        names.parse(value, CONFIG)


def test_literal_parts_of_a_pattern_are_not_regex() -> None:
    with pytest.raises(ApiError):
        names.parse("a+b/x", "a.b/{id}")
    assert names.parse("a.b/x", "a.b/{id}") == {"id": "x"}


_SEGMENT = st.text(st.characters(blacklist_characters="/", blacklist_categories=["Cs"]), min_size=1)


@given(customer=_SEGMENT, upload=_SEGMENT)
def test_a_formatted_name_parses_back_to_its_variables(customer: str, upload: str) -> None:
    name = names.format_name(UPLOAD, customer=customer, upload=upload)
    assert names.parse(name, UPLOAD) == {"customer": customer, "upload": upload}


@pytest.mark.parametrize(
    ("resource_name", "customer"),
    [
        ("customers/acme", "acme"),
        ("customers/acme/uploads/u1", "acme"),
        ("customers/acme/driftConfig", "acme"),
        ("customers/", None),
        ("customers", None),
        ("projects/acme", None),
        ("", None),
        ("/customers/acme", None),
    ],
)
def test_the_customer_of_a_resource_name(resource_name: str, customer: str | None) -> None:
    assert methods.customer_of(resource_name) == customer


def test_list_uploads_reads_a_parent() -> None:
    info = methods.method_info("/upstream.ingest.v1.IngestService/ListUploads")
    assert info.is_api
    assert info.is_read_only
    assert info.resource_fields == ("parent",)
    assert info.rpc_type == "unary"
    assert info.bindings == (methods.HttpBinding("get", "/v1/{parent=customers/*}/uploads", ""),)


def test_update_drift_event_writes_the_event_it_names() -> None:
    info = methods.method_info("/upstream.drift.v1.DriftService/UpdateDriftEvent")
    assert info.is_api
    assert not info.is_read_only
    assert info.resource_fields == ("drift_event.name",)
    assert info.bindings[0].body == "drift_event"


@pytest.mark.parametrize(
    ("full_name", "rpc_type", "read_only"),
    [
        ("/upstream.ingest.v1.IngestService/CreateUpload", "client_stream", False),
        ("/upstream.ingest.v1.IngestService/StreamDailyStats", "server_stream", True),
        ("/upstream.reports.v1.ReportsService/DownloadReport", "server_stream", True),
        ("/upstream.reports.v1.ReportsService/TestWebhook", "unary", False),
        ("/upstream.ingest.v1.IngestService/DeleteUpload", "unary", False),
    ],
)
def test_streaming_shape_and_access_of_methods(
    full_name: str, rpc_type: str, read_only: bool
) -> None:
    info = methods.method_info(full_name)
    assert info.rpc_type == rpc_type
    assert info.is_read_only is read_only


def test_a_health_check_is_not_part_of_the_api() -> None:
    info = methods.method_info("/grpc.health.v1.Health/Check")
    assert info.service == "grpc.health.v1.Health"
    assert info.method == "Check"
    assert not info.is_api
    assert not info.is_read_only
    assert info.resource_fields == ()


def test_the_value_at_a_dotted_field_path() -> None:
    request = drift_service_pb2.UpdateDriftEventRequest(
        drift_event=resources_pb2.DriftEvent(name="customers/acme/driftEvents/e1")
    )
    assert methods.field_value(request, "drift_event.name") == "customers/acme/driftEvents/e1"
    assert methods.customer_of(methods.field_value(request, "drift_event.name")) == "acme"
