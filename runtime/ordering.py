"""AIP-132 `order_by` for every list: one field of those the list allows, ascending unless
followed by ` desc`, refused with INVALID_ARGUMENT naming the choices otherwise.

A list in SQL sorts by a `SortKey` expression and then its id (keyset pages, see
runtime.pagination); a page token carries the last row's key as JSON, which `SortKey`
writes and reads back. A list computed whole sorts its items in Python by the field
`parse_order_by` returns.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncEngine

from runtime import errors
from runtime.filtering import FilterField, parse_filter
from runtime.notified_cache import NotifiedCache
from runtime.pagination import after_position

Key = TypeVar("Key")
SORT_KEY = "sort_key"
_LOWEST_TIME = dt.datetime(1, 1, 1, tzinfo=dt.UTC)
_LOWEST_DATE = dt.date(1, 1, 1)


@dataclass(frozen=True)
class Order(Generic[Key]):
    """The field a list is ordered by, how to sort by it, and the direction."""

    field: str
    key: Key
    descending: bool


def parse_order_by(text: str, keys: Mapping[str, Key], default: str) -> Order[Key]:
    """`text` (or `default` when empty) as an Order of one of `keys`."""
    field, _, direction = (text.strip() or default).partition(" ")
    direction = direction.strip().lower()
    if field not in keys or direction not in ("", "asc", "desc"):
        choices = ", ".join(keys)
        raise errors.invalid_argument(
            f"order_by {text!r} is not supported: order by one of {choices}",
            errors.FieldViolation("order_by", f"one of {choices}, optionally followed by ' desc'"),
        )
    return Order(field, keys[field], direction == "desc")


@dataclass(frozen=True)
class SortKey:
    """A SQL sort expression (never NULL: keyset comparisons need a value) and how its
    value goes into a page token and comes back."""

    expression: Any
    to_token: Callable[[Any], Any] = lambda value: value
    from_token: Callable[[Any], Any] = lambda value: value


def _constant(value: Any) -> Any:
    """`value` written into the SQL, not sent as a parameter: a sort expression is then the
    same text in every query, and PostgreSQL can read it from an index on that expression
    (`coalesce(decision_date, '0001-01-01')` of the claims, say)."""
    return sa.literal(value, literal_execute=True)


def time_key(column: Any) -> SortKey:
    """A timestamp; a missing one sorts as the lowest."""
    return SortKey(
        sa.func.coalesce(column, _constant(_LOWEST_TIME)),
        dt.datetime.isoformat,
        dt.datetime.fromisoformat,
    )


def date_key(column: Any) -> SortKey:
    """A date; a missing one sorts as the lowest."""
    return SortKey(
        sa.func.coalesce(column, _constant(_LOWEST_DATE)),
        dt.date.isoformat,
        dt.date.fromisoformat,
    )


def number_key(column: Any) -> SortKey:
    """An integer; a missing one sorts as the lowest."""
    return SortKey(sa.func.coalesce(column, _constant(-(2**62))), int, int)


def rank_key(column: Any, names: Sequence[str]) -> SortKey:
    """An enum stored by name, sorted by its place in `names` (e.g. severity LOW < HIGH)."""
    ranks = {name: rank for rank, name in enumerate(names, start=1)}
    return SortKey(sa.func.coalesce(sa.case(ranks, value=column), 0), int, int)


def text_key(column: Any) -> SortKey:
    return SortKey(sa.func.coalesce(column, _constant("")), str, str)


def ordered(
    query: sa.Select[Any], order: Order[SortKey], tiebreak: Any, after: Sequence[Any] | None
) -> sa.Select[Any]:
    """`query` sorted by `order` then `tiebreak` (both in its direction), with the sort key
    selected as `sort_key`, starting after the position `after` of the previous page."""
    key = order.key.expression
    query = query.add_columns(key.label(SORT_KEY)).order_by(
        key.desc() if order.descending else key.asc(),
        tiebreak.desc() if order.descending else tiebreak.asc(),
    )
    if after is None:
        return query
    position = (order.key.from_token(after[0]), after[1])
    return query.where(after_position((key, tiebreak), position, descending=order.descending))


async def fetch_page(
    engine: AsyncEngine,
    query: sa.Select[Any],
    order: Order[SortKey],
    tiebreak: Any,
    limit: int,
    after: Sequence[Any] | None,
) -> list[Row[Any]]:
    """Up to `limit` rows of `query` after `after`, `ordered`."""
    async with engine.connect() as connection:
        result = await connection.execute(ordered(query, order, tiebreak, after).limit(limit))
        return list(result.all())


async def kept_page(
    cache: NotifiedCache[Any],
    engine: AsyncEngine,
    table: sa.Table,
    filters: Mapping[str, FilterField],
    tiebreak: Any,
    customer: str,
    filter_text: str,
    order: Order[SortKey],
    limit: int,
    after: Sequence[Any] | None,
) -> list[Row[Any]]:
    """`fetch_page` of the rows of `table` that are `customer`'s and that `filter_text`
    selects (by `filters`), kept in `cache` until the customer's data changes."""

    async def read() -> list[Row[Any]]:
        query = sa.select(table).where(
            table.c.customer_id == customer, parse_filter(filter_text, filters)
        )
        return await fetch_page(engine, query, order, tiebreak, limit, after)

    key = (filter_text, order.field, order.descending, limit, tuple(after or ()))
    return await cache.get(customer, key, read)


def position(order: Order[SortKey], row: Any, tiebreak: str) -> list[Any]:
    """Where `row` (selected by `ordered`) stands: its sort key and its id."""
    return [order.key.to_token(getattr(row, SORT_KEY)), getattr(row, tiebreak)]
