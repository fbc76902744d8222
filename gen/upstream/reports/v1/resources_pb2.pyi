import datetime

from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.api import resource_pb2 as _resource_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.rpc import status_pb2 as _status_pb2
from google.type import date_pb2 as _date_pb2
from upstream.api.v1 import field_limits_pb2 as _field_limits_pb2
from upstream.drift.v1 import resources_pb2 as _resources_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ReportKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REPORT_KIND_UNSPECIFIED: _ClassVar[ReportKind]
    DRIFT_SUMMARY: _ClassVar[ReportKind]
    PAYER_SCORECARD: _ClassVar[ReportKind]
    CLAIMS_EXPORT: _ClassVar[ReportKind]
    EVENTS_EXPORT: _ClassVar[ReportKind]

class ReportFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REPORT_FORMAT_UNSPECIFIED: _ClassVar[ReportFormat]
    PDF: _ClassVar[ReportFormat]
    CSV: _ClassVar[ReportFormat]
    JSON: _ClassVar[ReportFormat]

class EventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EVENT_TYPE_UNSPECIFIED: _ClassVar[EventType]
    DRIFT_EVENT_OPENED: _ClassVar[EventType]
    DRIFT_EVENT_UPDATED: _ClassVar[EventType]
    DRIFT_EVENT_CLOSED: _ClassVar[EventType]
    REPORT_READY: _ClassVar[EventType]
    TEST: _ClassVar[EventType]
REPORT_KIND_UNSPECIFIED: ReportKind
DRIFT_SUMMARY: ReportKind
PAYER_SCORECARD: ReportKind
CLAIMS_EXPORT: ReportKind
EVENTS_EXPORT: ReportKind
REPORT_FORMAT_UNSPECIFIED: ReportFormat
PDF: ReportFormat
CSV: ReportFormat
JSON: ReportFormat
EVENT_TYPE_UNSPECIFIED: EventType
DRIFT_EVENT_OPENED: EventType
DRIFT_EVENT_UPDATED: EventType
DRIFT_EVENT_CLOSED: EventType
REPORT_READY: EventType
TEST: EventType

class DateRange(_message.Message):
    __slots__ = ("start_date", "end_date")
    START_DATE_FIELD_NUMBER: _ClassVar[int]
    END_DATE_FIELD_NUMBER: _ClassVar[int]
    start_date: _date_pb2.Date
    end_date: _date_pb2.Date
    def __init__(self, start_date: _Optional[_Union[_date_pb2.Date, _Mapping]] = ..., end_date: _Optional[_Union[_date_pb2.Date, _Mapping]] = ...) -> None: ...

class ReportParameters(_message.Message):
    __slots__ = ("date_range", "lookback_days", "payers")
    DATE_RANGE_FIELD_NUMBER: _ClassVar[int]
    LOOKBACK_DAYS_FIELD_NUMBER: _ClassVar[int]
    PAYERS_FIELD_NUMBER: _ClassVar[int]
    date_range: DateRange
    lookback_days: int
    payers: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, date_range: _Optional[_Union[DateRange, _Mapping]] = ..., lookback_days: _Optional[int] = ..., payers: _Optional[_Iterable[str]] = ...) -> None: ...

class Report(_message.Message):
    __slots__ = ("name", "kind", "format", "parameters", "state", "error", "size_bytes", "content_type", "sha256", "schedule", "creator", "create_time", "finish_time", "expire_time")
    class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATE_UNSPECIFIED: _ClassVar[Report.State]
        PENDING: _ClassVar[Report.State]
        RUNNING: _ClassVar[Report.State]
        SUCCEEDED: _ClassVar[Report.State]
        FAILED: _ClassVar[Report.State]
    STATE_UNSPECIFIED: Report.State
    PENDING: Report.State
    RUNNING: Report.State
    SUCCEEDED: Report.State
    FAILED: Report.State
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    CREATOR_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    FINISH_TIME_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: ReportKind
    format: ReportFormat
    parameters: ReportParameters
    state: Report.State
    error: _status_pb2.Status
    size_bytes: int
    content_type: str
    sha256: str
    schedule: str
    creator: str
    create_time: _timestamp_pb2.Timestamp
    finish_time: _timestamp_pb2.Timestamp
    expire_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[_Union[ReportKind, str]] = ..., format: _Optional[_Union[ReportFormat, str]] = ..., parameters: _Optional[_Union[ReportParameters, _Mapping]] = ..., state: _Optional[_Union[Report.State, str]] = ..., error: _Optional[_Union[_status_pb2.Status, _Mapping]] = ..., size_bytes: _Optional[int] = ..., content_type: _Optional[str] = ..., sha256: _Optional[str] = ..., schedule: _Optional[str] = ..., creator: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., finish_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ReportTemplate(_message.Message):
    __slots__ = ("kind", "format", "parameters")
    KIND_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    kind: ReportKind
    format: ReportFormat
    parameters: ReportParameters
    def __init__(self, kind: _Optional[_Union[ReportKind, str]] = ..., format: _Optional[_Union[ReportFormat, str]] = ..., parameters: _Optional[_Union[ReportParameters, _Mapping]] = ...) -> None: ...

class ReportSchedule(_message.Message):
    __slots__ = ("name", "display_name", "cron", "time_zone", "report_template", "paused", "next_run_time", "last_run_time", "last_report", "create_time", "update_time", "etag", "email_recipients")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    CRON_FIELD_NUMBER: _ClassVar[int]
    TIME_ZONE_FIELD_NUMBER: _ClassVar[int]
    REPORT_TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    NEXT_RUN_TIME_FIELD_NUMBER: _ClassVar[int]
    LAST_RUN_TIME_FIELD_NUMBER: _ClassVar[int]
    LAST_REPORT_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    EMAIL_RECIPIENTS_FIELD_NUMBER: _ClassVar[int]
    name: str
    display_name: str
    cron: str
    time_zone: str
    report_template: ReportTemplate
    paused: bool
    next_run_time: _timestamp_pb2.Timestamp
    last_run_time: _timestamp_pb2.Timestamp
    last_report: str
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    etag: str
    email_recipients: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., display_name: _Optional[str] = ..., cron: _Optional[str] = ..., time_zone: _Optional[str] = ..., report_template: _Optional[_Union[ReportTemplate, _Mapping]] = ..., paused: _Optional[bool] = ..., next_run_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_run_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_report: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., etag: _Optional[str] = ..., email_recipients: _Optional[_Iterable[str]] = ...) -> None: ...

class Webhook(_message.Message):
    __slots__ = ("name", "display_name", "url", "event_types", "signing_secret", "disabled", "create_time", "update_time", "etag", "disabled_reason", "previous_secret_expire_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPES_FIELD_NUMBER: _ClassVar[int]
    SIGNING_SECRET_FIELD_NUMBER: _ClassVar[int]
    DISABLED_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    DISABLED_REASON_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_SECRET_EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    display_name: str
    url: str
    event_types: _containers.RepeatedScalarFieldContainer[EventType]
    signing_secret: str
    disabled: bool
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    etag: str
    disabled_reason: str
    previous_secret_expire_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., display_name: _Optional[str] = ..., url: _Optional[str] = ..., event_types: _Optional[_Iterable[_Union[EventType, str]]] = ..., signing_secret: _Optional[str] = ..., disabled: _Optional[bool] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., etag: _Optional[str] = ..., disabled_reason: _Optional[str] = ..., previous_secret_expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class WebhookDelivery(_message.Message):
    __slots__ = ("name", "event_id", "event_type", "state", "attempt_count", "last_response_code", "last_error", "next_attempt_time", "create_time", "complete_time", "attempts", "redelivery_count")
    class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATE_UNSPECIFIED: _ClassVar[WebhookDelivery.State]
        PENDING: _ClassVar[WebhookDelivery.State]
        SUCCEEDED: _ClassVar[WebhookDelivery.State]
        FAILED: _ClassVar[WebhookDelivery.State]
        RETRYING: _ClassVar[WebhookDelivery.State]
    STATE_UNSPECIFIED: WebhookDelivery.State
    PENDING: WebhookDelivery.State
    SUCCEEDED: WebhookDelivery.State
    FAILED: WebhookDelivery.State
    RETRYING: WebhookDelivery.State
    class Attempt(_message.Message):
        __slots__ = ("start_time", "response_code", "latency", "response_body", "error")
        START_TIME_FIELD_NUMBER: _ClassVar[int]
        RESPONSE_CODE_FIELD_NUMBER: _ClassVar[int]
        LATENCY_FIELD_NUMBER: _ClassVar[int]
        RESPONSE_BODY_FIELD_NUMBER: _ClassVar[int]
        ERROR_FIELD_NUMBER: _ClassVar[int]
        start_time: _timestamp_pb2.Timestamp
        response_code: int
        latency: _duration_pb2.Duration
        response_body: str
        error: str
        def __init__(self, start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., response_code: _Optional[int] = ..., latency: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., response_body: _Optional[str] = ..., error: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_COUNT_FIELD_NUMBER: _ClassVar[int]
    LAST_RESPONSE_CODE_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    NEXT_ATTEMPT_TIME_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    COMPLETE_TIME_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    REDELIVERY_COUNT_FIELD_NUMBER: _ClassVar[int]
    name: str
    event_id: str
    event_type: EventType
    state: WebhookDelivery.State
    attempt_count: int
    last_response_code: int
    last_error: str
    next_attempt_time: _timestamp_pb2.Timestamp
    create_time: _timestamp_pb2.Timestamp
    complete_time: _timestamp_pb2.Timestamp
    attempts: _containers.RepeatedCompositeFieldContainer[WebhookDelivery.Attempt]
    redelivery_count: int
    def __init__(self, name: _Optional[str] = ..., event_id: _Optional[str] = ..., event_type: _Optional[_Union[EventType, str]] = ..., state: _Optional[_Union[WebhookDelivery.State, str]] = ..., attempt_count: _Optional[int] = ..., last_response_code: _Optional[int] = ..., last_error: _Optional[str] = ..., next_attempt_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., complete_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., attempts: _Optional[_Iterable[_Union[WebhookDelivery.Attempt, _Mapping]]] = ..., redelivery_count: _Optional[int] = ...) -> None: ...

class AlertPolicy(_message.Message):
    __slots__ = ("name", "email_recipients", "slack_webhook_url", "slack_webhook_host", "minimum_severity", "suppression_window", "delivery_mode", "digest_hour", "time_zone", "disabled", "update_time", "etag", "alert_when_ended")
    class DeliveryMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        DELIVERY_MODE_UNSPECIFIED: _ClassVar[AlertPolicy.DeliveryMode]
        IMMEDIATE: _ClassVar[AlertPolicy.DeliveryMode]
        DAILY_DIGEST: _ClassVar[AlertPolicy.DeliveryMode]
    DELIVERY_MODE_UNSPECIFIED: AlertPolicy.DeliveryMode
    IMMEDIATE: AlertPolicy.DeliveryMode
    DAILY_DIGEST: AlertPolicy.DeliveryMode
    NAME_FIELD_NUMBER: _ClassVar[int]
    EMAIL_RECIPIENTS_FIELD_NUMBER: _ClassVar[int]
    SLACK_WEBHOOK_URL_FIELD_NUMBER: _ClassVar[int]
    SLACK_WEBHOOK_HOST_FIELD_NUMBER: _ClassVar[int]
    MINIMUM_SEVERITY_FIELD_NUMBER: _ClassVar[int]
    SUPPRESSION_WINDOW_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_MODE_FIELD_NUMBER: _ClassVar[int]
    DIGEST_HOUR_FIELD_NUMBER: _ClassVar[int]
    TIME_ZONE_FIELD_NUMBER: _ClassVar[int]
    DISABLED_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    ALERT_WHEN_ENDED_FIELD_NUMBER: _ClassVar[int]
    name: str
    email_recipients: _containers.RepeatedScalarFieldContainer[str]
    slack_webhook_url: str
    slack_webhook_host: str
    minimum_severity: _resources_pb2.DriftEvent.Severity
    suppression_window: _duration_pb2.Duration
    delivery_mode: AlertPolicy.DeliveryMode
    digest_hour: int
    time_zone: str
    disabled: bool
    update_time: _timestamp_pb2.Timestamp
    etag: str
    alert_when_ended: bool
    def __init__(self, name: _Optional[str] = ..., email_recipients: _Optional[_Iterable[str]] = ..., slack_webhook_url: _Optional[str] = ..., slack_webhook_host: _Optional[str] = ..., minimum_severity: _Optional[_Union[_resources_pb2.DriftEvent.Severity, str]] = ..., suppression_window: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., delivery_mode: _Optional[_Union[AlertPolicy.DeliveryMode, str]] = ..., digest_hour: _Optional[int] = ..., time_zone: _Optional[str] = ..., disabled: _Optional[bool] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., etag: _Optional[str] = ..., alert_when_ended: _Optional[bool] = ...) -> None: ...

class Alert(_message.Message):
    __slots__ = ("name", "kind", "channel", "recipients", "subject", "drift_events", "drift_event_change_count", "webhook", "state", "attempt_count", "last_error", "next_attempt_time", "create_time", "complete_time", "attempts")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        KIND_UNSPECIFIED: _ClassVar[Alert.Kind]
        DRIFT_EVENT: _ClassVar[Alert.Kind]
        DIGEST: _ClassVar[Alert.Kind]
        WEBHOOK_DISABLED: _ClassVar[Alert.Kind]
        REPORT_READY: _ClassVar[Alert.Kind]
    KIND_UNSPECIFIED: Alert.Kind
    DRIFT_EVENT: Alert.Kind
    DIGEST: Alert.Kind
    WEBHOOK_DISABLED: Alert.Kind
    REPORT_READY: Alert.Kind
    class Channel(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        CHANNEL_UNSPECIFIED: _ClassVar[Alert.Channel]
        EMAIL: _ClassVar[Alert.Channel]
        SLACK: _ClassVar[Alert.Channel]
    CHANNEL_UNSPECIFIED: Alert.Channel
    EMAIL: Alert.Channel
    SLACK: Alert.Channel
    class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATE_UNSPECIFIED: _ClassVar[Alert.State]
        PENDING: _ClassVar[Alert.State]
        SENT: _ClassVar[Alert.State]
        RETRYING: _ClassVar[Alert.State]
        FAILED: _ClassVar[Alert.State]
    STATE_UNSPECIFIED: Alert.State
    PENDING: Alert.State
    SENT: Alert.State
    RETRYING: Alert.State
    FAILED: Alert.State
    class Attempt(_message.Message):
        __slots__ = ("start_time", "response_code", "error")
        START_TIME_FIELD_NUMBER: _ClassVar[int]
        RESPONSE_CODE_FIELD_NUMBER: _ClassVar[int]
        ERROR_FIELD_NUMBER: _ClassVar[int]
        start_time: _timestamp_pb2.Timestamp
        response_code: int
        error: str
        def __init__(self, start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., response_code: _Optional[int] = ..., error: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    RECIPIENTS_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    DRIFT_EVENTS_FIELD_NUMBER: _ClassVar[int]
    DRIFT_EVENT_CHANGE_COUNT_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_COUNT_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    NEXT_ATTEMPT_TIME_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    COMPLETE_TIME_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: Alert.Kind
    channel: Alert.Channel
    recipients: _containers.RepeatedScalarFieldContainer[str]
    subject: str
    drift_events: _containers.RepeatedScalarFieldContainer[str]
    drift_event_change_count: int
    webhook: str
    state: Alert.State
    attempt_count: int
    last_error: str
    next_attempt_time: _timestamp_pb2.Timestamp
    create_time: _timestamp_pb2.Timestamp
    complete_time: _timestamp_pb2.Timestamp
    attempts: _containers.RepeatedCompositeFieldContainer[Alert.Attempt]
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[_Union[Alert.Kind, str]] = ..., channel: _Optional[_Union[Alert.Channel, str]] = ..., recipients: _Optional[_Iterable[str]] = ..., subject: _Optional[str] = ..., drift_events: _Optional[_Iterable[str]] = ..., drift_event_change_count: _Optional[int] = ..., webhook: _Optional[str] = ..., state: _Optional[_Union[Alert.State, str]] = ..., attempt_count: _Optional[int] = ..., last_error: _Optional[str] = ..., next_attempt_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., complete_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., attempts: _Optional[_Iterable[_Union[Alert.Attempt, _Mapping]]] = ...) -> None: ...
