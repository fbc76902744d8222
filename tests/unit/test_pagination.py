"""Page sizes and page tokens as a caller of any List method sees them."""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime import pagination, standard_methods
from runtime.errors import ApiError
from runtime.settings import Settings
from upstream.drift.v1 import drift_service_pb2
from upstream.ingest.v1 import ingest_service_pb2, resources_pb2

KEY = "k" * 32
OLD_KEY = "an-older-key-that-is-being-rotated-out"
OTHER_KEY = "a-key-of-another-deployment-entirely"
BINDING = b"upstream.ingest.v1.ListUploadsRequest\ncustomers/acme"
TOKENS = pagination.PageTokens([KEY])
POSITION = ["2026-03-14T00:00:00+00:00", "u_1"]


def refusal(call: Callable[[], object], field: str = "page_token") -> ApiError:
    with pytest.raises(ApiError) as caught:
        call()
    error = caught.value
    assert error.code is grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in error.violations] == [field]
    return error


def refused_token(token: str, tokens: pagination.PageTokens = TOKENS) -> None:
    """The one refusal every bad token gets, whatever made it bad."""
    error = refusal(lambda: tokens.decode(token, BINDING, key_length=2))
    assert error.message == "page_token is not valid"


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def raw_of(token: str) -> bytes:
    return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))


# --- page sizes ----------------------------------------------------------------------------


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


# --- the token codec -----------------------------------------------------------------------


def test_no_token_means_the_first_page() -> None:
    assert TOKENS.decode("", BINDING, key_length=2) is None


def test_a_token_returns_the_position_it_was_made_at() -> None:
    token = TOKENS.encode(POSITION, BINDING)
    assert TOKENS.decode(token, BINDING, key_length=2) == POSITION


def test_tokens_are_url_safe_without_padding() -> None:
    token = TOKENS.encode(["é/?+&=" * 5, 2**40], BINDING)
    assert token
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_a_datetime_position_comes_back_as_a_string_that_parses_to_it() -> None:
    created = dt.datetime(2026, 3, 14, 9, 30, 0, 123456, tzinfo=dt.UTC)
    decoded = TOKENS.decode(TOKENS.encode([created, "u_9"], BINDING), BINDING, key_length=2)
    assert decoded is not None
    assert dt.datetime.fromisoformat(decoded[0]) == created
    assert decoded[1] == "u_9"


def test_every_changed_character_makes_the_token_invalid() -> None:
    token = TOKENS.encode(POSITION, BINDING)
    for at, character in enumerate(token):
        for other in {"A", "B", "-", "_", "0"} - {character}:
            refused_token(token[:at] + other + token[at + 1 :])


def test_every_flipped_bit_makes_the_token_invalid() -> None:
    raw = raw_of(TOKENS.encode(POSITION, BINDING))
    for at in range(len(raw)):
        for bit in range(8):
            flipped = raw[:at] + bytes([raw[at] ^ (1 << bit)]) + raw[at + 1 :]
            refused_token(b64(flipped))


def test_a_truncated_or_extended_token_is_invalid() -> None:
    token = TOKENS.encode(POSITION, BINDING)
    for cut in range(1, len(token)):
        refused_token(token[:cut])
    for extra in ("A", "AA", "=", "==", " ", "\n", "\x00"):
        refused_token(token + extra)


def test_a_token_signed_with_another_key_is_invalid() -> None:
    refused_token(pagination.PageTokens([OTHER_KEY]).encode(POSITION, BINDING))


def test_a_rotated_key_still_opens_the_tokens_it_signed() -> None:
    before = pagination.PageTokens([OLD_KEY])
    during = pagination.PageTokens([KEY, OLD_KEY])
    after = pagination.PageTokens([KEY])
    issued_before = before.encode(POSITION, BINDING)
    issued_during = during.encode(POSITION, BINDING)
    assert during.decode(issued_before, BINDING, key_length=2) == POSITION
    assert after.decode(issued_during, BINDING, key_length=2) == POSITION
    refused_token(issued_before, after)


def test_keys_are_rotated_through_page_token_keys() -> None:
    def tokens_of(keys: str) -> pagination.PageTokens:
        env = {"PAGE_TOKEN_KEYS": keys, "JWT_SECRET": KEY}
        return pagination.PageTokens(Settings.from_env("tests", env).page_token_keys)

    old, rotating = tokens_of(OLD_KEY), tokens_of(f" {KEY} , {OLD_KEY} ")
    issued_by_old = old.encode(POSITION, BINDING)
    assert rotating.decode(issued_by_old, BINDING, key_length=2) == POSITION
    refused_token(rotating.encode(POSITION, BINDING), old)


def test_a_position_of_another_length_than_the_sort_key_is_invalid() -> None:
    for position in ([], ["u_1"], [*POSITION, 3]):
        refused_token(TOKENS.encode(position, BINDING))


def test_an_over_long_token_is_invalid_even_if_signed() -> None:
    token = TOKENS.encode(["x" * pagination.MAX_TOKEN_LENGTH, "u_1"], BINDING)
    refused_token(token)


def test_a_refused_token_names_the_callers_field() -> None:
    refusal(lambda: TOKENS.decode("%%%", BINDING, key_length=1, field="next_cursor"), "next_cursor")


@pytest.mark.parametrize("keys", [[], ["short"], [KEY, "short"]])
def test_keys_shorter_than_32_characters_are_refused_at_start(keys: list[str]) -> None:
    with pytest.raises(ValueError, match="32"):
        pagination.PageTokens(keys)


def _unsigned(position: object) -> str:
    """A token as an attacker would write one: the layout copied, the signature made up."""
    payload = json.dumps(position).encode()
    return b64(pagination.TOKEN_FORMAT + bytes(pagination.SIGNATURE_BYTES) + payload)


@pytest.mark.parametrize(
    "token",
    [
        "not a token!!",
        "%%%",
        "é",
        "=",
        "====",
        b64(b"plain text, not json"),
        b64(b"\xff\xfe\x00"),
        b64(b'{"a": ["x"], "f": "0123456789abcdef"}'),
        b64(b"[" * 100_000),
        _unsigned(["2026-03-14'; DROP TABLE ingest.uploads; --", "u_1"]),
        _unsigned([None, None]),
        _unsigned([{"k": 1}, [1, 2]]),
        _unsigned(["\x00", "u_1"]),
        _unsigned("a string, not a list"),
    ],
)
def test_a_token_that_is_not_ours_is_invalid(token: str) -> None:
    refused_token(token)


# Sort keys are short (times, numbers, ids of at most 50 characters) and at most four, so
# every token stays under MAX_TOKEN_LENGTH even with each character JSON-escaped.
_POSITION = st.lists(st.one_of(st.text(max_size=50), st.integers(), st.none()), max_size=4)


def test_the_longest_position_a_list_can_have_round_trips() -> None:
    """Four keys of 50 characters that JSON escapes or that take four bytes each."""
    position = ["\x1f" * 25 + "\U00010000" * 25] * 4
    token = TOKENS.encode(position, b"request")
    assert len(token) <= pagination.MAX_TOKEN_LENGTH
    assert TOKENS.decode(token, b"request", key_length=4) == position


@settings(max_examples=200)
@given(position=_POSITION, binding=st.binary(max_size=200))
def test_every_position_round_trips(position: list[Any], binding: bytes) -> None:
    token = TOKENS.encode(position, binding)
    assert TOKENS.decode(token, binding, key_length=len(position)) == position


@settings(max_examples=200)
@given(position=_POSITION, issued=st.binary(max_size=50), used=st.binary(max_size=50))
def test_a_token_only_opens_the_request_it_was_issued_for(
    position: list[Any], issued: bytes, used: bytes
) -> None:
    token = TOKENS.encode(position, issued)
    if used == issued:
        assert TOKENS.decode(token, used, key_length=len(position)) == position
    else:
        refusal(lambda: TOKENS.decode(token, used, key_length=len(position)))


@settings(max_examples=500)
@given(token=st.one_of(st.text(min_size=1), st.binary(min_size=1).map(b64)))
def test_any_text_not_issued_as_a_token_is_a_clean_refusal(token: str) -> None:
    refused_token(token)


# --- tokens of the standard List methods ---------------------------------------------------

UPLOADS = [(f"2026-03-{day:02d}T00:00:00+00:00", f"u_{day}") for day in range(1, 8)]


@pytest.fixture(autouse=True)
def signed_with_the_test_key() -> None:
    standard_methods.sign_page_tokens_with([KEY])


async def list_uploads(request: Any) -> ingest_service_pb2.ListUploadsResponse:
    """ListUploads over a list in memory, newest first, through the shared List body (which
    checks the token before it fetches, whatever the request)."""

    async def fetch(customer: str, filter_text: str, limit: int, after: Any) -> list[Any]:
        newest_first = sorted(UPLOADS, reverse=True)
        return [u for u in newest_first if after is None or u < tuple(after)][:limit]

    return await standard_methods.list_resources(
        request,
        ingest_service_pb2.ListUploadsResponse,
        "uploads",
        fetch,
        list,
        lambda upload: resources_pb2.Upload(name=upload[1]),
    )


async def test_paging_with_tokens_returns_every_row_once() -> None:
    seen: list[str] = []
    token = ""
    while True:
        page = await list_uploads(
            ingest_service_pb2.ListUploadsRequest(
                parent="customers/acme", page_size=3, page_token=token
            )
        )
        seen += [upload.name for upload in page.uploads]
        token = page.next_page_token
        if not token:
            break
    assert seen == [upload_id for _, upload_id in sorted(UPLOADS, reverse=True)]


async def first_token(request: Any) -> str:
    request.page_size = 2
    token = (await list_uploads(request)).next_page_token
    assert token
    return token


@pytest.mark.parametrize(
    "other",
    [
        ingest_service_pb2.ListClaimsRequest(parent="customers/acme"),
        ingest_service_pb2.ListPayerMappingsRequest(parent="customers/acme"),
        drift_service_pb2.ListPayerSummariesRequest(parent="customers/acme"),
        ingest_service_pb2.ListUploadsRequest(parent="customers/globex"),
        ingest_service_pb2.ListUploadsRequest(parent="customers/acme", filter="state = FAILED"),
        ingest_service_pb2.ListUploadsRequest(parent="customers/acme", order_by="create_time"),
    ],
    ids=["claims", "mappings", "summaries", "other-parent", "other-filter", "other-order"],
)
async def test_a_token_only_opens_the_list_parent_filter_and_order_it_came_from(
    other: Any,
) -> None:
    token = await first_token(ingest_service_pb2.ListUploadsRequest(parent="customers/acme"))
    other.page_token = token
    with pytest.raises(ApiError) as caught:
        await list_uploads(other)
    assert caught.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.message == "page_token is not valid"
    assert [v.field for v in caught.value.violations] == ["page_token"]


async def test_the_page_size_may_change_between_pages() -> None:
    token = await first_token(ingest_service_pb2.ListUploadsRequest(parent="customers/acme"))
    page = await list_uploads(
        ingest_service_pb2.ListUploadsRequest(
            parent="customers/acme", page_size=5, page_token=token
        )
    )
    assert [upload.name for upload in page.uploads] == ["u_5", "u_4", "u_3", "u_2", "u_1"]


def test_an_offset_list_pages_through_everything_once() -> None:
    payers = [f"payer {n}" for n in range(5)]
    seen: list[str] = []
    token = ""
    while True:
        request = drift_service_pb2.ListPayerSummariesRequest(
            parent="customers/acme", page_size=2, page_token=token
        )
        page = standard_methods.offset_page(request).of(payers)
        seen += page.rows
        token = page.next_page_token
        if not token:
            break
    assert seen == payers


def test_an_offset_token_only_opens_the_parent_it_came_from() -> None:
    request = drift_service_pb2.ListPayerSummariesRequest(parent="customers/acme", page_size=2)
    token = standard_methods.offset_page(request).of(["a", "b", "c"]).next_page_token
    other = drift_service_pb2.ListPayerSummariesRequest(parent="customers/globex", page_token=token)
    error = refusal(lambda: standard_methods.offset_page(other))
    assert error.message == "page_token is not valid"
