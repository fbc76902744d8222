"""AIP-158 pagination: one page-size rule and one opaque page-token codec for every list.

A token records where the previous page ended (the last sort key) and a fingerprint of the
request it belongs to, so a token reused with another filter or parent is refused rather
than silently giving the wrong page.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import sqlalchemy as sa

from runtime import errors

Row = TypeVar("Row")
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000


def page_size(requested: int, *, field: str = "page_size") -> int:
    """0 means the default; negative or above the maximum is INVALID_ARGUMENT."""
    if requested < 0 or requested > MAX_PAGE_SIZE:
        raise errors.invalid_argument(
            f"{field} must be between 0 and {MAX_PAGE_SIZE}, got {requested}",
            errors.FieldViolation(
                field, f"must be between 0 and {MAX_PAGE_SIZE} (0 means {DEFAULT_PAGE_SIZE})"
            ),
        )
    return requested or DEFAULT_PAGE_SIZE


@dataclass(frozen=True)
class PageToken:
    """The position after which the next page starts."""

    after: list[Any]


def _fingerprint(*request_parts: str) -> str:
    return hashlib.sha256("\x1f".join(request_parts).encode()).hexdigest()[:16]


def encode(after: list[Any], *request_parts: str) -> str:
    payload = {"a": after, "f": _fingerprint(*request_parts)}
    raw = json.dumps(payload, separators=(",", ":"), default=str).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(token: str, *request_parts: str, field: str = "page_token") -> PageToken | None:
    """None for the first page; INVALID_ARGUMENT for a token that is not ours or not for
    this request (another parent, filter or order)."""
    if not token:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        payload = json.loads(raw)
        after, fingerprint = payload["a"], payload["f"]
        if not isinstance(after, list):
            raise ValueError("bad position")
    # RecursionError: a crafted token of deeply nested JSON arrays.
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        raise errors.invalid_argument(
            "page_token is not valid", errors.FieldViolation(field, "not a token of this API")
        ) from exc
    if fingerprint != _fingerprint(*request_parts):
        raise errors.invalid_argument(
            "page_token belongs to a different request",
            errors.FieldViolation(field, "was issued for another parent, filter or order_by"),
        )
    return PageToken(after)


@dataclass(frozen=True)
class Page(Generic[Row]):
    """One page of a list: its rows and the token of the next page ('' on the last)."""

    rows: list[Row]
    next_page_token: str


async def keyset_page(
    request: Any,
    fetch: Callable[[int, list[Any] | None], Awaitable[Sequence[Row]]],
    position: Callable[[Row], list[Any]],
    *request_parts: str,
) -> Page[Row]:
    """The page a List request asks for, by keyset: `fetch(limit, after)` returns up to
    `limit` rows after the position `after` (None for the first page), in list order, and
    `position(row)` is where a row stands in that order. The request's `page_size` and
    `page_token` are checked here; `request_parts` (parent, filter, order) bind the token to
    the request."""
    size = page_size(request.page_size)
    token = decode(request.page_token, *request_parts)
    rows = list(await fetch(size + 1, token.after if token else None))
    if len(rows) <= size:
        return Page(rows, "")
    return Page(rows[:size], encode(position(rows[size - 1]), *request_parts))


def after_position(columns: Sequence[Any], values: Sequence[Any], *, descending: bool) -> Any:
    """The SQL condition of a keyset page: rows strictly after `values`, the sort key of the
    row the previous page ended on, in the order of `columns`."""
    key = sa.tuple_(*columns)
    position = sa.tuple_(*(sa.literal(v) for v in values))
    return key < position if descending else key > position
