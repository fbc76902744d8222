"""AIP-158 pagination: one page-size rule and one signed page-token codec for every list.

A token records where the previous page ended (the last sort key) and is signed with
HMAC-SHA256 under a server key over that position and the request it belongs to, so only
the request that was given a token can open it: one altered, cut short, made up, signed
under another key or used on another list, parent, filter or order is refused, always
with the same message.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import sqlalchemy as sa

from runtime import errors

Row = TypeVar("Row")
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
# Longer than any token this API issues (sort keys of up to four values of 50 characters,
# each JSON-escaped at worst), and the contract's limit on `page_token`; a cap keeps the
# checks below cheap.
MAX_TOKEN_LENGTH = 2000
MIN_KEY_LENGTH = 32
# The first byte of every token, so a later layout can be told apart from this one.
TOKEN_FORMAT = b"\x01"
SIGNATURE_BYTES = hashlib.sha256().digest_size


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


class PageTokens:
    """Page tokens under the server's keys: the first key signs, every key verifies, so a
    key is rotated by putting the new one first and dropping the old one later."""

    def __init__(self, keys: Sequence[str]) -> None:
        if not keys or any(len(key) < MIN_KEY_LENGTH for key in keys):
            raise ValueError(
                f"page tokens need at least one key, each of {MIN_KEY_LENGTH}+ characters"
            )
        self._keys = tuple(key.encode() for key in keys)

    def encode(self, position: Sequence[Any], binding: bytes) -> str:
        """The token of the page after `position`, for the request `binding` stands for."""
        payload = json.dumps(
            list(position), separators=(",", ":"), default=str, ensure_ascii=False
        ).encode()
        return _text(TOKEN_FORMAT + _signature(self._keys[0], binding, payload) + payload)

    def decode(
        self, token: str, binding: bytes, *, key_length: int, field: str = "page_token"
    ) -> list[Any] | None:
        """The position a token was made at: None for the first page (no token), else
        INVALID_ARGUMENT unless the token was issued for `binding` and holds a position of
        `key_length` values (the list's sort key)."""
        if not token:
            return None
        position = self._verified(token, binding)
        if not isinstance(position, list) or len(position) != key_length:
            raise errors.invalid_argument(
                "page_token is not valid",
                errors.FieldViolation(
                    field, "use the next_page_token of the previous page of this same request"
                ),
            )
        return position

    def _verified(self, token: str, binding: bytes) -> Any:
        """The decoded position of a token signed under one of the keys, else None."""
        if len(token) > MAX_TOKEN_LENGTH:
            return None
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except ValueError:
            return None
        # Only the one spelling this codec writes: no padding, stray characters or spare bits.
        if _text(raw) != token or raw[:1] != TOKEN_FORMAT:
            return None
        signature = raw[1 : 1 + SIGNATURE_BYTES]
        payload = raw[1 + SIGNATURE_BYTES :]
        if not any(
            hmac.compare_digest(signature, _signature(key, binding, payload)) for key in self._keys
        ):
            return None
        return json.loads(payload)


def _signature(key: bytes, binding: bytes, payload: bytes) -> bytes:
    # The binding's digest has a fixed length, so binding and payload cannot run into each other.
    signed = TOKEN_FORMAT + hashlib.sha256(binding).digest() + payload
    return hmac.new(key, signed, hashlib.sha256).digest()


def _text(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@dataclass(frozen=True)
class Page(Generic[Row]):
    """One page of a list: its rows and the token of the next page ('' on the last)."""

    rows: list[Row]
    next_page_token: str


async def keyset_page(
    request: Any,
    fetch: Callable[[int, list[Any] | None], Awaitable[Sequence[Row]]],
    position: Callable[[Row], list[Any]],
    tokens: PageTokens,
    binding: bytes,
    *,
    key_length: int,
) -> Page[Row]:
    """The page a List request asks for, by keyset: `fetch(limit, after)` returns up to
    `limit` rows after the position `after` (None for the first page), in list order, and
    `position(row)` is where a row stands in that order (`key_length` values). The request's
    `page_size` and `page_token` are checked here; `binding` names the request a token
    belongs to."""
    size = page_size(request.page_size)
    after = tokens.decode(request.page_token, binding, key_length=key_length)
    rows = list(await fetch(size + 1, after))
    if len(rows) <= size:
        return Page(rows, "")
    return Page(rows[:size], tokens.encode(position(rows[size - 1]), binding))


def after_position(columns: Sequence[Any], values: Sequence[Any], *, descending: bool) -> Any:
    """The SQL condition of a keyset page: rows strictly after `values`, the sort key of the
    row the previous page ended on, in the order of `columns`."""
    key = sa.tuple_(*columns)
    position = sa.tuple_(*(sa.literal(v) for v in values))
    return key < position if descending else key > position
