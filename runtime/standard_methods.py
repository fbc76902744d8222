"""The bodies of the standard methods every service has (AIP-131 Get, AIP-132 List): the
resource name parsed, NOT_FOUND for a row that is not there, one keyset page of a list."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from runtime import errors, names, pagination

CUSTOMER = "customers/{customer}"

Row = TypeVar("Row")
Message = TypeVar("Message")
Response = TypeVar("Response")


def customer_of(name: str, *, field: str = "parent") -> str:
    """The customer of a `customers/{customer}` name; INVALID_ARGUMENT naming `field` else."""
    return names.parse(name, CUSTOMER, field=field)["customer"]


async def get_resource(
    name: str,
    pattern: str,
    fetch: Callable[..., Awaitable[Row | None]],
    message: Callable[[Row], Message],
) -> Message:
    """`fetch(*variables of name under pattern)` as a message; NOT_FOUND when it is None
    (another tenant's resource included, so existence does not leak)."""
    row = await fetch(*names.parse(name, pattern).values())
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
    order_by: str = "",
) -> Response:
    """One page of a List: `fetch(*variables of request.parent, request.filter, limit,
    after)` returns up to `limit` rows after the position `after` (None on the first page);
    `position(row)` is where a row stands in the list's order. The response carries the rows
    as `message`s in `field`, and the next page's token."""
    variables = names.parse(request.parent, parent, field="parent").values()
    page = await pagination.keyset_page(
        request,
        lambda limit, after: fetch(*variables, request.filter, limit, after),
        position,
        request.parent,
        request.filter,
        order_by,
    )
    return response(
        **{field: [message(row) for row in page.rows]}, next_page_token=page.next_page_token
    )
