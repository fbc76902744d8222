import datetime

from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.api import resource_pb2 as _resource_pb2
from google.protobuf import duration_pb2 as _duration_pb2
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

class Metric(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    METRIC_UNSPECIFIED: _ClassVar[Metric]
    DENIAL_RATE: _ClassVar[Metric]
    DECISION_DAYS: _ClassVar[Metric]
    PAYMENT_RATIO: _ClassVar[Metric]
    DENIAL_REASON_MIX: _ClassVar[Metric]
METRIC_UNSPECIFIED: Metric
DENIAL_RATE: Metric
DECISION_DAYS: Metric
PAYMENT_RATIO: Metric
DENIAL_REASON_MIX: Metric

class DateRange(_message.Message):
    __slots__ = ("start_date", "end_date")
    START_DATE_FIELD_NUMBER: _ClassVar[int]
    END_DATE_FIELD_NUMBER: _ClassVar[int]
    start_date: _date_pb2.Date
    end_date: _date_pb2.Date
    def __init__(self, start_date: _Optional[_Union[_date_pb2.Date, _Mapping]] = ..., end_date: _Optional[_Union[_date_pb2.Date, _Mapping]] = ...) -> None: ...

class DriftRun(_message.Message):
    __slots__ = ("name", "state", "trigger", "request_id", "as_of", "baseline_window", "current_window", "cells_tested", "cells_skipped", "events_opened", "events_updated", "events_closed", "error", "create_time", "start_time", "end_time", "duration", "events_untested")
    class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATE_UNSPECIFIED: _ClassVar[DriftRun.State]
        PENDING: _ClassVar[DriftRun.State]
        RUNNING: _ClassVar[DriftRun.State]
        SUCCEEDED: _ClassVar[DriftRun.State]
        FAILED: _ClassVar[DriftRun.State]
    STATE_UNSPECIFIED: DriftRun.State
    PENDING: DriftRun.State
    RUNNING: DriftRun.State
    SUCCEEDED: DriftRun.State
    FAILED: DriftRun.State
    class Trigger(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        TRIGGER_UNSPECIFIED: _ClassVar[DriftRun.Trigger]
        MANUAL: _ClassVar[DriftRun.Trigger]
        UPLOAD: _ClassVar[DriftRun.Trigger]
        SCHEDULE: _ClassVar[DriftRun.Trigger]
        DATA_CHANGE: _ClassVar[DriftRun.Trigger]
    TRIGGER_UNSPECIFIED: DriftRun.Trigger
    MANUAL: DriftRun.Trigger
    UPLOAD: DriftRun.Trigger
    SCHEDULE: DriftRun.Trigger
    DATA_CHANGE: DriftRun.Trigger
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    BASELINE_WINDOW_FIELD_NUMBER: _ClassVar[int]
    CURRENT_WINDOW_FIELD_NUMBER: _ClassVar[int]
    CELLS_TESTED_FIELD_NUMBER: _ClassVar[int]
    CELLS_SKIPPED_FIELD_NUMBER: _ClassVar[int]
    EVENTS_OPENED_FIELD_NUMBER: _ClassVar[int]
    EVENTS_UPDATED_FIELD_NUMBER: _ClassVar[int]
    EVENTS_CLOSED_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    DURATION_FIELD_NUMBER: _ClassVar[int]
    EVENTS_UNTESTED_FIELD_NUMBER: _ClassVar[int]
    name: str
    state: DriftRun.State
    trigger: DriftRun.Trigger
    request_id: str
    as_of: _date_pb2.Date
    baseline_window: DateRange
    current_window: DateRange
    cells_tested: int
    cells_skipped: int
    events_opened: int
    events_updated: int
    events_closed: int
    error: _status_pb2.Status
    create_time: _timestamp_pb2.Timestamp
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    duration: _duration_pb2.Duration
    events_untested: int
    def __init__(self, name: _Optional[str] = ..., state: _Optional[_Union[DriftRun.State, str]] = ..., trigger: _Optional[_Union[DriftRun.Trigger, str]] = ..., request_id: _Optional[str] = ..., as_of: _Optional[_Union[_date_pb2.Date, _Mapping]] = ..., baseline_window: _Optional[_Union[DateRange, _Mapping]] = ..., current_window: _Optional[_Union[DateRange, _Mapping]] = ..., cells_tested: _Optional[int] = ..., cells_skipped: _Optional[int] = ..., events_opened: _Optional[int] = ..., events_updated: _Optional[int] = ..., events_closed: _Optional[int] = ..., error: _Optional[_Union[_status_pb2.Status, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., events_untested: _Optional[int] = ...) -> None: ...

class DriftEvent(_message.Message):
    __slots__ = ("name", "payer", "code_group", "metric", "severity", "state", "triage_note", "triaged_by", "triage_time", "active", "baseline_window", "current_window", "evidence", "dollars_at_stake", "summary", "first_detected_time", "last_seen_time", "end_time", "first_run", "last_run", "update_time", "etag", "untested_since", "end_reason")
    class Severity(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        SEVERITY_UNSPECIFIED: _ClassVar[DriftEvent.Severity]
        LOW: _ClassVar[DriftEvent.Severity]
        MEDIUM: _ClassVar[DriftEvent.Severity]
        HIGH: _ClassVar[DriftEvent.Severity]
    SEVERITY_UNSPECIFIED: DriftEvent.Severity
    LOW: DriftEvent.Severity
    MEDIUM: DriftEvent.Severity
    HIGH: DriftEvent.Severity
    class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATE_UNSPECIFIED: _ClassVar[DriftEvent.State]
        NEW: _ClassVar[DriftEvent.State]
        ACKNOWLEDGED: _ClassVar[DriftEvent.State]
        RESOLVED: _ClassVar[DriftEvent.State]
        DISMISSED: _ClassVar[DriftEvent.State]
    STATE_UNSPECIFIED: DriftEvent.State
    NEW: DriftEvent.State
    ACKNOWLEDGED: DriftEvent.State
    RESOLVED: DriftEvent.State
    DISMISSED: DriftEvent.State
    class EndReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        END_REASON_UNSPECIFIED: _ClassVar[DriftEvent.EndReason]
        NO_LONGER_FOUND: _ClassVar[DriftEvent.EndReason]
        CLAIMS_REMOVED: _ClassVar[DriftEvent.EndReason]
    END_REASON_UNSPECIFIED: DriftEvent.EndReason
    NO_LONGER_FOUND: DriftEvent.EndReason
    CLAIMS_REMOVED: DriftEvent.EndReason
    NAME_FIELD_NUMBER: _ClassVar[int]
    PAYER_FIELD_NUMBER: _ClassVar[int]
    CODE_GROUP_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    TRIAGE_NOTE_FIELD_NUMBER: _ClassVar[int]
    TRIAGED_BY_FIELD_NUMBER: _ClassVar[int]
    TRIAGE_TIME_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    BASELINE_WINDOW_FIELD_NUMBER: _ClassVar[int]
    CURRENT_WINDOW_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    DOLLARS_AT_STAKE_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    FIRST_DETECTED_TIME_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    FIRST_RUN_FIELD_NUMBER: _ClassVar[int]
    LAST_RUN_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    UNTESTED_SINCE_FIELD_NUMBER: _ClassVar[int]
    END_REASON_FIELD_NUMBER: _ClassVar[int]
    name: str
    payer: str
    code_group: str
    metric: Metric
    severity: DriftEvent.Severity
    state: DriftEvent.State
    triage_note: str
    triaged_by: str
    triage_time: _timestamp_pb2.Timestamp
    active: bool
    baseline_window: DateRange
    current_window: DateRange
    evidence: DriftEvidence
    dollars_at_stake: _money_pb2.Money
    summary: str
    first_detected_time: _timestamp_pb2.Timestamp
    last_seen_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    first_run: str
    last_run: str
    update_time: _timestamp_pb2.Timestamp
    etag: str
    untested_since: _date_pb2.Date
    end_reason: DriftEvent.EndReason
    def __init__(self, name: _Optional[str] = ..., payer: _Optional[str] = ..., code_group: _Optional[str] = ..., metric: _Optional[_Union[Metric, str]] = ..., severity: _Optional[_Union[DriftEvent.Severity, str]] = ..., state: _Optional[_Union[DriftEvent.State, str]] = ..., triage_note: _Optional[str] = ..., triaged_by: _Optional[str] = ..., triage_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., active: _Optional[bool] = ..., baseline_window: _Optional[_Union[DateRange, _Mapping]] = ..., current_window: _Optional[_Union[DateRange, _Mapping]] = ..., evidence: _Optional[_Union[DriftEvidence, _Mapping]] = ..., dollars_at_stake: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., summary: _Optional[str] = ..., first_detected_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_seen_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., first_run: _Optional[str] = ..., last_run: _Optional[str] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., etag: _Optional[str] = ..., untested_since: _Optional[_Union[_date_pb2.Date, _Mapping]] = ..., end_reason: _Optional[_Union[DriftEvent.EndReason, str]] = ...) -> None: ...

class DriftEvidence(_message.Message):
    __slots__ = ("baseline_count", "current_count", "baseline_events", "current_events", "baseline_value", "current_value", "effect_size", "effect_unit", "p_value", "q_value", "baseline_interval", "current_interval", "test", "carc_codes_moved", "seasonal_expected_value", "effect_interval")
    BASELINE_COUNT_FIELD_NUMBER: _ClassVar[int]
    CURRENT_COUNT_FIELD_NUMBER: _ClassVar[int]
    BASELINE_EVENTS_FIELD_NUMBER: _ClassVar[int]
    CURRENT_EVENTS_FIELD_NUMBER: _ClassVar[int]
    BASELINE_VALUE_FIELD_NUMBER: _ClassVar[int]
    CURRENT_VALUE_FIELD_NUMBER: _ClassVar[int]
    EFFECT_SIZE_FIELD_NUMBER: _ClassVar[int]
    EFFECT_UNIT_FIELD_NUMBER: _ClassVar[int]
    P_VALUE_FIELD_NUMBER: _ClassVar[int]
    Q_VALUE_FIELD_NUMBER: _ClassVar[int]
    BASELINE_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    CURRENT_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    TEST_FIELD_NUMBER: _ClassVar[int]
    CARC_CODES_MOVED_FIELD_NUMBER: _ClassVar[int]
    SEASONAL_EXPECTED_VALUE_FIELD_NUMBER: _ClassVar[int]
    EFFECT_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    baseline_count: int
    current_count: int
    baseline_events: int
    current_events: int
    baseline_value: float
    current_value: float
    effect_size: float
    effect_unit: str
    p_value: float
    q_value: float
    baseline_interval: ConfidenceInterval
    current_interval: ConfidenceInterval
    test: str
    carc_codes_moved: _containers.RepeatedCompositeFieldContainer[CarcShift]
    seasonal_expected_value: float
    effect_interval: ConfidenceInterval
    def __init__(self, baseline_count: _Optional[int] = ..., current_count: _Optional[int] = ..., baseline_events: _Optional[int] = ..., current_events: _Optional[int] = ..., baseline_value: _Optional[float] = ..., current_value: _Optional[float] = ..., effect_size: _Optional[float] = ..., effect_unit: _Optional[str] = ..., p_value: _Optional[float] = ..., q_value: _Optional[float] = ..., baseline_interval: _Optional[_Union[ConfidenceInterval, _Mapping]] = ..., current_interval: _Optional[_Union[ConfidenceInterval, _Mapping]] = ..., test: _Optional[str] = ..., carc_codes_moved: _Optional[_Iterable[_Union[CarcShift, _Mapping]]] = ..., seasonal_expected_value: _Optional[float] = ..., effect_interval: _Optional[_Union[ConfidenceInterval, _Mapping]] = ...) -> None: ...

class ConfidenceInterval(_message.Message):
    __slots__ = ("lower", "upper", "level")
    LOWER_FIELD_NUMBER: _ClassVar[int]
    UPPER_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    lower: float
    upper: float
    level: float
    def __init__(self, lower: _Optional[float] = ..., upper: _Optional[float] = ..., level: _Optional[float] = ...) -> None: ...

class CarcShift(_message.Message):
    __slots__ = ("code", "baseline_share", "current_share")
    CODE_FIELD_NUMBER: _ClassVar[int]
    BASELINE_SHARE_FIELD_NUMBER: _ClassVar[int]
    CURRENT_SHARE_FIELD_NUMBER: _ClassVar[int]
    code: str
    baseline_share: float
    current_share: float
    def __init__(self, code: _Optional[str] = ..., baseline_share: _Optional[float] = ..., current_share: _Optional[float] = ...) -> None: ...

class PayerSummary(_message.Message):
    __slots__ = ("name", "payer", "current_window", "baseline_window", "current", "baseline", "open_event_count", "weekly_series", "detection_start_date", "season_note", "self_pay")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PAYER_FIELD_NUMBER: _ClassVar[int]
    CURRENT_WINDOW_FIELD_NUMBER: _ClassVar[int]
    BASELINE_WINDOW_FIELD_NUMBER: _ClassVar[int]
    CURRENT_FIELD_NUMBER: _ClassVar[int]
    BASELINE_FIELD_NUMBER: _ClassVar[int]
    OPEN_EVENT_COUNT_FIELD_NUMBER: _ClassVar[int]
    WEEKLY_SERIES_FIELD_NUMBER: _ClassVar[int]
    DETECTION_START_DATE_FIELD_NUMBER: _ClassVar[int]
    SEASON_NOTE_FIELD_NUMBER: _ClassVar[int]
    SELF_PAY_FIELD_NUMBER: _ClassVar[int]
    name: str
    payer: str
    current_window: DateRange
    baseline_window: DateRange
    current: PayerMetrics
    baseline: PayerMetrics
    open_event_count: int
    weekly_series: _containers.RepeatedCompositeFieldContainer[WeeklyPoint]
    detection_start_date: _date_pb2.Date
    season_note: str
    self_pay: bool
    def __init__(self, name: _Optional[str] = ..., payer: _Optional[str] = ..., current_window: _Optional[_Union[DateRange, _Mapping]] = ..., baseline_window: _Optional[_Union[DateRange, _Mapping]] = ..., current: _Optional[_Union[PayerMetrics, _Mapping]] = ..., baseline: _Optional[_Union[PayerMetrics, _Mapping]] = ..., open_event_count: _Optional[int] = ..., weekly_series: _Optional[_Iterable[_Union[WeeklyPoint, _Mapping]]] = ..., detection_start_date: _Optional[_Union[_date_pb2.Date, _Mapping]] = ..., season_note: _Optional[str] = ..., self_pay: _Optional[bool] = ...) -> None: ...

class PayerMetrics(_message.Message):
    __slots__ = ("claims", "denial_rate", "median_decision_days", "paid_to_allowed_ratio", "denied_billed_amount", "patient_share")
    CLAIMS_FIELD_NUMBER: _ClassVar[int]
    DENIAL_RATE_FIELD_NUMBER: _ClassVar[int]
    MEDIAN_DECISION_DAYS_FIELD_NUMBER: _ClassVar[int]
    PAID_TO_ALLOWED_RATIO_FIELD_NUMBER: _ClassVar[int]
    DENIED_BILLED_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    PATIENT_SHARE_FIELD_NUMBER: _ClassVar[int]
    claims: int
    denial_rate: float
    median_decision_days: float
    paid_to_allowed_ratio: float
    denied_billed_amount: _money_pb2.Money
    patient_share: float
    def __init__(self, claims: _Optional[int] = ..., denial_rate: _Optional[float] = ..., median_decision_days: _Optional[float] = ..., paid_to_allowed_ratio: _Optional[float] = ..., denied_billed_amount: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., patient_share: _Optional[float] = ...) -> None: ...

class WeeklyPoint(_message.Message):
    __slots__ = ("week_start", "claims", "denial_rate", "median_decision_days", "paid_to_allowed_ratio")
    WEEK_START_FIELD_NUMBER: _ClassVar[int]
    CLAIMS_FIELD_NUMBER: _ClassVar[int]
    DENIAL_RATE_FIELD_NUMBER: _ClassVar[int]
    MEDIAN_DECISION_DAYS_FIELD_NUMBER: _ClassVar[int]
    PAID_TO_ALLOWED_RATIO_FIELD_NUMBER: _ClassVar[int]
    week_start: _date_pb2.Date
    claims: int
    denial_rate: float
    median_decision_days: float
    paid_to_allowed_ratio: float
    def __init__(self, week_start: _Optional[_Union[_date_pb2.Date, _Mapping]] = ..., claims: _Optional[int] = ..., denial_rate: _Optional[float] = ..., median_decision_days: _Optional[float] = ..., paid_to_allowed_ratio: _Optional[float] = ...) -> None: ...

class DriftConfig(_message.Message):
    __slots__ = ("name", "current_window_days", "baseline_window_days", "denial_rate_min_increase_points", "denial_rate_min_ratio", "decision_days_min_increase", "decision_days_min_increase_fraction", "payment_ratio_min_drop", "min_current_claims", "min_baseline_claims", "false_discovery_rate", "enabled_metrics", "update_time", "updated_by", "etag")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CURRENT_WINDOW_DAYS_FIELD_NUMBER: _ClassVar[int]
    BASELINE_WINDOW_DAYS_FIELD_NUMBER: _ClassVar[int]
    DENIAL_RATE_MIN_INCREASE_POINTS_FIELD_NUMBER: _ClassVar[int]
    DENIAL_RATE_MIN_RATIO_FIELD_NUMBER: _ClassVar[int]
    DECISION_DAYS_MIN_INCREASE_FIELD_NUMBER: _ClassVar[int]
    DECISION_DAYS_MIN_INCREASE_FRACTION_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_RATIO_MIN_DROP_FIELD_NUMBER: _ClassVar[int]
    MIN_CURRENT_CLAIMS_FIELD_NUMBER: _ClassVar[int]
    MIN_BASELINE_CLAIMS_FIELD_NUMBER: _ClassVar[int]
    FALSE_DISCOVERY_RATE_FIELD_NUMBER: _ClassVar[int]
    ENABLED_METRICS_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATED_BY_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    name: str
    current_window_days: int
    baseline_window_days: int
    denial_rate_min_increase_points: float
    denial_rate_min_ratio: float
    decision_days_min_increase: float
    decision_days_min_increase_fraction: float
    payment_ratio_min_drop: float
    min_current_claims: int
    min_baseline_claims: int
    false_discovery_rate: float
    enabled_metrics: _containers.RepeatedScalarFieldContainer[Metric]
    update_time: _timestamp_pb2.Timestamp
    updated_by: str
    etag: str
    def __init__(self, name: _Optional[str] = ..., current_window_days: _Optional[int] = ..., baseline_window_days: _Optional[int] = ..., denial_rate_min_increase_points: _Optional[float] = ..., denial_rate_min_ratio: _Optional[float] = ..., decision_days_min_increase: _Optional[float] = ..., decision_days_min_increase_fraction: _Optional[float] = ..., payment_ratio_min_drop: _Optional[float] = ..., min_current_claims: _Optional[int] = ..., min_baseline_claims: _Optional[int] = ..., false_discovery_rate: _Optional[float] = ..., enabled_metrics: _Optional[_Iterable[_Union[Metric, str]]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_by: _Optional[str] = ..., etag: _Optional[str] = ...) -> None: ...
