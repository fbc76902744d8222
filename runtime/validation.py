"""Every request message checked once, where it enters, by what its protos say.

`check_request` walks a message by its descriptor: strings hold no control characters and
keep to their lengths, enums hold numbers their enum defines, integers, item counts, dates
and timestamps stay in range, and output-only fields of the resource a request carries are
cleared (AIP-203). The rules and their defaults are documented in
`protos/upstream/api/v1/field_limits.proto`, whose `field_limits` option states a field's
own limits. The plan of each message type is built once; bytes are never scanned, so
upload chunks cost next to nothing.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

from google.api import field_behavior_pb2, resource_pb2
from google.protobuf import descriptor
from google.protobuf.message import Message

from runtime import errors
from upstream.api.v1 import field_limits_pb2

DEFAULT_MAX_LENGTH = 1000
RESOURCE_NAME_MAX_LENGTH = 500
MAX_LENGTH_BY_FIELD_NAME = {"filter": 2000, "order_by": 200, "page_token": 2000}
RESOURCE_NAME_FIELDS = frozenset({"name", "parent"})
# Filters are expressions people write and paste; line breaks in them are whitespace.
MULTILINE_FIELD_NAMES = frozenset({"filter"})
DEFAULT_MAX_ITEMS = 1000
DEFAULT_MIN_YEAR = 1900
DEFAULT_MAX_YEAR = 2199
# A request this broken is told its first problems; walking on would only cost time.
MAX_VIOLATIONS = 10

_CONTROL = re.compile(r"[\x00-\x1f]")
_CONTROL_BUT_WHITESPACE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_NOT_PRINTABLE_ASCII = re.compile(r"[^\x20-\x7e]")

# A problem with one value, as (description, reason); None when the value is fine.
Problem = tuple[str, str] | None
ValueCheck = Callable[[Any], Problem]


def check_request(message: Message) -> None:
    """Refuse a request whose fields break the contract (INVALID_ARGUMENT, one field
    violation per problem) and clear the output-only fields a client set."""
    found: list[errors.FieldViolation] = []
    _check_message(message, "", _plan(message.DESCRIPTOR, clear_output_only=True), found)
    if found:
        first = found[0]
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise errors.invalid_argument(f"{first.field} {first.description}{more}", *found)


@dataclass(frozen=True)
class _FieldPlan:
    """How one field is checked: `value` checks a scalar (string, integer, enum, date,
    timestamp) and `nested` names the message type walked into; a map has both for its
    values, and `key` for its keys."""

    value: ValueCheck | None
    nested: descriptor.Descriptor | None
    repeated: bool
    # Set explicitly, even to zero (a message, `optional`, a oneof member).
    has_presence: bool
    max_items: int
    key: ValueCheck | None = None
    is_map: bool = False


@dataclass(frozen=True)
class _MessagePlan:
    fields: dict[str, _FieldPlan]
    output_only: frozenset[str]
    # Whether messages nested through singular fields clear their output-only fields too.
    clear_output_only: bool


@cache
def _plan(message_type: descriptor.Descriptor, *, clear_output_only: bool) -> _MessagePlan:
    fields: dict[str, _FieldPlan] = {}
    output_only: set[str] = set()
    for field in message_type.fields:
        options = field.GetOptions()
        behaviors = options.Extensions[field_behavior_pb2.field_behavior]
        if clear_output_only and field_behavior_pb2.OUTPUT_ONLY in behaviors:
            output_only.add(field.name)
            continue
        plan = _field_plan(field, options)
        if plan is not None:
            fields[field.name] = plan
    return _MessagePlan(fields, frozenset(output_only), clear_output_only)


def _field_plan(field: descriptor.FieldDescriptor, options: Any) -> _FieldPlan | None:
    limits = options.Extensions[field_limits_pb2.field_limits]
    max_items = limits.max_items or DEFAULT_MAX_ITEMS
    entry = field.message_type
    if entry is not None and entry.GetOptions().map_entry:
        key_field, value_field = entry.fields_by_name["key"], entry.fields_by_name["value"]
        return _FieldPlan(
            value=_value_check(value_field, limits, name=field.name),
            nested=_nested_type(value_field),
            repeated=True,
            has_presence=False,
            max_items=max_items,
            key=_value_check(key_field, limits, name=field.name),
            is_map=True,
        )
    value = _value_check(field, limits)
    nested = _nested_type(field)
    if value is None and nested is None:
        return None
    return _FieldPlan(value, nested, field.is_repeated, field.has_presence, max_items)


def _nested_type(field: descriptor.FieldDescriptor) -> descriptor.Descriptor | None:
    message_type = field.message_type
    if message_type is None or message_type.full_name in _MESSAGE_CHECKS:
        return None
    return message_type


def _value_check(
    field: descriptor.FieldDescriptor, limits: Any, *, name: str | None = None
) -> ValueCheck | None:
    """The check of one value of `field` (`name`: the map field, for its keys and values)."""
    name = name or field.name
    if field.type == descriptor.FieldDescriptor.TYPE_STRING:
        return _string_check(
            limits.max_length or _default_max_length(field, name),
            printable_ascii=limits.printable_ascii,
            multiline=limits.multiline or name in MULTILINE_FIELD_NAMES,
        )
    if field.type == descriptor.FieldDescriptor.TYPE_ENUM:
        return _enum_check(field.enum_type)
    if field.cpp_type in _INTEGER_TYPES and (
        limits.HasField("min_int") or limits.HasField("max_int")
    ):
        return _integer_check(
            limits.min_int if limits.HasField("min_int") else None,
            limits.max_int if limits.HasField("max_int") else None,
        )
    if field.message_type is not None and field.message_type.full_name in _MESSAGE_CHECKS:
        make = _MESSAGE_CHECKS[field.message_type.full_name]
        return make(limits.min_year or DEFAULT_MIN_YEAR, limits.max_year or DEFAULT_MAX_YEAR)
    return None


def _default_max_length(field: descriptor.FieldDescriptor, name: str) -> int:
    if name in MAX_LENGTH_BY_FIELD_NAME:
        return MAX_LENGTH_BY_FIELD_NAME[name]
    if name in RESOURCE_NAME_FIELDS or field.GetOptions().HasExtension(
        resource_pb2.resource_reference
    ):
        return RESOURCE_NAME_MAX_LENGTH
    return DEFAULT_MAX_LENGTH


def _string_check(max_length: int, *, printable_ascii: bool, multiline: bool) -> ValueCheck:
    if printable_ascii:
        forbidden, allowed = _NOT_PRINTABLE_ASCII, "must be printable ASCII (U+0020–U+007E)"
    elif multiline:
        forbidden = _CONTROL_BUT_WHITESPACE
        allowed = "must not contain control characters other than tab and line breaks"
    else:
        forbidden, allowed = _CONTROL, "must not contain control characters"

    def check(value: str) -> Problem:
        if len(value) > max_length:
            return f"must be at most {max_length} characters, got {len(value)}", "TOO_LONG"
        bad = forbidden.search(value)
        if bad is not None:
            found = f"U+{ord(bad.group()):04X} at character {bad.start() + 1}"
            return f"{allowed}; found {found}", "FORBIDDEN_CHARACTER"
        return None

    return check


def _enum_check(enum_type: descriptor.EnumDescriptor) -> ValueCheck:
    numbers = frozenset(v.number for v in enum_type.values)
    names = ", ".join(v.name for v in enum_type.values)

    def check(value: int) -> Problem:
        if value in numbers:
            return None
        return f"must be one of {names}, got {value}", "UNKNOWN_ENUM_VALUE"

    return check


def _integer_check(lowest: int | None, highest: int | None) -> ValueCheck:
    if lowest is not None and highest is not None:
        expected = f"must be between {lowest} and {highest}"
    elif lowest is not None:
        expected = f"must be at least {lowest}"
    else:
        expected = f"must be at most {highest}"

    def check(value: int) -> Problem:
        if (lowest is not None and value < lowest) or (highest is not None and value > highest):
            return f"{expected}, got {value}", "OUT_OF_RANGE"
        return None

    return check


def _date_check(min_year: int, max_year: int) -> ValueCheck:
    def check(value: Any) -> Problem:
        year, month, day = value.year, value.month, value.day
        given = f"{year:04d}-{month:02d}-{day:02d}"
        if not min_year <= year <= max_year:
            return f"must lie in the years {min_year}–{max_year}, got {given}", "OUT_OF_RANGE"
        if not 1 <= month <= 12 or not 1 <= day <= calendar.monthrange(year, month)[1]:
            return f"must be a calendar date, got {given}", "INVALID_DATE"
        return None

    return check


def _timestamp_check(min_year: int, max_year: int) -> ValueCheck:
    earliest = calendar.timegm((min_year, 1, 1, 0, 0, 0))
    after_latest = calendar.timegm((max_year + 1, 1, 1, 0, 0, 0))

    def check(value: Any) -> Problem:
        if not earliest <= value.seconds < after_latest:
            return (
                f"must lie in the years {min_year}–{max_year}, got {value.seconds} seconds "
                "from 1970-01-01T00:00:00Z",
                "OUT_OF_RANGE",
            )
        if not 0 <= value.nanos <= 999_999_999:
            return f"nanos must be 0–999999999, got {value.nanos}", "OUT_OF_RANGE"
        return None

    return check


_INTEGER_TYPES = frozenset(
    {
        descriptor.FieldDescriptor.CPPTYPE_INT32,
        descriptor.FieldDescriptor.CPPTYPE_INT64,
        descriptor.FieldDescriptor.CPPTYPE_UINT32,
        descriptor.FieldDescriptor.CPPTYPE_UINT64,
    }
)
# Well-known messages checked as one value rather than walked into.
_MESSAGE_CHECKS: dict[str, Callable[[int, int], ValueCheck]] = {
    "google.type.Date": _date_check,
    "google.protobuf.Timestamp": _timestamp_check,
}


def _check_message(
    message: Message, prefix: str, plan: _MessagePlan, found: list[errors.FieldViolation]
) -> None:
    for name in plan.output_only:
        message.ClearField(name)
    # Only planned fields are read: bytes (upload chunks) are never even copied out.
    for name, field_plan in plan.fields.items():
        if field_plan.has_presence and not message.HasField(name):
            continue
        value = getattr(message, name)
        # Without presence, the zero value (0, "", no items) is "not set" and passes.
        if not field_plan.has_presence and not value:
            continue
        path = prefix + name
        if field_plan.is_map:
            _check_map(value, path, field_plan, found)
        elif field_plan.repeated:
            _check_repeated(value, path, field_plan, found)
        else:
            _check_value(value, path, field_plan, plan.clear_output_only, found)
        if len(found) >= MAX_VIOLATIONS:
            return


def _check_value(
    value: Any,
    path: str,
    field_plan: _FieldPlan,
    clear_output_only: bool,
    found: list[errors.FieldViolation],
) -> None:
    if field_plan.value is not None:
        problem = field_plan.value(value)
        if problem is not None:
            found.append(errors.FieldViolation(path, *problem))
    elif field_plan.nested is not None:
        nested = _plan(field_plan.nested, clear_output_only=clear_output_only)
        _check_message(value, path + ".", nested, found)


def _too_many(
    values: Any, path: str, field_plan: _FieldPlan, found: list[errors.FieldViolation]
) -> bool:
    if len(values) <= field_plan.max_items:
        return False
    found.append(
        errors.FieldViolation(
            path,
            f"must have at most {field_plan.max_items} items, got {len(values)}",
            "TOO_MANY_ITEMS",
        )
    )
    return True


def _check_repeated(
    values: Any, path: str, field_plan: _FieldPlan, found: list[errors.FieldViolation]
) -> None:
    if _too_many(values, path, field_plan, found):
        return
    # Repeated resources are a batch handed over as stored: their output fields are data.
    for index, value in enumerate(values):
        _check_value(value, f"{path}[{index}]", field_plan, False, found)
        if len(found) >= MAX_VIOLATIONS:
            return


def _check_map(
    entries: Any, path: str, field_plan: _FieldPlan, found: list[errors.FieldViolation]
) -> None:
    if _too_many(entries, path, field_plan, found):
        return
    for key, value in entries.items():
        problem = field_plan.key(key) if field_plan.key is not None else None
        if problem is not None:
            description, reason = problem
            found.append(errors.FieldViolation(path, f"a key {description}", reason))
        else:
            _check_value(value, f"{path}[{errors.client_text(str(key))}]", field_plan, False, found)
        if len(found) >= MAX_VIOLATIONS:
            return
