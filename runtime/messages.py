"""Python values as the well-known protobuf messages every service returns: dates, times,
money in cents, and optional message fields; messages of rows kept per version."""

from __future__ import annotations

import datetime as dt
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

from google.protobuf import timestamp_pb2
from google.type import date_pb2, money_pb2

from runtime import errors

Message = TypeVar("Message")
M = TypeVar("M")


def date_message(value: dt.date | None) -> date_pb2.Date | None:
    if value is None:
        return None
    return date_pb2.Date(year=value.year, month=value.month, day=value.day)


def python_date(value: date_pb2.Date, field: str) -> dt.date:
    """A request's date field as a date; INVALID_ARGUMENT naming `field` when it is not one."""
    try:
        return dt.date(value.year, value.month, value.day)
    except ValueError as exc:
        raise errors.invalid_argument(
            f"{field} is not a valid date", errors.FieldViolation(field, "a valid date is required")
        ) from exc


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)


def timestamp_message(value: dt.datetime | None) -> timestamp_pb2.Timestamp | None:
    """A time as a Timestamp, a naive one taken as UTC (as `Timestamp.FromDatetime` does,
    at a fraction of its cost: exports write one per claim)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    seconds, micros = divmod((value - _EPOCH) // _MICROSECOND, 1_000_000)
    return timestamp_pb2.Timestamp(seconds=seconds, nanos=micros * 1000)


def money_message(cents: int | None) -> money_pb2.Money | None:
    """US dollars from cents; units and nanos carry the same sign, as google.type.Money
    requires."""
    if cents is None:
        return None
    sign = -1 if cents < 0 else 1
    units, remainder = divmod(abs(cents), 100)
    return money_pb2.Money(
        currency_code="USD", units=sign * units, nanos=sign * remainder * 10_000_000
    )


def set_fields(message: Message, **fields: Any) -> Message:
    """Set message fields, skipping unset (None) values: message-typed fields are copied,
    scalars assigned."""
    for key, value in fields.items():
        if value is None:
            continue
        target = getattr(message, key)
        if hasattr(target, "CopyFrom"):
            target.CopyFrom(value)
        else:
            setattr(message, key, value)
    return message


class MessagesByVersion(Generic[M]):
    """`make(row)` kept per row and version, for lists read often: a page of 20 resources
    built anew on every read costs a service more than its query. Sound only for rows whose
    every change moves their version on (the version is their etag, which clients already
    rely on for If-None-Match). The messages are shared: a caller copies them into its
    response (as a repeated field's constructor does) and never changes them. The `most`
    recently used are kept."""

    def __init__(
        self, make: Callable[[Any], M], key: Callable[[Any], Hashable], most: int = 4096
    ) -> None:
        self._make, self._key, self._most = make, key, most
        self._kept: OrderedDict[Hashable, M] = OrderedDict()

    def __call__(self, row: Any) -> M:
        key = self._key(row)
        found = self._kept.get(key)
        if found is not None:
            self._kept.move_to_end(key)
            return found
        made = self._kept[key] = self._make(row)
        if len(self._kept) > self._most:
            self._kept.popitem(last=False)
        return made
