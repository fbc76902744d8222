"""Python values as the well-known protobuf messages every service returns: dates, times,
money in cents, and optional message fields."""

from __future__ import annotations

import datetime as dt
from typing import Any, TypeVar

from google.protobuf import timestamp_pb2
from google.type import date_pb2, money_pb2

from runtime import errors

Message = TypeVar("Message")


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
