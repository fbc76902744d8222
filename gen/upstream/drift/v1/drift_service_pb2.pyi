from google.api import annotations_pb2 as _annotations_pb2
from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.api import resource_pb2 as _resource_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.type import date_pb2 as _date_pb2
from upstream.api.v1 import field_limits_pb2 as _field_limits_pb2
from upstream.audit.v1 import audit_pb2 as _audit_pb2
from upstream.drift.v1 import resources_pb2 as _resources_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RunDetectionRequest(_message.Message):
    __slots__ = ("parent", "as_of", "request_id", "trigger")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_FIELD_NUMBER: _ClassVar[int]
    parent: str
    as_of: _date_pb2.Date
    request_id: str
    trigger: _resources_pb2.DriftRun.Trigger
    def __init__(self, parent: _Optional[str] = ..., as_of: _Optional[_Union[_date_pb2.Date, _Mapping]] = ..., request_id: _Optional[str] = ..., trigger: _Optional[_Union[_resources_pb2.DriftRun.Trigger, str]] = ...) -> None: ...

class GetDriftRunRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListDriftRunsRequest(_message.Message):
    __slots__ = ("parent", "page_size", "page_token", "filter")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    parent: str
    page_size: int
    page_token: str
    filter: str
    def __init__(self, parent: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., filter: _Optional[str] = ...) -> None: ...

class ListDriftRunsResponse(_message.Message):
    __slots__ = ("drift_runs", "next_page_token")
    DRIFT_RUNS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    drift_runs: _containers.RepeatedCompositeFieldContainer[_resources_pb2.DriftRun]
    next_page_token: str
    def __init__(self, drift_runs: _Optional[_Iterable[_Union[_resources_pb2.DriftRun, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ListDriftEventsRequest(_message.Message):
    __slots__ = ("parent", "page_size", "page_token", "filter", "order_by")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    ORDER_BY_FIELD_NUMBER: _ClassVar[int]
    parent: str
    page_size: int
    page_token: str
    filter: str
    order_by: str
    def __init__(self, parent: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., filter: _Optional[str] = ..., order_by: _Optional[str] = ...) -> None: ...

class ListDriftEventsResponse(_message.Message):
    __slots__ = ("drift_events", "next_page_token")
    DRIFT_EVENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    drift_events: _containers.RepeatedCompositeFieldContainer[_resources_pb2.DriftEvent]
    next_page_token: str
    def __init__(self, drift_events: _Optional[_Iterable[_Union[_resources_pb2.DriftEvent, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetDriftEventRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class UpdateDriftEventRequest(_message.Message):
    __slots__ = ("drift_event", "update_mask")
    DRIFT_EVENT_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    drift_event: _resources_pb2.DriftEvent
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, drift_event: _Optional[_Union[_resources_pb2.DriftEvent, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class ListPayerSummariesRequest(_message.Message):
    __slots__ = ("parent", "page_size", "page_token", "filter", "order_by")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    ORDER_BY_FIELD_NUMBER: _ClassVar[int]
    parent: str
    page_size: int
    page_token: str
    filter: str
    order_by: str
    def __init__(self, parent: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., filter: _Optional[str] = ..., order_by: _Optional[str] = ...) -> None: ...

class ListPayerSummariesResponse(_message.Message):
    __slots__ = ("payer_summaries", "next_page_token")
    PAYER_SUMMARIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    payer_summaries: _containers.RepeatedCompositeFieldContainer[_resources_pb2.PayerSummary]
    next_page_token: str
    def __init__(self, payer_summaries: _Optional[_Iterable[_Union[_resources_pb2.PayerSummary, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetDriftConfigRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class UpdateDriftConfigRequest(_message.Message):
    __slots__ = ("drift_config", "update_mask")
    DRIFT_CONFIG_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    drift_config: _resources_pb2.DriftConfig
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, drift_config: _Optional[_Union[_resources_pb2.DriftConfig, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...
