"""The bodies of the standard methods every service has (AIP-131 Get, AIP-132 List): the
resource name parsed, NOT_FOUND for a row that is not there, one page of a list with its
signed page token."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from google.protobuf.message import Message as ProtoMessage

from runtime import errors, names, pagination

CUSTOMER = "customers/{customer}"

Row = TypeVar("Row")
Message = TypeVar("Message")
Response = TypeVar("Response")

_page_tokens: pagination.PageTokens | None = None


def sign_page_tokens_with(keys: Sequence[str]) -> None:
    """Set the keys this process signs and verifies page tokens with
    (`Settings.page_token_keys`), once at start-up, before any List is served."""
    global _page_tokens
    _page_tokens = pagination.PageTokens(keys)


def _tokens() -> pagination.PageTokens:
    if _page_tokens is None:
        raise RuntimeError("page token keys are not set; call sign_page_tokens_with at start-up")
    return _page_tokens


def _binding(request: ProtoMessage) -> bytes:
    """What a page token is bound to: the List method and every field of its request but the
    page's size and token (parent, filter, order, and any field that changes the result)."""
    scope = type(request)()
    scope.CopyFrom(request)
    scope.ClearField("page_size")
    scope.ClearField("page_token")
    scope.DiscardUnknownFields()
    # A message's full name has no newline, so the name ends where the fields begin.
    return f"{scope.DESCRIPTOR.full_name}\n".encode() + scope.SerializeToString(deterministic=True)


def customer_of(name: str, *, field: str = "parent") -> str:
    """The customer of a `customers/{customer}` name; INVALID_ARGUMENT naming `field` else."""
    return names.parse(name, CUSTOMER, field=field)["customer"]


async def get_resource(
    name: str,
    pattern: str,
    fetch: Callable[..., Awaitable[Row | None]],
    message: Callable[[Row], Message],
    *,
    field: str = "name",
) -> Message:
    """`fetch(*variables of name under pattern)` as a message; NOT_FOUND when it is None
    (another tenant's resource included, so existence does not leak). A name that does not
    fit is INVALID_ARGUMENT naming the request's `field`."""
    row = await fetch(*names.parse(name, pattern, field=field).values())
    if row is None:
        raise errors.not_found(name)
    return message(row)


async def list_resources(
    request: Any,
    response: Callable[..., Response],
    field: str,
    fetch: Callable[..., Awaitable[Sequence[Row]]],
    position: Callable[[Row], list[Any]],
    message: Callable[[Row], Any],
    *,
    parent: str = CUSTOMER,
    key_length: int = 2,
) -> Response:
    """One page of a List: `fetch(*variables of request.parent, request.filter, limit,
    after)` returns up to `limit` rows after the position `after` (None on the first page);
    `position(row)` is where a row stands in the list's order, as `key_length` values (most
    lists sort by a time and an id). The response carries the rows as `message`s in `field`,
    and the next page's token."""
    variables = names.parse(request.parent, parent, field="parent").values()
    page = await pagination.keyset_page(
        request,
        lambda limit, after: fetch(*variables, request.filter, limit, after),
        position,
        _tokens(),
        _binding(request),
        key_length=key_length,
    )
    return response(
        **{field: [message(row) for row in page.rows]}, next_page_token=page.next_page_token
    )


@dataclass(frozen=True)
class OffsetPage:
    """Where one page of a list that is computed whole for every request starts."""

    request: ProtoMessage
    offset: int
    size: int

    def of(self, items: Sequence[Row]) -> pagination.Page[Row]:
        """This page of `items`, with the token of the next page ('' on the last)."""
        end = self.offset + self.size
        token = _tokens().encode([end], _binding(self.request)) if end < len(items) else ""
        return pagination.Page(list(items[self.offset : end]), token)

    def of_window(self, items: Sequence[Row]) -> pagination.Page[Row]:
        """This page from `items` read from `offset` with a limit of `size + 1` (the extra
        row says whether a next page exists)."""
        token = (
            _tokens().encode([self.offset + self.size], _binding(self.request))
            if len(items) > self.size
            else ""
        )
        return pagination.Page(list(items[: self.size]), token)


def offset_page(request: Any) -> OffsetPage:
    """The page a List request over a computed list asks for, its `page_size` and
    `page_token` checked before the list is computed."""
    size = pagination.page_size(request.page_size)
    after = _tokens().decode(request.page_token, _binding(request), key_length=1)
    return OffsetPage(request, int(after[0]) if after else 0, size)


async def etag_precondition(
    etag: str, name: str, load: Callable[[], Awaitable[Any]], etag_of: Callable[[Any], str]
) -> Any:
    """For a delete that may name an etag (AIP-154): the stored `update_time` the row must
    still have when it is deleted, or None when no etag was given. NOT_FOUND when the row is
    gone, ABORTED (stale) when the etag is not its own."""
    if not etag:
        return None
    current = await load()
    if current is None:
        raise errors.not_found(name)
    if etag != etag_of(current):
        raise errors.stale(name)
    return current.update_time
