"""Page sizes and page tokens as a caller of any List method sees them."""

from __future__ import annotations

import base64
import datetime as dt

import grpc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime import pagination
from runtime.errors import ApiError

PARENT = "customers/acme"
FILTER = "state = FAILED"


def refusal(call, field: str = "page_token") -> ApiError:  # type: ignore[no-untyped-def]
    with pytest.raises(ApiError) as caught:
        call()
    error = caught.value
    assert error.code is grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in error.violations] == [field]
    return error


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def test_page_size_zero_means_the_default_of_100() -> None:
    assert pagination.page_size(0) == 100


@pytest.mark.parametrize("requested", [1, 2, 100, 999, 1000])
def test_page_sizes_from_1_to_1000_are_kept(requested: int) -> None:
    assert pagination.page_size(requested) == requested


@pytest.mark.parametrize("requested", [-1, -100, 1001, 10**9])
def test_negative_or_oversized_page_sizes_are_refused(requested: int) -> None:
    error = refusal(lambda: pagination.page_size(requested), "page_size")
    assert f"got {requested}" in error.message
    assert "between 0 and 1000" in error.violations[0].description


def test_a_page_size_violation_names_the_callers_field() -> None:
    refusal(lambda: pagination.page_size(5000, field="max_results"), "max_results")


def test_no_token_means_the_first_page() -> None:
    assert pagination.decode("", PARENT, FILTER) is None


def test_a_token_returns_the_position_it_was_made_at() -> None:
    token = pagination.encode(["2026-03-14T00:00:00+00:00", "u_1", 42], PARENT, FILTER)
    decoded = pagination.decode(token, PARENT, FILTER)
    assert decoded == pagination.PageToken(["2026-03-14T00:00:00+00:00", "u_1", 42])


def test_tokens_are_url_safe_without_padding() -> None:
    token = pagination.encode(["é/?+&=" * 5, 2**40], PARENT, FILTER)
    assert token
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_a_datetime_position_comes_back_as_a_string_that_parses_to_it() -> None:
    created = dt.datetime(2026, 3, 14, 9, 30, 0, 123456, tzinfo=dt.UTC)
    decoded = pagination.decode(pagination.encode([created, "u_9"], PARENT), PARENT)
    assert decoded is not None
    assert dt.datetime.fromisoformat(decoded.after[0]) == created
    assert decoded.after[1] == "u_9"


@pytest.mark.parametrize(
    "other_request",
    [
        ("customers/other", FILTER),
        (PARENT, "state = SUCCEEDED"),
        (PARENT, ""),
        (PARENT,),
        (PARENT, FILTER, "create_time desc"),
    ],
)
def test_a_token_for_another_request_is_refused(other_request: tuple[str, ...]) -> None:
    token = pagination.encode(["x"], PARENT, FILTER)
    error = refusal(lambda: pagination.decode(token, *other_request))
    assert "different request" in error.message


def test_a_refused_token_names_the_callers_field() -> None:
    refusal(lambda: pagination.decode("%%%", PARENT, field="next_cursor"), "next_cursor")


@pytest.mark.parametrize(
    "token",
    [
        "not a token!!",
        "%%%",
        "é",
        b64(b"plain text, not json"),
        b64(b"\xff\xfe\x00"),
        b64(b"[1, 2]"),
        b64(b'"a string"'),
        b64(b"42"),
        b64(b"null"),
        b64(b'{"a": ["x"]}'),
        b64(b'{"f": "0123456789abcdef"}'),
        b64(b'{"a": "x", "f": "0123456789abcdef"}'),
        b64(b'{"a": {"k": 1}, "f": "0123456789abcdef"}'),
        b64(b"[" * 100_000),
    ],
)
def test_a_token_that_is_not_ours_is_refused(token: str) -> None:
    error = refusal(lambda: pagination.decode(token, PARENT, FILTER))
    assert error.message == "page_token is not valid"


def test_a_truncated_token_is_refused() -> None:
    token = pagination.encode(["2026-03-14T00:00:00+00:00", "u_1"], PARENT, FILTER)
    for cut in (1, 5, len(token) // 2, len(token) - 3):
        refusal(lambda cut=cut: pagination.decode(token[:cut], PARENT, FILTER))


_PART = st.text(st.characters(blacklist_characters="\x1f", blacklist_categories=["Cs"]))
_POSITION = st.lists(st.one_of(st.text(), st.integers()), max_size=5)


@settings(max_examples=200, deadline=None)
@given(after=_POSITION, request=st.lists(_PART, max_size=4))
def test_every_position_round_trips(after: list[str | int], request: list[str]) -> None:
    token = pagination.encode(after, *request)
    assert pagination.decode(token, *request) == pagination.PageToken(after)


@settings(max_examples=200, deadline=None)
@given(after=_POSITION, issued=st.tuples(_PART, _PART), used=st.tuples(_PART, _PART))
def test_a_token_only_opens_the_request_it_was_issued_for(
    after: list[str | int], issued: tuple[str, str], used: tuple[str, str]
) -> None:
    token = pagination.encode(after, *issued)
    if used == issued:
        assert pagination.decode(token, *used) == pagination.PageToken(after)
    else:
        refusal(lambda: pagination.decode(token, *used))


@settings(max_examples=200, deadline=None)
@given(token=st.one_of(st.text(min_size=1), st.binary(min_size=1).map(b64)))
def test_any_text_not_issued_as_a_token_is_a_clean_refusal(token: str) -> None:
    refusal(lambda: pagination.decode(token, PARENT, FILTER))
