from google.protobuf import descriptor_pb2 as _descriptor_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor
FIELD_LIMITS_FIELD_NUMBER: _ClassVar[int]
field_limits: _descriptor.FieldDescriptor

class FieldLimits(_message.Message):
    __slots__ = ("max_length", "max_items", "min_int", "max_int", "printable_ascii", "multiline", "min_year", "max_year")
    MAX_LENGTH_FIELD_NUMBER: _ClassVar[int]
    MAX_ITEMS_FIELD_NUMBER: _ClassVar[int]
    MIN_INT_FIELD_NUMBER: _ClassVar[int]
    MAX_INT_FIELD_NUMBER: _ClassVar[int]
    PRINTABLE_ASCII_FIELD_NUMBER: _ClassVar[int]
    MULTILINE_FIELD_NUMBER: _ClassVar[int]
    MIN_YEAR_FIELD_NUMBER: _ClassVar[int]
    MAX_YEAR_FIELD_NUMBER: _ClassVar[int]
    max_length: int
    max_items: int
    min_int: int
    max_int: int
    printable_ascii: bool
    multiline: bool
    min_year: int
    max_year: int
    def __init__(self, max_length: _Optional[int] = ..., max_items: _Optional[int] = ..., min_int: _Optional[int] = ..., max_int: _Optional[int] = ..., printable_ascii: _Optional[bool] = ..., multiline: _Optional[bool] = ..., min_year: _Optional[int] = ..., max_year: _Optional[int] = ...) -> None: ...
