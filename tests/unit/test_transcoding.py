"""REST ↔ gRPC transcoding against the real API descriptors: which RPC a request reaches and
the request message it becomes."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import grpc
import pytest
from google.protobuf import field_mask_pb2, message
from hypothesis import example, given, settings
from hypothesis import strategies as st

from gateway.transcoding import (
    MAX_JSON_DEPTH,
    Route,
    build_routes,
    compile_template,
    match,
    parse_json_body,
    parse_request,
    path_exists,
    request_dict,
    to_json,
)
from runtime.errors import ApiError, client_text
from runtime.methods import API_SERVICES, HttpBinding
from upstream.drift.v1 import drift_service_pb2, resources_pb2
from upstream.ingest.v1 import ingest_service_pb2
from upstream.ingest.v1 import resources_pb2 as ingest_resources_pb2

ROUTES = build_routes(API_SERVICES)


def route_of(method_name: str) -> Route:
    return next(route for route in ROUTES if route.method.name == method_name)


def transcode(
    verb: str, path: str, query: Iterable[tuple[str, str]] = (), body: Any = None
) -> message.Message:
    found = match(ROUTES, verb, path)
    assert found is not None, f"{verb} {path} matched no route"
    route, path_values = found
    return parse_request(route, request_dict(route, path_values, query, body))


def refusal(
    verb: str, path: str, query: Iterable[tuple[str, str]] = (), body: Any = None
) -> ApiError:
    with pytest.raises(ApiError) as caught:
        transcode(verb, path, query, body)
    assert caught.value.code is grpc.StatusCode.INVALID_ARGUMENT
    return caught.value


def violated_fields(error: ApiError) -> list[str]:
    return [violation.field for violation in error.violations]


# --- path templates -------------------------------------------------------------------------


def test_a_parent_template_binds_one_customer() -> None:
    pattern, variables = compile_template("/v1/{parent=customers/*}/uploads")
    assert variables == ["parent"]
    found = pattern.match("/v1/customers/acme/uploads")
    assert found is not None and found.groups() == ("customers/acme",)
    for other in ("/v1/customers/acme/x/uploads", "/v1/customers//uploads", "/v1/customers/acme"):
        assert pattern.match(other) is None


def test_a_custom_verb_is_part_of_the_template_not_of_the_variable() -> None:
    pattern, variables = compile_template("/v1/{name=customers/*/reports/*}:download")
    assert variables == ["name"]
    found = pattern.match("/v1/customers/a/reports/r1:download")
    assert found is not None and found.groups() == ("customers/a/reports/r1",)
    assert pattern.match("/v1/customers/a/reports/r1") is None
    assert pattern.match("/v1/customers/a/reports/r1:downloadx") is None


def test_a_dotted_variable_names_a_nested_field() -> None:
    pattern, variables = compile_template("/v1/{drift_event.name=customers/*/driftEvents/*}")
    assert variables == ["drift_event.name"]
    found = pattern.match("/v1/customers/a/driftEvents/e1")
    assert found is not None and found.groups() == ("customers/a/driftEvents/e1",)


def test_double_star_spans_several_segments_and_star_only_one() -> None:
    pattern, _ = compile_template("/v1/{name=**}")
    found = pattern.match("/v1/customers/a/uploads/u1")
    assert found is not None and found.groups() == ("customers/a/uploads/u1",)
    single, variables = compile_template("/v1/shelves/{shelf}/books/{book}")
    assert variables == ["shelf", "book"]
    assert single.match("/v1/shelves/s1/books/b1") is not None
    assert single.match("/v1/shelves/s1/x/books/b1") is None


def test_literal_text_in_a_template_is_not_a_regex() -> None:
    pattern, _ = compile_template("/v1/{name=items/*}/a.b")
    assert pattern.match("/v1/items/i1/a.b") is not None
    assert pattern.match("/v1/items/i1/aXb") is None


# --- routing --------------------------------------------------------------------------------


def test_every_annotated_rpc_has_a_route() -> None:
    routed = {route.grpc_path for route in ROUTES}
    declared = {
        f"/{service.full_name}/{method.name}"
        for service in API_SERVICES
        for method in service.methods
    }
    assert routed == declared
    assert "/upstream.ingest.v1.IngestService/ListUploads" in routed


@pytest.mark.parametrize(
    ("verb", "path", "method_name", "values"),
    [
        ("GET", "/v1/customers/a/uploads", "ListUploads", {"parent": "customers/a"}),
        ("POST", "/v1/customers/a/uploads", "CreateUpload", {"parent": "customers/a"}),
        ("GET", "/v1/customers/a/uploads/u1", "GetUpload", {"name": "customers/a/uploads/u1"}),
        (
            "delete",
            "/v1/customers/a/uploads/u1",
            "DeleteUpload",
            {"name": "customers/a/uploads/u1"},
        ),
        (
            "GET",
            "/v1/customers/a/uploads/u1/rejections",
            "ListUploadRejections",
            {"parent": "customers/a/uploads/u1"},
        ),
        ("GET", "/v1/customers/a/reports/r1", "GetReport", {"name": "customers/a/reports/r1"}),
        (
            "GET",
            "/v1/customers/a/reports/r1:download",
            "DownloadReport",
            {"name": "customers/a/reports/r1"},
        ),
        (
            "POST",
            "/v1/customers/a/webhooks/w1:test",
            "TestWebhook",
            {"name": "customers/a/webhooks/w1"},
        ),
        (
            "POST",
            "/v1/customers/a/driftEventBatches:record",
            "RecordDriftEvents",
            {"parent": "customers/a"},
        ),
        (
            "PATCH",
            "/v1/customers/a/driftEvents/e1",
            "UpdateDriftEvent",
            {"drift_event.name": "customers/a/driftEvents/e1"},
        ),
        (
            "GET",
            "/v1/customers/a/driftConfig",
            "GetDriftConfig",
            {"name": "customers/a/driftConfig"},
        ),
    ],
)
def test_a_request_reaches_its_rpc_with_the_path_values(
    verb: str, path: str, method_name: str, values: dict[str, str]
) -> None:
    found = match(ROUTES, verb, path)
    assert found is not None
    route, path_values = found
    assert route.method.name == method_name
    assert path_values == values


def test_custom_verb_routes_are_tried_before_plain_ones() -> None:
    # `r1:download` would also fit GetReport's `reports/*`; the verb route must win.
    order = [route.method.name for route in ROUTES]
    assert order.index("DownloadReport") < order.index("GetReport")


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("/v1/customers/acme%20co/uploads", "customers/acme co"),
        ("/v1/customers/caf%C3%A9/uploads", "customers/café"),
        ("/v1/customers/a%3Ab/uploads", "customers/a:b"),
    ],
)
def test_percent_encoded_path_segments_are_decoded(path: str, value: str) -> None:
    found = match(ROUTES, "GET", path)
    assert found is not None
    assert found[1] == {"parent": value}


def test_a_path_matched_again_binds_the_same_values_whatever_the_first_caller_did() -> None:
    path = "/v1/customers/again/driftEvents/e1"
    first = match(ROUTES, "GET", path)
    assert first is not None
    first[1]["name"] = "customers/other/driftEvents/e2"  # a caller's own copy
    again = match(ROUTES, "GET", path)
    assert again is not None and again[0] is first[0]
    assert again[1] == {"name": "customers/again/driftEvents/e1"}
    # A path too long to be kept is matched all the same.
    long_id = "e" * 1000
    found = match(ROUTES, "GET", f"/v1/customers/again/driftEvents/{long_id}")
    assert found is not None and found[1] == {"name": f"customers/again/driftEvents/{long_id}"}


def test_a_known_path_with_the_wrong_verb_matches_nothing_but_exists() -> None:
    assert match(ROUTES, "PUT", "/v1/customers/a/uploads") is None
    assert path_exists(ROUTES, "/v1/customers/a/uploads")


@pytest.mark.parametrize(
    "path", ["/v1/customers/a/unknowns", "/v1/customers/a/uploads/", "/v2/customers/a/uploads", "/"]
)
def test_an_unknown_path_matches_nothing_and_does_not_exist(path: str) -> None:
    assert match(ROUTES, "GET", path) is None
    assert not path_exists(ROUTES, path)


def test_routes_know_which_bodies_are_raw_bytes() -> None:
    upload = route_of("CreateUpload")
    assert upload.streams_request_body and not upload.returns_http_body
    download = route_of("DownloadReport")
    assert download.returns_http_body and not download.streams_request_body
    assert route_of("UpdateDriftConfig").body_field is not None
    assert route_of("RunDetection").body_field is None


# --- query parameters -----------------------------------------------------------------------


def test_query_parameters_fill_fields_by_proto_or_json_name() -> None:
    request = transcode(
        "GET",
        "/v1/customers/a/uploads",
        [
            ("pageSize", "25"),
            ("page_token", "tok"),
            ("filter", "state = FAILED"),
            ("orderBy", "create_time desc"),
        ],
    )
    assert request == ingest_service_pb2.ListUploadsRequest(
        parent="customers/a",
        page_size=25,
        page_token="tok",
        filter="state = FAILED",
        order_by="create_time desc",
    )


def test_dotted_query_parameters_fill_nested_fields() -> None:
    request = transcode(
        "POST",
        "/v1/customers/a/uploads",
        [
            ("upload.file_name", "remits.csv"),
            ("upload.format", "CSV"),
            ("upload.mode", "ALL_OR_NOTHING"),
            ("requestId", "r-1"),
        ],
    )
    upload = ingest_resources_pb2.Upload
    assert request == ingest_service_pb2.CreateUploadRequest(
        parent="customers/a",
        request_id="r-1",
        upload=upload(file_name="remits.csv", format=upload.CSV, mode=upload.ALL_OR_NOTHING),
    )


def test_an_enum_can_be_given_by_number() -> None:
    request = transcode("POST", "/v1/customers/a/uploads", [("upload.mode", "1")])
    assert request.upload.mode == ingest_resources_pb2.Upload.ACCEPT_VALID  # type: ignore[attr-defined]


def test_a_repeated_field_is_given_by_repeating_the_parameter_and_dates_as_iso() -> None:
    request = transcode(
        "GET",
        "/v1/customers/a/dailyStats",
        [
            ("payers", "Aetna"),
            ("start_date", "2026-03-14"),
            ("payers", "Blue Cross"),
            ("endDate", "2026-04-01"),
        ],
    )
    assert list(request.payers) == ["Aetna", "Blue Cross"]  # type: ignore[attr-defined]
    start, end = request.start_date, request.end_date  # type: ignore[attr-defined]
    assert (start.year, start.month, start.day) == (2026, 3, 14)
    assert (end.year, end.month, end.day) == (2026, 4, 1)


@pytest.mark.parametrize("raw", ["14/03/2026", "2026-03", "2026-03-14T00:00:00Z", "²⁰²⁶-03-14"])
def test_a_date_not_in_yyyy_mm_dd_is_refused_by_name(raw: str) -> None:
    error = refusal("GET", "/v1/customers/a/dailyStats", [("start_date", raw)])
    assert violated_fields(error) == ["start_date"]
    assert "is not a date (YYYY-MM-DD)" in error.message


def test_an_update_mask_takes_comma_separated_proto_names() -> None:
    request = transcode(
        "PATCH",
        "/v1/customers/a/driftConfig",
        [("update_mask", "current_window_days,etag")],
        {"currentWindowDays": 14},
    )
    assert list(request.update_mask.paths) == ["current_window_days", "etag"]  # type: ignore[attr-defined]
    assert request.drift_config.current_window_days == 14  # type: ignore[attr-defined]


def test_an_update_mask_given_whole_and_by_subfield_is_refused() -> None:
    # Used to fail with AttributeError (a 500) instead of a clean INVALID_ARGUMENT.
    error = refusal(
        "PATCH",
        "/v1/customers/a/driftEvents/e1",
        [("update_mask", "state"), ("update_mask.paths", "triage_note")],
    )
    assert violated_fields(error) == ["update_mask"]


def _event_route_without_body() -> Route:
    """UpdateDriftEvent bound as if it had no body, so `drift_event.*` comes by query."""
    template = "/v1/{drift_event.name=customers/*/driftEvents/*}"
    pattern, variables = compile_template(template)
    method = route_of("UpdateDriftEvent").method
    return Route(method, HttpBinding("get", template, ""), pattern, tuple(variables))


@pytest.mark.parametrize(
    ("raw", "active"), [("true", True), ("TRUE", True), ("1", True), ("false", False), ("0", False)]
)
def test_bools_in_the_query_are_true_false_1_or_0(raw: str, active: bool) -> None:
    route = _event_route_without_body()
    path_values = {"drift_event.name": "customers/a/driftEvents/e1"}
    request = parse_request(
        route, request_dict(route, path_values, [("drift_event.active", raw)], None)
    )
    assert request.drift_event.active is active  # type: ignore[attr-defined]
    assert request.drift_event.name == "customers/a/driftEvents/e1"  # type: ignore[attr-defined]


def test_a_bool_that_is_not_true_or_false_is_refused() -> None:
    route = _event_route_without_body()
    with pytest.raises(ApiError) as caught:
        request_dict(route, {}, [("drift_event.active", "yes")], None)
    assert violated_fields(caught.value) == ["drift_event.active"]


@pytest.mark.parametrize(
    ("key", "value"),
    [("parent", "customers/other"), ("parent", "customers/a")],
)
def test_a_field_bound_by_the_path_cannot_be_set_by_the_query(key: str, value: str) -> None:
    error = refusal("GET", "/v1/customers/a/uploads", [(key, value)])
    assert violated_fields(error) == [key]
    assert "bound by the path" in error.message


@pytest.mark.parametrize(
    "key", ["drift_event.state", "driftEvent.triageNote", "drift_event", "drift_event.name"]
)
def test_a_field_bound_by_the_body_cannot_be_set_by_the_query(key: str) -> None:
    error = refusal("PATCH", "/v1/customers/a/driftEvents/e1", [(key, "NEW")])
    assert violated_fields(error) == [key]


@pytest.mark.parametrize("key", ["colour", "page_size.value", "pagesize", "", "upload"])
def test_an_unknown_query_parameter_is_refused_by_name(key: str) -> None:
    error = refusal("GET", "/v1/customers/a/uploads", [(key, "1")])
    assert violated_fields(error) == [key]
    assert "is not a field of this request" in error.message


@pytest.mark.parametrize("raw", ["ten", "1.5", "", "0x10"])
def test_a_non_number_for_an_int_field_is_refused_by_name(raw: str) -> None:
    error = refusal("GET", "/v1/customers/a/uploads", [("page_size", raw)])
    assert violated_fields(error) == ["page_size"]
    assert "is not a number" in error.message


def test_an_int_out_of_range_is_refused() -> None:
    error = refusal("GET", "/v1/customers/a/uploads", [("page_size", str(2**40))])
    assert "page_size" in error.message


def test_a_scalar_given_twice_is_refused() -> None:
    error = refusal("GET", "/v1/customers/a/uploads", [("page_size", "1"), ("pageSize", "2")])
    assert violated_fields(error) == ["page_size"]
    assert "more than once" in error.message


def test_a_message_field_needs_its_subfields_in_the_query() -> None:
    error = refusal("POST", "/v1/customers/a/uploads", [("upload", "remits.csv")])
    assert violated_fields(error) == ["upload"]


@pytest.mark.parametrize("raw", ["²", "CSV2", "csv"])
def test_an_unknown_enum_value_in_the_query_is_refused(raw: str) -> None:
    # "²" is a digit to str.isdigit() but not to int(): it used to be a ValueError (a 500).
    refusal("POST", "/v1/customers/a/uploads", [("upload.format", raw)])


# --- bodies ---------------------------------------------------------------------------------


def test_a_star_body_fills_the_request_and_the_path_wins_over_it() -> None:
    request = transcode(
        "POST",
        "/v1/customers/a/driftRuns",
        body={
            "parent": "customers/someone-else",
            "asOf": {"year": 2026, "month": 3, "day": 14},
            "request_id": "r-1",
            "trigger": "MANUAL",
        },
    )
    assert request == drift_service_pb2.RunDetectionRequest(
        parent="customers/a",
        as_of={"year": 2026, "month": 3, "day": 14},
        request_id="r-1",
        trigger=resources_pb2.DriftRun.MANUAL,
    )


def test_a_star_body_may_be_absent() -> None:
    request = transcode("POST", "/v1/customers/a/driftRuns")
    assert request == drift_service_pb2.RunDetectionRequest(parent="customers/a")


@pytest.mark.parametrize("body", [[1], "text", 5, True])
def test_a_star_body_must_be_a_json_object(body: Any) -> None:
    error = refusal("POST", "/v1/customers/a/driftRuns", body=body)
    assert violated_fields(error) == ["body"]


def test_a_named_body_fills_that_field_and_the_path_wins_for_its_name() -> None:
    request = transcode(
        "PATCH",
        "/v1/customers/a/driftConfig",
        body={
            "name": "customers/someone-else/driftConfig",
            "currentWindowDays": 14,
            "enabled_metrics": ["DENIAL_RATE", "PAYMENT_RATIO"],
        },
    )
    assert request == drift_service_pb2.UpdateDriftConfigRequest(
        drift_config=resources_pb2.DriftConfig(
            name="customers/a/driftConfig",
            current_window_days=14,
            enabled_metrics=[resources_pb2.DENIAL_RATE, resources_pb2.PAYMENT_RATIO],
        ),
        # Without update_mask, a PATCH changes exactly the fields its body names.
        update_mask=field_mask_pb2.FieldMask(paths=["current_window_days", "enabled_metrics"]),
    )


def test_an_explicit_update_mask_wins_over_the_body() -> None:
    request = transcode(
        "PATCH",
        "/v1/customers/a/driftConfig",
        query=[("updateMask", "current_window_days")],
        body={"currentWindowDays": 14, "minCurrentClaims": 0},
    )
    assert list(request.update_mask.paths) == ["current_window_days"]


MESSAGE_BODY_ROUTES = {
    f"{route.binding.verb.upper()} {route.binding.template}": route
    for route in ROUTES
    if route.body_field is not None and not route.streams_request_body
}


@pytest.mark.parametrize("route_key", MESSAGE_BODY_ROUTES)
@pytest.mark.parametrize("body", [[None], [1], "text", 5, True, []])
def test_a_named_message_body_must_be_a_json_object(route_key: str, body: Any) -> None:
    # Used to fail with TypeError (a 500) while setting `drift_config.name` from the path, and
    # to name fields that do not exist (`webhook.None`, `webhook.x`) where no path variable is
    # in the body.
    route = MESSAGE_BODY_ROUTES[route_key]
    path_values = {variable: "customers/a/x/b" for variable in route.variables}
    with pytest.raises(ApiError) as caught:
        parse_request(route, request_dict(route, path_values, [], body))
    body_field = route.binding.body
    assert violated_fields(caught.value) == [body_field]
    assert caught.value.message == f"{body_field}: must be a JSON object"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"currentWindowDays": "many"}, "drift_config.current_window_days"),
        ({"enabledMetrics": ["NOT_A_METRIC"]}, "drift_config.enabled_metrics"),
        ({"colour": "red"}, "drift_config.colour"),
        ({"currentWindowDays": 1.5}, "drift_config.current_window_days"),
        ({"currentWindowDays": 10**30}, "drift_config.current_window_days"),
        ({"falseDiscoveryRate": float("inf")}, "drift_config.false_discovery_rate"),
        ({"updateTime": 5}, "drift_config.update_time"),
        ({"etag": {"nested": ["x"]}}, "drift_config.etag"),
    ],
)
def test_a_body_that_does_not_fit_the_message_names_the_field(
    body: dict[str, Any], field: str
) -> None:
    error = refusal("PATCH", "/v1/customers/a/driftConfig", body=body)
    assert violated_fields(error) == [field]
    assert error.message.startswith(f"{field}: ")


def test_responses_use_json_names() -> None:
    response = ingest_service_pb2.ListUploadsResponse(
        uploads=[ingest_resources_pb2.Upload(name="customers/a/uploads/u1", file_name="r.csv")],
        next_page_token="next",
    )
    body = to_json(response)
    assert body["nextPageToken"] == "next"
    (upload,) = body["uploads"]
    assert upload["name"] == "customers/a/uploads/u1" and upload["fileName"] == "r.csv"
    # Zero values are shown, not left out: a browser reads "rowsRejected": "0".
    assert upload["rowsRejected"] == "0" and upload["payers"] == []


# --- JSON bodies as sent ---------------------------------------------------------------------


def _nested_lists(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def test_json_as_deep_as_the_limit_is_read_and_one_level_more_is_refused() -> None:
    assert parse_json_body(_nested_lists(MAX_JSON_DEPTH)) is not None
    for depth in (MAX_JSON_DEPTH + 1, 500, 10_000):
        with pytest.raises(ApiError) as caught:
            parse_json_body(_nested_lists(depth))
        assert violated_fields(caught.value) == ["body"]
        assert f"nested deeper than {MAX_JSON_DEPTH}" in caught.value.message


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b'{"a": 1, "b": {"c": 2, "c": 3}}', "'c' more than once"),
        (b'{"rate": NaN}', "NaN is not JSON"),
        (b'{"rate": -Infinity}', "-Infinity is not JSON"),
        (b'{"name": "\xff"}', "not valid JSON"),
        (b'{"count": 1' + b"0" * 5000 + b"}", "not valid JSON"),
        (b'{"open": ', "not valid JSON"),
    ],
    ids=["repeated-key", "nan", "infinity", "bad-utf8", "5001-digits", "cut-short"],
)
def test_json_that_is_not_one_plain_document_is_refused_naming_the_body(
    raw: bytes, words: str
) -> None:
    with pytest.raises(ApiError) as caught:
        parse_json_body(raw)
    assert violated_fields(caught.value) == ["body"]
    assert words in caught.value.message


_JSON_DOCUMENTS = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


@given(document=_JSON_DOCUMENTS)
def test_any_json_document_within_the_limits_reads_back_as_sent(document: Any) -> None:
    assert parse_json_body(json.dumps(document).encode()) == document


@given(raw=st.binary(max_size=200) | st.text(alphabet='[]{}":,0123456789eE.-tfnu ').map(str.encode))
def test_any_bytes_are_a_document_or_a_clean_refusal(raw: bytes) -> None:
    try:
        parse_json_body(raw)
    except ApiError as error:
        assert violated_fields(error) == ["body"]


# --- properties -----------------------------------------------------------------------------

_LIST_UPLOADS_KEYS = st.one_of(
    st.sampled_from(
        ["page_size", "pageSize", "page_token", "filter", "order_by", "parent", "page_size.x"]
    ),
    st.text(max_size=12),
)


@settings(max_examples=200, deadline=None)
@given(query=st.lists(st.tuples(_LIST_UPLOADS_KEYS, st.text(max_size=12)), max_size=5))
def test_any_list_uploads_query_transcodes_or_is_a_clean_error(
    query: list[tuple[str, str]],
) -> None:
    route = route_of("ListUploads")
    try:
        request = parse_request(route, request_dict(route, {"parent": "customers/a"}, query, None))
    except ApiError as error:
        assert error.code is grpc.StatusCode.INVALID_ARGUMENT
    else:
        assert request.parent == "customers/a"  # type: ignore[attr-defined]


_NESTED_KEYS = st.sampled_from(
    [
        "update_mask",
        "updateMask",
        "update_mask.paths",
        "payers",
        "start_date",
        "start_date.year",
        "end_date.day",
        "drift_event.active",
        "drift_event.evidence",
        "drift_event.baseline_window.start_date",
        "drift_event.baseline_window.start_date.month",
        "drift_event.severity",
        "drift_event.first_detected_time",
        "drift_event.first_detected_time.seconds",
    ]
)
_VALUES = st.one_of(
    st.sampled_from(["1", "-1", "true", "2026-03-14", "a,b", "HIGH", "²", "2026-03-14T00:00:00Z"]),
    st.text(max_size=8),
)


@settings(max_examples=200, deadline=None)
@given(
    which=st.sampled_from(["StreamDailyStats", "UpdateDriftEvent", "event_by_query"]),
    query=st.lists(st.tuples(_NESTED_KEYS, _VALUES), max_size=4),
)
def test_nested_and_repeated_query_parameters_transcode_or_are_a_clean_error(
    which: str, query: list[tuple[str, str]]
) -> None:
    route = _event_route_without_body() if which == "event_by_query" else route_of(which)
    path_values = {variable: "customers/a/x/y" for variable in route.variables}
    try:
        parse_request(route, request_dict(route, path_values, query, None))
    except ApiError as error:
        assert error.code is grpc.StatusCode.INVALID_ARGUMENT


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=6),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                ["name", "asOf", "trigger", "currentWindowDays", "enabledMetrics", "year"]
            )
            | st.text(max_size=6),
            children,
            max_size=3,
        )
    ),
    max_leaves=8,
)


@pytest.mark.parametrize("body", [{"trigger": float("inf")}, {"trigger": float("-inf")}])
def test_a_number_too_large_for_an_enum_is_a_clean_error(body: dict[str, Any]) -> None:
    route = route_of("RunDetection")
    path_values = {variable: "customers/a" for variable in route.variables}
    with pytest.raises(ApiError) as refused:
        parse_request(route, request_dict(route, path_values, [], body))

    assert refused.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert "too large" in refused.value.message


@settings(max_examples=200, deadline=None)
@given(method_name=st.sampled_from(["RunDetection", "UpdateDriftConfig"]), body=_JSON)
def test_any_json_body_transcodes_or_is_a_clean_error(method_name: str, body: Any) -> None:
    route = route_of(method_name)
    path_values = {variable: "customers/a/driftConfig" for variable in route.variables}
    try:
        parse_request(route, request_dict(route, path_values, [], body))
    except ApiError as error:
        assert error.code is grpc.StatusCode.INVALID_ARGUMENT


def _json_names(message_type: Any, depth: int = 0) -> set[str]:
    """The JSON names of a message's fields and of its nested messages' fields."""
    found = {field.json_name for field in message_type.fields}
    if depth < 2:
        for field in message_type.fields:
            if field.message_type is not None:
                found |= _json_names(field.message_type, depth + 1)
    return found


_BODY_ROUTES = {
    f"{route.binding.verb.upper()} {route.binding.template}": route
    for route in ROUTES
    if route.binding.body and not route.streams_request_body
}
_BODY_KEYS = sorted(
    set().union(*(_json_names(route.method.input_type) for route in _BODY_ROUTES.values()))
)
_ANY_BODY = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=6),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from(_BODY_KEYS) | st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=8,
)


def _is_field_path(message_type: Any, path: str) -> bool:
    current = message_type
    for part in path.split("."):
        field = current.fields_by_name.get(part) if current is not None else None
        if field is None:
            return False
        current = field.message_type
    return True


def _sent_key_paths(body: Any, prefix: str) -> set[str]:
    """The key paths of a body as an error quotes them (control characters escaped)."""
    if not isinstance(body, dict):
        return set()
    paths = set()
    for key, value in body.items():
        shown = client_text(key)
        paths.add(f"{prefix}{shown}")
        paths |= _sent_key_paths(value, f"{prefix}{shown}.")
    return paths


@settings(max_examples=300, deadline=None)
@given(route_key=st.sampled_from(sorted(_BODY_ROUTES)), body=_ANY_BODY)
# An unknown key inside a field sent by its JSON name: named as sent (`asOf.active`).
@example(route_key="POST /v1/{parent=customers/*}/driftRuns", body={"asOf": {"active": None}})
def test_any_json_body_is_refused_naming_a_field_of_the_request_or_a_key_sent(
    route_key: str, body: Any
) -> None:
    route = _BODY_ROUTES[route_key]
    path_values = {variable: "customers/a/x/b" for variable in route.variables}
    try:
        parse_request(route, request_dict(route, path_values, [], body))
    except ApiError as error:
        assert error.code is grpc.StatusCode.INVALID_ARGUMENT
        prefix = "" if route.binding.body == "*" else f"{route.binding.body}."
        sent = _sent_key_paths(body, prefix)
        for violation in violated_fields(error):
            assert (
                violation == "body"
                or _is_field_path(route.method.input_type, violation)
                or violation in sent
            ), f"{violation!r} is neither a field of {route.method.name} nor a key sent: {body!r}"
