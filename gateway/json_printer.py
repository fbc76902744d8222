"""Messages as proto3 JSON objects, as `json_format.MessageToDict(message,
always_print_fields_with_no_presence=True)` prints them, several times faster.

`json_format` decides, for every field of every message it prints, what kind of field it is
and how to print it. Here that is decided once per message type: a printer is a list of
(field number → JSON name, converter) built from the descriptor the first time the type is
printed, and printing a message is `ListFields()` (set fields, in C) through those
converters over a copy of the type's default values. Well-known types other than Timestamp
(Any, Struct, Value, Duration, FieldMask, wrappers…) and any message with an extension are
printed by `json_format` itself, as is a message with an enum whose values carry options,
so rarely met corners keep its exact behaviour.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Callable
from typing import Any

from google.protobuf import descriptor, json_format, message
from google.protobuf.internal import type_checkers

FieldDescriptor = descriptor.FieldDescriptor
Converter = Callable[[Any], Any]

_INT64 = frozenset(
    {FieldDescriptor.CPPTYPE_INT64, FieldDescriptor.CPPTYPE_UINT64}
)  # printed as strings
_TIMESTAMP = "google.protobuf.Timestamp"
_printers: dict[str, Callable[[message.Message], dict[str, Any]]] = {}


def message_to_dict(value: message.Message) -> Any:
    """`value` as a proto3 JSON object (a string, for a Timestamp), fields with no presence
    printed at their default."""
    return printer(value.DESCRIPTOR)(value)


def _by_json_format(value: message.Message) -> Any:
    return json_format.MessageToDict(value, always_print_fields_with_no_presence=True)


def _is_special(message_descriptor: descriptor.Descriptor) -> bool:
    """A type `json_format` prints in its own way (well-known types and wrappers)."""
    return message_descriptor.full_name.startswith("google.protobuf.")


def _has_enum_value_options(message_descriptor: descriptor.Descriptor) -> bool:
    """A field's enum has a value with options (`pb.enumvalue.json` may rename it in
    JSON): json_format knows them, the printers here do not."""
    return any(
        value.has_options and value.GetOptions().ListFields()
        for field in message_descriptor.fields
        if field.enum_type is not None
        for value in field.enum_type.values
    )


def printer(message_descriptor: descriptor.Descriptor) -> Callable[[message.Message], Any]:
    """The printer of one message type, built once."""
    found = _printers.get(message_descriptor.full_name)
    if found is not None:
        return found
    if message_descriptor.full_name == _TIMESTAMP:
        built: Callable[[message.Message], Any] = _timestamp
    elif _is_special(message_descriptor) or _has_enum_value_options(message_descriptor):
        built = _by_json_format
    else:
        built = _regular(message_descriptor)
    _printers[message_descriptor.full_name] = built
    return built


def _timestamp(value: Any) -> str:
    return str(value.ToJsonString())


def _regular(message_descriptor: descriptor.Descriptor) -> Callable[[message.Message], Any]:
    fields = message_descriptor.fields
    if all(_plain(field) for field in fields):
        # Every field printed, each read straight off the message (google.type.Date, say).
        plain = [(f.json_name, f.name, _single(f)) for f in fields]
        return lambda value: {
            name: convert(getattr(value, attribute)) for name, attribute, convert in plain
        }
    # Keyed by the field descriptors `ListFields` returns: an extension is not among them.
    plans: dict[descriptor.FieldDescriptor, tuple[str, Converter]] = {}
    defaults: dict[str, Any] = {}
    repeated: list[str] = []
    maps: list[str] = []
    for field in fields:
        plans[field] = (field.json_name, _converter(field))
        if field.has_presence:
            continue
        if _is_map(field):
            maps.append(field.json_name)
        elif field.is_repeated:
            repeated.append(field.json_name)
        # A list's or map's place is kept here (a new one is put in it for each message), so
        # the fields come out in the order the message declares them.
        defaults[field.json_name] = (
            None if field.is_repeated else _single(field)(field.default_value)
        )

    def print_message(value: message.Message) -> dict[str, Any]:
        js = dict(defaults)
        for name in repeated:
            js[name] = []
        for name in maps:
            js[name] = {}
        for field, field_value in value.ListFields():
            plan = plans.get(field)
            if plan is None:
                return dict(_by_json_format(value))
            js[plan[0]] = plan[1](field_value)
        return js

    return print_message


def _plain(field: descriptor.FieldDescriptor) -> bool:
    """A field always printed and printed as it reads: a singular scalar without presence."""
    return not (
        field.has_presence
        or field.is_repeated
        or field.cpp_type in (FieldDescriptor.CPPTYPE_MESSAGE, FieldDescriptor.CPPTYPE_ENUM)
    )


def _is_map(field: descriptor.FieldDescriptor) -> bool:
    return bool(
        field.type == FieldDescriptor.TYPE_MESSAGE
        and field.message_type.has_options
        and field.message_type.GetOptions().map_entry
    )


def _converter(field: descriptor.FieldDescriptor) -> Converter:
    if _is_map(field):
        value_field = field.message_type.fields_by_name["value"]
        convert_value = _single(value_field)
        bool_keys = field.message_type.fields_by_name["key"].type == FieldDescriptor.TYPE_BOOL

        def convert_map(values: Any) -> dict[str, Any]:
            return {
                (("true" if key else "false") if bool_keys else str(key)): convert_value(
                    values[key]
                )
                for key in values
            }

        return convert_map
    convert = _single(field)
    if field.is_repeated:
        return lambda values: [convert(v) for v in values]
    return convert


def _identity(value: Any) -> Any:
    return value


def _single(field: descriptor.FieldDescriptor) -> Converter:
    """How one value of `field` (one element, for a repeated field) is printed."""
    cpp_type = field.cpp_type
    if cpp_type == FieldDescriptor.CPPTYPE_MESSAGE:
        return _message(field.message_type)
    if cpp_type == FieldDescriptor.CPPTYPE_ENUM:
        return _enum(field)
    if cpp_type == FieldDescriptor.CPPTYPE_STRING:
        if field.type == FieldDescriptor.TYPE_BYTES:
            return lambda value: base64.b64encode(value).decode("utf-8")
        return str
    if cpp_type == FieldDescriptor.CPPTYPE_BOOL:
        return bool
    if cpp_type in _INT64:
        return str
    if cpp_type == FieldDescriptor.CPPTYPE_DOUBLE:
        return _double
    if cpp_type == FieldDescriptor.CPPTYPE_FLOAT:
        return _float
    return _identity


def _message(message_type: descriptor.Descriptor) -> Converter:
    """The nested type's printer, looked up when first used (a type may hold itself)."""
    found: list[Callable[[message.Message], Any]] = []

    def convert(value: message.Message) -> Any:
        if not found:
            found.append(printer(message_type))
        return found[0](value)

    return convert


def _enum(field: descriptor.FieldDescriptor) -> Converter:
    enum_type = field.enum_type
    if enum_type.full_name == "google.protobuf.NullValue":
        return lambda value: None
    names = {number: value.name for number, value in enum_type.values_by_number.items()}
    closed = enum_type.is_closed

    def convert(value: int) -> Any:
        name = names.get(value)
        if name is not None:
            return name
        if closed:
            raise json_format.SerializeToJsonError(
                "Enum field contains an integer value which can not mapped to an enum value."
            )
        return value

    return convert


def _special_number(value: float) -> str | None:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "-Infinity" if value < 0 else "Infinity"
    return None


def _double(value: float) -> Any:
    if value - value == 0.0:  # finite: the common case in one comparison
        return value
    return _special_number(value)


def _float(value: float) -> Any:
    if value - value == 0.0:
        return type_checkers.ToShortestFloat(value)
    return _special_number(value)
