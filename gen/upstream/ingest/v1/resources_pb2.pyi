import datetime

from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.api import resource_pb2 as _resource_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.rpc import status_pb2 as _status_pb2
from google.type import date_pb2 as _date_pb2
from google.type import money_pb2 as _money_pb2
from upstream.api.v1 import field_limits_pb2 as _field_limits_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Upload(_message.Message):
    __slots__ = ("name", "state", "format", "mode", "file_name", "column_map", "sha256", "size_bytes", "rows_read", "rows_accepted", "rows_rejected", "rows_updated", "first_decision_date", "last_decision_date", "payers", "warnings", "error", "creator", "request_id", "create_time", "finish_time", "claims_accepted")
    class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATE_UNSPECIFIED: _ClassVar[Upload.State]
        PROCESSING: _ClassVar[Upload.State]
        SUCCEEDED: _ClassVar[Upload.State]
        FAILED: _ClassVar[Upload.State]
    STATE_UNSPECIFIED: Upload.State
    PROCESSING: Upload.State
    SUCCEEDED: Upload.State
    FAILED: Upload.State
    class Format(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        FORMAT_UNSPECIFIED: _ClassVar[Upload.Format]
        CSV: _ClassVar[Upload.Format]
        X12_835: _ClassVar[Upload.Format]
    FORMAT_UNSPECIFIED: Upload.Format
    CSV: Upload.Format
    X12_835: Upload.Format
    class Mode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        MODE_UNSPECIFIED: _ClassVar[Upload.Mode]
        ACCEPT_VALID: _ClassVar[Upload.Mode]
        ALL_OR_NOTHING: _ClassVar[Upload.Mode]
    MODE_UNSPECIFIED: Upload.Mode
    ACCEPT_VALID: Upload.Mode
    ALL_OR_NOTHING: Upload.Mode
    class ColumnMapEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    FILE_NAME_FIELD_NUMBER: _ClassVar[int]
    COLUMN_MAP_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    ROWS_READ_FIELD_NUMBER: _ClassVar[int]
    ROWS_ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    ROWS_REJECTED_FIELD_NUMBER: _ClassVar[int]
    ROWS_UPDATED_FIELD_NUMBER: _ClassVar[int]
    FIRST_DECISION_DATE_FIELD_NUMBER: _ClassVar[int]
    LAST_DECISION_DATE_FIELD_NUMBER: _ClassVar[int]
    PAYERS_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    CREATOR_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    FINISH_TIME_FIELD_NUMBER: _ClassVar[int]
    CLAIMS_ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    name: str
    state: Upload.State
    format: Upload.Format
    mode: Upload.Mode
    file_name: str
    column_map: _containers.ScalarMap[str, str]
    sha256: str
    size_bytes: int
    rows_read: int
    rows_accepted: int
    rows_rejected: int
    rows_updated: int
    first_decision_date: _date_pb2.Date
    last_decision_date: _date_pb2.Date
    payers: _containers.RepeatedScalarFieldContainer[str]
    warnings: _containers.RepeatedCompositeFieldContainer[UploadWarning]
    error: _status_pb2.Status
    creator: str
    request_id: str
    create_time: _timestamp_pb2.Timestamp
    finish_time: _timestamp_pb2.Timestamp
    claims_accepted: int
    def __init__(self, name: _Optional[str] = ..., state: _Optional[_Union[Upload.State, str]] = ..., format: _Optional[_Union[Upload.Format, str]] = ..., mode: _Optional[_Union[Upload.Mode, str]] = ..., file_name: _Optional[str] = ..., column_map: _Optional[_Mapping[str, str]] = ..., sha256: _Optional[str] = ..., size_bytes: _Optional[int] = ..., rows_read: _Optional[int] = ..., rows_accepted: _Optional[int] = ..., rows_rejected: _Optional[int] = ..., rows_updated: _Optional[int] = ..., first_decision_date: _Optional[_Union[_date_pb2.Date, _Mapping]] = ..., last_decision_date: _Optional[_Union[_date_pb2.Date, _Mapping]] = ..., payers: _Optional[_Iterable[str]] = ..., warnings: _Optional[_Iterable[_Union[UploadWarning, _Mapping]]] = ..., error: _Optional[_Union[_status_pb2.Status, _Mapping]] = ..., creator: _Optional[str] = ..., request_id: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., finish_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., claims_accepted: _Optional[int] = ...) -> None: ...

class UploadWarning(_message.Message):
    __slots__ = ("code", "message", "line_number", "segment_number")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    LINE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_NUMBER_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    line_number: int
    segment_number: int
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ..., line_number: _Optional[int] = ..., segment_number: _Optional[int] = ...) -> None: ...

class UploadRejection(_message.Message):
    __slots__ = ("name", "line_number", "segment_number", "column", "raw_value", "reason", "code")
    NAME_FIELD_NUMBER: _ClassVar[int]
    LINE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_NUMBER_FIELD_NUMBER: _ClassVar[int]
    COLUMN_FIELD_NUMBER: _ClassVar[int]
    RAW_VALUE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    name: str
    line_number: int
    segment_number: int
    column: str
    raw_value: str
    reason: str
    code: str
    def __init__(self, name: _Optional[str] = ..., line_number: _Optional[int] = ..., segment_number: _Optional[int] = ..., column: _Optional[str] = ..., raw_value: _Optional[str] = ..., reason: _Optional[str] = ..., code: _Optional[str] = ...) -> None: ...

class Claim(_message.Message):
    __slots__ = ("name", "claim_id", "payer", "payer_raw_name", "payer_raw_id", "procedure_codes", "code_group", "service_date", "submitted_date", "received_date", "decision_date", "status", "denied", "partially_denied", "billed_amount", "allowed_amount", "paid_amount", "patient_responsibility", "adjustments", "payer_claim_control_number", "upload", "update_time")
    class Status(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATUS_UNSPECIFIED: _ClassVar[Claim.Status]
        PAID: _ClassVar[Claim.Status]
        PARTIAL: _ClassVar[Claim.Status]
        DENIED: _ClassVar[Claim.Status]
        PENDING: _ClassVar[Claim.Status]
        REVERSED: _ClassVar[Claim.Status]
    STATUS_UNSPECIFIED: Claim.Status
    PAID: Claim.Status
    PARTIAL: Claim.Status
    DENIED: Claim.Status
    PENDING: Claim.Status
    REVERSED: Claim.Status
    NAME_FIELD_NUMBER: _ClassVar[int]
    CLAIM_ID_FIELD_NUMBER: _ClassVar[int]
    PAYER_FIELD_NUMBER: _ClassVar[int]
    PAYER_RAW_NAME_FIELD_NUMBER: _ClassVar[int]
    PAYER_RAW_ID_FIELD_NUMBER: _ClassVar[int]
    PROCEDURE_CODES_FIELD_NUMBER: _ClassVar[int]
    CODE_GROUP_FIELD_NUMBER: _ClassVar[int]
    SERVICE_DATE_FIELD_NUMBER: _ClassVar[int]
    SUBMITTED_DATE_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_DATE_FIELD_NUMBER: _ClassVar[int]
    DECISION_DATE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    DENIED_FIELD_NUMBER: _ClassVar[int]
    PARTIALLY_DENIED_FIELD_NUMBER: _ClassVar[int]
    BILLED_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    PAID_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    PATIENT_RESPONSIBILITY_FIELD_NUMBER: _ClassVar[int]
    ADJUSTMENTS_FIELD_NUMBER: _ClassVar[int]
    PAYER_CLAIM_CONTROL_NUMBER_FIELD_NUMBER: _ClassVar[int]
    UPLOAD_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    claim_id: str
    payer: str
    payer_raw_name: str
    payer_raw_id: str
    procedure_codes: _containers.RepeatedScalarFieldContainer[str]
    code_group: str
    service_date: _date_pb2.Date
    submitted_date: _date_pb2.Date
    received_date: _date_pb2.Date
    decision_date: _date_pb2.Date
    status: Claim.Status
    denied: bool
    partially_denied: bool
    billed_amount: _money_pb2.Money
    allowed_amount: _money_pb2.Money
    paid_amount: _money_pb2.Money
    patient_responsibility: _money_pb2.Money
    adjustments: _containers.RepeatedCompositeFieldContainer[Adjustment]
    payer_claim_control_number: str
    upload: str
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., claim_id: _Optional[str] = ..., payer: _Optional[str] = ..., payer_raw_name: _Optional[str] = ..., payer_raw_id: _Optional[str] = ..., procedure_codes: _Optional[_Iterable[str]] = ..., code_group: _Optional[str] = ..., service_date: _Optional[_Union[_date_pb2.Date, _Mapping]] = ..., submitted_date: _Optional[_Union[_date_pb2.Date, _Mapping]] = ..., received_date: _Optional[_Union[_date_pb2.Date, _Mapping]] = ..., decision_date: _Optional[_Union[_date_pb2.Date, _Mapping]] = ..., status: _Optional[_Union[Claim.Status, str]] = ..., denied: _Optional[bool] = ..., partially_denied: _Optional[bool] = ..., billed_amount: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., allowed_amount: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., paid_amount: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., patient_responsibility: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., adjustments: _Optional[_Iterable[_Union[Adjustment, _Mapping]]] = ..., payer_claim_control_number: _Optional[str] = ..., upload: _Optional[str] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Adjustment(_message.Message):
    __slots__ = ("group_code", "reason_code", "amount", "line_number")
    GROUP_CODE_FIELD_NUMBER: _ClassVar[int]
    REASON_CODE_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    LINE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    group_code: str
    reason_code: str
    amount: _money_pb2.Money
    line_number: int
    def __init__(self, group_code: _Optional[str] = ..., reason_code: _Optional[str] = ..., amount: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., line_number: _Optional[int] = ...) -> None: ...

class DataState(_message.Message):
    __slots__ = ("name", "etag", "latest_decision_date", "update_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    LATEST_DECISION_DATE_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    etag: str
    latest_decision_date: _date_pb2.Date
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., etag: _Optional[str] = ..., latest_decision_date: _Optional[_Union[_date_pb2.Date, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class PayerMapping(_message.Message):
    __slots__ = ("name", "raw_payer_name", "raw_payer_id", "canonical_payer", "create_time", "update_time", "etag")
    NAME_FIELD_NUMBER: _ClassVar[int]
    RAW_PAYER_NAME_FIELD_NUMBER: _ClassVar[int]
    RAW_PAYER_ID_FIELD_NUMBER: _ClassVar[int]
    CANONICAL_PAYER_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    name: str
    raw_payer_name: str
    raw_payer_id: str
    canonical_payer: str
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    etag: str
    def __init__(self, name: _Optional[str] = ..., raw_payer_name: _Optional[str] = ..., raw_payer_id: _Optional[str] = ..., canonical_payer: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., etag: _Optional[str] = ...) -> None: ...

class Payer(_message.Message):
    __slots__ = ("name", "raw_payer_name", "raw_payer_id", "canonical_payer", "mapped", "payer_mapping", "claim_count", "first_seen_time", "last_seen_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    RAW_PAYER_NAME_FIELD_NUMBER: _ClassVar[int]
    RAW_PAYER_ID_FIELD_NUMBER: _ClassVar[int]
    CANONICAL_PAYER_FIELD_NUMBER: _ClassVar[int]
    MAPPED_FIELD_NUMBER: _ClassVar[int]
    PAYER_MAPPING_FIELD_NUMBER: _ClassVar[int]
    CLAIM_COUNT_FIELD_NUMBER: _ClassVar[int]
    FIRST_SEEN_TIME_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    raw_payer_name: str
    raw_payer_id: str
    canonical_payer: str
    mapped: bool
    payer_mapping: str
    claim_count: int
    first_seen_time: _timestamp_pb2.Timestamp
    last_seen_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., raw_payer_name: _Optional[str] = ..., raw_payer_id: _Optional[str] = ..., canonical_payer: _Optional[str] = ..., mapped: _Optional[bool] = ..., payer_mapping: _Optional[str] = ..., claim_count: _Optional[int] = ..., first_seen_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_seen_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class DailyStat(_message.Message):
    __slots__ = ("payer", "code_group", "decision_date", "decided_claims", "denied_claims", "partially_denied_claims", "decision_days_histogram", "billed_amount", "allowed_amount", "paid_amount", "denied_billed_amount", "carc_counts", "patient_responsibility_amount")
    class DecisionDaysHistogramEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: int
        value: int
        def __init__(self, key: _Optional[int] = ..., value: _Optional[int] = ...) -> None: ...
    class CarcCountsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    PAYER_FIELD_NUMBER: _ClassVar[int]
    CODE_GROUP_FIELD_NUMBER: _ClassVar[int]
    DECISION_DATE_FIELD_NUMBER: _ClassVar[int]
    DECIDED_CLAIMS_FIELD_NUMBER: _ClassVar[int]
    DENIED_CLAIMS_FIELD_NUMBER: _ClassVar[int]
    PARTIALLY_DENIED_CLAIMS_FIELD_NUMBER: _ClassVar[int]
    DECISION_DAYS_HISTOGRAM_FIELD_NUMBER: _ClassVar[int]
    BILLED_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    PAID_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    DENIED_BILLED_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    CARC_COUNTS_FIELD_NUMBER: _ClassVar[int]
    PATIENT_RESPONSIBILITY_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    payer: str
    code_group: str
    decision_date: _date_pb2.Date
    decided_claims: int
    denied_claims: int
    partially_denied_claims: int
    decision_days_histogram: _containers.ScalarMap[int, int]
    billed_amount: _money_pb2.Money
    allowed_amount: _money_pb2.Money
    paid_amount: _money_pb2.Money
    denied_billed_amount: _money_pb2.Money
    carc_counts: _containers.ScalarMap[str, int]
    patient_responsibility_amount: _money_pb2.Money
    def __init__(self, payer: _Optional[str] = ..., code_group: _Optional[str] = ..., decision_date: _Optional[_Union[_date_pb2.Date, _Mapping]] = ..., decided_claims: _Optional[int] = ..., denied_claims: _Optional[int] = ..., partially_denied_claims: _Optional[int] = ..., decision_days_histogram: _Optional[_Mapping[int, int]] = ..., billed_amount: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., allowed_amount: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., paid_amount: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., denied_billed_amount: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., carc_counts: _Optional[_Mapping[str, int]] = ..., patient_responsibility_amount: _Optional[_Union[_money_pb2.Money, _Mapping]] = ...) -> None: ...

class DailyStatSeries(_message.Message):
    __slots__ = ("payer", "code_group", "decision_dates", "decided_claims", "denied_claims", "partially_denied_claims", "billed_cents", "allowed_cents", "paid_cents", "denied_billed_cents", "histogram_day", "histogram_days", "histogram_claims", "carc_codes", "carc_day", "carc_code", "carc_claims", "patient_responsibility_cents", "pending_start_dates", "pending_claims", "packed")
    PAYER_FIELD_NUMBER: _ClassVar[int]
    CODE_GROUP_FIELD_NUMBER: _ClassVar[int]
    DECISION_DATES_FIELD_NUMBER: _ClassVar[int]
    DECIDED_CLAIMS_FIELD_NUMBER: _ClassVar[int]
    DENIED_CLAIMS_FIELD_NUMBER: _ClassVar[int]
    PARTIALLY_DENIED_CLAIMS_FIELD_NUMBER: _ClassVar[int]
    BILLED_CENTS_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_CENTS_FIELD_NUMBER: _ClassVar[int]
    PAID_CENTS_FIELD_NUMBER: _ClassVar[int]
    DENIED_BILLED_CENTS_FIELD_NUMBER: _ClassVar[int]
    HISTOGRAM_DAY_FIELD_NUMBER: _ClassVar[int]
    HISTOGRAM_DAYS_FIELD_NUMBER: _ClassVar[int]
    HISTOGRAM_CLAIMS_FIELD_NUMBER: _ClassVar[int]
    CARC_CODES_FIELD_NUMBER: _ClassVar[int]
    CARC_DAY_FIELD_NUMBER: _ClassVar[int]
    CARC_CODE_FIELD_NUMBER: _ClassVar[int]
    CARC_CLAIMS_FIELD_NUMBER: _ClassVar[int]
    PATIENT_RESPONSIBILITY_CENTS_FIELD_NUMBER: _ClassVar[int]
    PENDING_START_DATES_FIELD_NUMBER: _ClassVar[int]
    PENDING_CLAIMS_FIELD_NUMBER: _ClassVar[int]
    PACKED_FIELD_NUMBER: _ClassVar[int]
    payer: str
    code_group: str
    decision_dates: _containers.RepeatedScalarFieldContainer[int]
    decided_claims: _containers.RepeatedScalarFieldContainer[int]
    denied_claims: _containers.RepeatedScalarFieldContainer[int]
    partially_denied_claims: _containers.RepeatedScalarFieldContainer[int]
    billed_cents: _containers.RepeatedScalarFieldContainer[int]
    allowed_cents: _containers.RepeatedScalarFieldContainer[int]
    paid_cents: _containers.RepeatedScalarFieldContainer[int]
    denied_billed_cents: _containers.RepeatedScalarFieldContainer[int]
    histogram_day: _containers.RepeatedScalarFieldContainer[int]
    histogram_days: _containers.RepeatedScalarFieldContainer[int]
    histogram_claims: _containers.RepeatedScalarFieldContainer[int]
    carc_codes: _containers.RepeatedScalarFieldContainer[str]
    carc_day: _containers.RepeatedScalarFieldContainer[int]
    carc_code: _containers.RepeatedScalarFieldContainer[int]
    carc_claims: _containers.RepeatedScalarFieldContainer[int]
    patient_responsibility_cents: _containers.RepeatedScalarFieldContainer[int]
    pending_start_dates: _containers.RepeatedScalarFieldContainer[int]
    pending_claims: _containers.RepeatedScalarFieldContainer[int]
    packed: PackedDailyStatSeries
    def __init__(self, payer: _Optional[str] = ..., code_group: _Optional[str] = ..., decision_dates: _Optional[_Iterable[int]] = ..., decided_claims: _Optional[_Iterable[int]] = ..., denied_claims: _Optional[_Iterable[int]] = ..., partially_denied_claims: _Optional[_Iterable[int]] = ..., billed_cents: _Optional[_Iterable[int]] = ..., allowed_cents: _Optional[_Iterable[int]] = ..., paid_cents: _Optional[_Iterable[int]] = ..., denied_billed_cents: _Optional[_Iterable[int]] = ..., histogram_day: _Optional[_Iterable[int]] = ..., histogram_days: _Optional[_Iterable[int]] = ..., histogram_claims: _Optional[_Iterable[int]] = ..., carc_codes: _Optional[_Iterable[str]] = ..., carc_day: _Optional[_Iterable[int]] = ..., carc_code: _Optional[_Iterable[int]] = ..., carc_claims: _Optional[_Iterable[int]] = ..., patient_responsibility_cents: _Optional[_Iterable[int]] = ..., pending_start_dates: _Optional[_Iterable[int]] = ..., pending_claims: _Optional[_Iterable[int]] = ..., packed: _Optional[_Union[PackedDailyStatSeries, _Mapping]] = ...) -> None: ...

class PackedDailyStatSeries(_message.Message):
    __slots__ = ("decision_dates", "day_amounts", "histogram", "carc", "patient_responsibility_cents", "pending_start_dates", "pending_claims")
    DECISION_DATES_FIELD_NUMBER: _ClassVar[int]
    DAY_AMOUNTS_FIELD_NUMBER: _ClassVar[int]
    HISTOGRAM_FIELD_NUMBER: _ClassVar[int]
    CARC_FIELD_NUMBER: _ClassVar[int]
    PATIENT_RESPONSIBILITY_CENTS_FIELD_NUMBER: _ClassVar[int]
    PENDING_START_DATES_FIELD_NUMBER: _ClassVar[int]
    PENDING_CLAIMS_FIELD_NUMBER: _ClassVar[int]
    decision_dates: bytes
    day_amounts: bytes
    histogram: bytes
    carc: bytes
    patient_responsibility_cents: bytes
    pending_start_dates: bytes
    pending_claims: bytes
    def __init__(self, decision_dates: _Optional[bytes] = ..., day_amounts: _Optional[bytes] = ..., histogram: _Optional[bytes] = ..., carc: _Optional[bytes] = ..., patient_responsibility_cents: _Optional[bytes] = ..., pending_start_dates: _Optional[bytes] = ..., pending_claims: _Optional[bytes] = ...) -> None: ...
