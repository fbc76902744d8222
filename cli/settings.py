"""Settings of a resource a customer has one of (the drift settings, the alert policy), as
the command line lists and changes them: a line `NAME  VALUE` a setting, and `NAME=VALUE`
to change one, the value written as it is listed. What is a setting comes from the proto:
the resource's fields a caller may set (not its name, output-only fields or its etag)."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Mapping
from typing import Any

from google.api import field_behavior_pb2
from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

_NOT_SET = (field_behavior_pb2.IDENTIFIER, field_behavior_pb2.OUTPUT_ONLY)
# A duration as people write it: 90s, 15m, 2h, 1d.
_DURATION = re.compile(r"(\d+)\s*([smhd])")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_TRUE, _FALSE = ("true", "yes", "on"), ("false", "no", "off")


def _behaviors(field: FieldDescriptor) -> list[int]:
    return list(field.GetOptions().Extensions[field_behavior_pb2.field_behavior])


def _input_only(field: FieldDescriptor) -> bool:
    return field_behavior_pb2.INPUT_ONLY in _behaviors(field)


class Settings:
    """The settings of `message` (a resource type), each `what` ("a drift setting").
    `shown` gives the listed text of a
    setting the resource never returns (an INPUT_ONLY one) from what it does return."""

    def __init__(
        self,
        message: type[Message],
        what: str,
        shown: Mapping[str, Callable[[Any], str]] | None = None,
    ) -> None:
        self.what = what
        descriptor: Descriptor = message.DESCRIPTOR
        self.fields = [
            field
            for field in descriptor.fields
            if field.name != "etag" and not set(_behaviors(field)) & set(_NOT_SET)
        ]
        self._shown = dict(shown or {})

    def names(self) -> list[str]:
        return [field.name for field in self.fields]

    def parse(self, text: str) -> tuple[str, Any]:
        """`NAME=VALUE` (argparse's type of it): the setting's name and its value in the
        proto3 JSON form; ArgumentTypeError saying what is wrong."""
        key, equals, raw = text.partition("=")
        fields = {field.name: field for field in self.fields}
        field = fields.get(key.strip())
        if not equals or field is None:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not NAME=VALUE of {self.what} ({', '.join(fields)})"
            )
        try:
            return field.name, _value(field, raw.strip())
        except (KeyError, ValueError):
            raise argparse.ArgumentTypeError(
                f"{field.name}: {raw.strip()!r} is not {_kind(field)}"
            ) from None

    def change(self, current: Message, settings: list[tuple[str, Any]]) -> Message:
        """A message of the resource holding the `settings`, to be sent with an update mask
        of their names, conditional on `current` as read (its etag)."""
        changed = type(current)(name=current.name, etag=current.etag)  # type: ignore[call-arg]
        fields = {field.name: field for field in self.fields}
        json_format.ParseDict({fields[name].json_name: value for name, value in settings}, changed)
        return changed

    def lines(self, resource: Message) -> list[str]:
        """`NAME  VALUE` a setting, the value as `parse` takes it (empty when unset)."""
        return [f"{field.name}  {self._text(resource, field)}".rstrip() for field in self.fields]

    def _text(self, resource: Message, field: FieldDescriptor) -> str:
        if field.name in self._shown:
            return self._shown[field.name](resource)
        if _input_only(field) or (field.has_presence and not resource.HasField(field.name)):
            return ""
        value = getattr(resource, field.name)
        if field.is_repeated:
            return ",".join(_scalar_text(field, item) for item in value)
        return _scalar_text(field, value)


def _scalar_text(field: FieldDescriptor, value: Any) -> str:
    if field.enum_type is not None:
        return str(field.enum_type.values_by_number[value].name)
    if field.message_type is not None and field.message_type.full_name == (
        "google.protobuf.Duration"
    ):
        return _duration_text(value.seconds)
    if field.type == field.TYPE_BOOL:
        return "true" if value else "false"
    return str(value)


def _duration_text(seconds: int) -> str:
    for unit in ("d", "h", "m"):
        if seconds and seconds % _SECONDS[unit] == 0:
            return f"{seconds // _SECONDS[unit]}{unit}"
    return f"{seconds}s"


def _value(field: FieldDescriptor, raw: str) -> Any:
    """The value of a setting as written, in the proto3 JSON form; KeyError or ValueError
    when it is not one."""
    if field.is_repeated:
        return [_scalar(field, item.strip()) for item in raw.split(",") if item.strip()]
    return _scalar(field, raw)


def _scalar(field: FieldDescriptor, raw: str) -> Any:
    if field.enum_type is not None:
        if not field.enum_type.values_by_name[raw].number:
            raise KeyError(raw)
        return raw
    if field.message_type is not None:
        if field.message_type.full_name != "google.protobuf.Duration":
            raise ValueError(raw)
        found = _DURATION.fullmatch(raw.lower())
        if found is None:
            raise ValueError(raw)
        return f"{int(found[1]) * _SECONDS[found[2]]}s"
    if field.type == field.TYPE_BOOL:
        if raw.lower() not in _TRUE + _FALSE:
            raise ValueError(raw)
        return raw.lower() in _TRUE
    if field.type in (field.TYPE_DOUBLE, field.TYPE_FLOAT):
        return float(raw)
    if field.type == field.TYPE_STRING:
        return raw
    return int(raw)


def _kind(field: FieldDescriptor) -> str:
    """What a setting's value must be, as a refusal says it."""
    if field.enum_type is not None:
        names = ", ".join(v.name for v in field.enum_type.values if v.number)
        if field.is_repeated:
            return f"{field.enum_type.name.lower()}s separated by commas ({names})"
        return f"one of {names}"
    if field.message_type is not None:
        return "a duration (90s, 15m, 2h, 1d)"
    if field.type == field.TYPE_BOOL:
        return "true or false"
    if field.type in (field.TYPE_DOUBLE, field.TYPE_FLOAT):
        return "a number"
    return "a whole number"
