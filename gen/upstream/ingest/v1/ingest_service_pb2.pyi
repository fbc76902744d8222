from google.api import annotations_pb2 as _annotations_pb2
from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.api import httpbody_pb2 as _httpbody_pb2
from google.api import resource_pb2 as _resource_pb2
from google.protobuf import empty_pb2 as _empty_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.type import date_pb2 as _date_pb2
from upstream.api.v1 import field_limits_pb2 as _field_limits_pb2
from upstream.audit.v1 import audit_pb2 as _audit_pb2
from upstream.ingest.v1 import resources_pb2 as _resources_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CreateUploadRequest(_message.Message):
    __slots__ = ("parent", "upload", "request_id", "http_body", "upload_id")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    UPLOAD_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    HTTP_BODY_FIELD_NUMBER: _ClassVar[int]
    UPLOAD_ID_FIELD_NUMBER: _ClassVar[int]
    parent: str
    upload: _resources_pb2.Upload
    request_id: str
    http_body: _httpbody_pb2.HttpBody
    upload_id: str
    def __init__(self, parent: _Optional[str] = ..., upload: _Optional[_Union[_resources_pb2.Upload, _Mapping]] = ..., request_id: _Optional[str] = ..., http_body: _Optional[_Union[_httpbody_pb2.HttpBody, _Mapping]] = ..., upload_id: _Optional[str] = ...) -> None: ...

class GetUploadRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetDataStateRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListUploadsRequest(_message.Message):
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

class ListUploadsResponse(_message.Message):
    __slots__ = ("uploads", "next_page_token")
    UPLOADS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    uploads: _containers.RepeatedCompositeFieldContainer[_resources_pb2.Upload]
    next_page_token: str
    def __init__(self, uploads: _Optional[_Iterable[_Union[_resources_pb2.Upload, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DeleteUploadRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListUploadRejectionsRequest(_message.Message):
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

class ListUploadRejectionsResponse(_message.Message):
    __slots__ = ("upload_rejections", "next_page_token")
    UPLOAD_REJECTIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    upload_rejections: _containers.RepeatedCompositeFieldContainer[_resources_pb2.UploadRejection]
    next_page_token: str
    def __init__(self, upload_rejections: _Optional[_Iterable[_Union[_resources_pb2.UploadRejection, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetClaimRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListClaimsRequest(_message.Message):
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

class ListClaimsResponse(_message.Message):
    __slots__ = ("claims", "next_page_token")
    CLAIMS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    claims: _containers.RepeatedCompositeFieldContainer[_resources_pb2.Claim]
    next_page_token: str
    def __init__(self, claims: _Optional[_Iterable[_Union[_resources_pb2.Claim, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class StreamClaimsRequest(_message.Message):
    __slots__ = ("parent", "payers", "start_date", "end_date", "encoding")
    class Encoding(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        ENCODING_UNSPECIFIED: _ClassVar[StreamClaimsRequest.Encoding]
        MESSAGES: _ClassVar[StreamClaimsRequest.Encoding]
        ARROW: _ClassVar[StreamClaimsRequest.Encoding]
    ENCODING_UNSPECIFIED: StreamClaimsRequest.Encoding
    MESSAGES: StreamClaimsRequest.Encoding
    ARROW: StreamClaimsRequest.Encoding
    PARENT_FIELD_NUMBER: _ClassVar[int]
    PAYERS_FIELD_NUMBER: _ClassVar[int]
    START_DATE_FIELD_NUMBER: _ClassVar[int]
    END_DATE_FIELD_NUMBER: _ClassVar[int]
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    parent: str
    payers: _containers.RepeatedScalarFieldContainer[str]
    start_date: _date_pb2.Date
    end_date: _date_pb2.Date
    encoding: StreamClaimsRequest.Encoding
    def __init__(self, parent: _Optional[str] = ..., payers: _Optional[_Iterable[str]] = ..., start_date: _Optional[_Union[_date_pb2.Date, _Mapping]] = ..., end_date: _Optional[_Union[_date_pb2.Date, _Mapping]] = ..., encoding: _Optional[_Union[StreamClaimsRequest.Encoding, str]] = ...) -> None: ...

class StreamClaimsResponse(_message.Message):
    __slots__ = ("claims", "arrow_record_batch")
    CLAIMS_FIELD_NUMBER: _ClassVar[int]
    ARROW_RECORD_BATCH_FIELD_NUMBER: _ClassVar[int]
    claims: _containers.RepeatedCompositeFieldContainer[_resources_pb2.Claim]
    arrow_record_batch: bytes
    def __init__(self, claims: _Optional[_Iterable[_Union[_resources_pb2.Claim, _Mapping]]] = ..., arrow_record_batch: _Optional[bytes] = ...) -> None: ...

class CreatePayerMappingRequest(_message.Message):
    __slots__ = ("parent", "payer_mapping")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    PAYER_MAPPING_FIELD_NUMBER: _ClassVar[int]
    parent: str
    payer_mapping: _resources_pb2.PayerMapping
    def __init__(self, parent: _Optional[str] = ..., payer_mapping: _Optional[_Union[_resources_pb2.PayerMapping, _Mapping]] = ...) -> None: ...

class GetPayerMappingRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListPayerMappingsRequest(_message.Message):
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

class ListPayerMappingsResponse(_message.Message):
    __slots__ = ("payer_mappings", "next_page_token")
    PAYER_MAPPINGS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    payer_mappings: _containers.RepeatedCompositeFieldContainer[_resources_pb2.PayerMapping]
    next_page_token: str
    def __init__(self, payer_mappings: _Optional[_Iterable[_Union[_resources_pb2.PayerMapping, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdatePayerMappingRequest(_message.Message):
    __slots__ = ("payer_mapping", "update_mask")
    PAYER_MAPPING_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    payer_mapping: _resources_pb2.PayerMapping
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, payer_mapping: _Optional[_Union[_resources_pb2.PayerMapping, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class DeletePayerMappingRequest(_message.Message):
    __slots__ = ("name", "etag")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    name: str
    etag: str
    def __init__(self, name: _Optional[str] = ..., etag: _Optional[str] = ...) -> None: ...

class ListPayersRequest(_message.Message):
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

class ListPayersResponse(_message.Message):
    __slots__ = ("payers", "next_page_token")
    PAYERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    payers: _containers.RepeatedCompositeFieldContainer[_resources_pb2.Payer]
    next_page_token: str
    def __init__(self, payers: _Optional[_Iterable[_Union[_resources_pb2.Payer, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class StreamDailyStatsRequest(_message.Message):
    __slots__ = ("parent", "payers", "start_date", "end_date")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    PAYERS_FIELD_NUMBER: _ClassVar[int]
    START_DATE_FIELD_NUMBER: _ClassVar[int]
    END_DATE_FIELD_NUMBER: _ClassVar[int]
    parent: str
    payers: _containers.RepeatedScalarFieldContainer[str]
    start_date: _date_pb2.Date
    end_date: _date_pb2.Date
    def __init__(self, parent: _Optional[str] = ..., payers: _Optional[_Iterable[str]] = ..., start_date: _Optional[_Union[_date_pb2.Date, _Mapping]] = ..., end_date: _Optional[_Union[_date_pb2.Date, _Mapping]] = ...) -> None: ...

class StreamDailyStatSeriesRequest(_message.Message):
    __slots__ = ("parent", "payers", "start_date", "end_date", "encoding", "entry_span_starts")
    class Encoding(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        ENCODING_UNSPECIFIED: _ClassVar[StreamDailyStatSeriesRequest.Encoding]
        READABLE: _ClassVar[StreamDailyStatSeriesRequest.Encoding]
        PACKED: _ClassVar[StreamDailyStatSeriesRequest.Encoding]
    ENCODING_UNSPECIFIED: StreamDailyStatSeriesRequest.Encoding
    READABLE: StreamDailyStatSeriesRequest.Encoding
    PACKED: StreamDailyStatSeriesRequest.Encoding
    PARENT_FIELD_NUMBER: _ClassVar[int]
    PAYERS_FIELD_NUMBER: _ClassVar[int]
    START_DATE_FIELD_NUMBER: _ClassVar[int]
    END_DATE_FIELD_NUMBER: _ClassVar[int]
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    ENTRY_SPAN_STARTS_FIELD_NUMBER: _ClassVar[int]
    parent: str
    payers: _containers.RepeatedScalarFieldContainer[str]
    start_date: _date_pb2.Date
    end_date: _date_pb2.Date
    encoding: StreamDailyStatSeriesRequest.Encoding
    entry_span_starts: _containers.RepeatedCompositeFieldContainer[_date_pb2.Date]
    def __init__(self, parent: _Optional[str] = ..., payers: _Optional[_Iterable[str]] = ..., start_date: _Optional[_Union[_date_pb2.Date, _Mapping]] = ..., end_date: _Optional[_Union[_date_pb2.Date, _Mapping]] = ..., encoding: _Optional[_Union[StreamDailyStatSeriesRequest.Encoding, str]] = ..., entry_span_starts: _Optional[_Iterable[_Union[_date_pb2.Date, _Mapping]]] = ...) -> None: ...

class StreamDailyStatSeriesResponse(_message.Message):
    __slots__ = ("daily_stat_series",)
    DAILY_STAT_SERIES_FIELD_NUMBER: _ClassVar[int]
    daily_stat_series: _containers.RepeatedCompositeFieldContainer[_resources_pb2.DailyStatSeries]
    def __init__(self, daily_stat_series: _Optional[_Iterable[_Union[_resources_pb2.DailyStatSeries, _Mapping]]] = ...) -> None: ...

class StreamDailyStatsResponse(_message.Message):
    __slots__ = ("daily_stats",)
    DAILY_STATS_FIELD_NUMBER: _ClassVar[int]
    daily_stats: _containers.RepeatedCompositeFieldContainer[_resources_pb2.DailyStat]
    def __init__(self, daily_stats: _Optional[_Iterable[_Union[_resources_pb2.DailyStat, _Mapping]]] = ...) -> None: ...
