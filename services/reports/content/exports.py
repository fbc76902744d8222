"""Claims and drift events as CSV rows and JSON Lines, written a page at a time.

CSV follows RFC 4180 (`\\r\\n` line ends, quotes doubled), UTF-8 without a byte-order mark,
with a header row. A cell holds a number, a date, a time, `true`/`false`, or text:
- numbers are written by us and stay numbers: money as plain decimals with two places
  (`-12.50`: a negative adjustment is a negative number, never a formula), ratios and
  p values as decimals;
- text (ids, names, codes, summaries, notes: whatever came from an upload or a person) that
  begins with `=`, `+`, `-`, `@`, a tab or a carriage return is neutralised against formula
  injection in spreadsheets by a leading `'` (OWASP's advice), so `-5` as a claim id reads
  `'-5` while an amount of -5 reads `-5.00`;
- lists (procedure codes, adjustments, CARC codes moved) are joined with `;`.
Dates are ISO 8601 (`2025-03-31`), times RFC 3339 in UTC (`2025-03-31T14:05:00Z`), an unset
value an empty cell. JSON Lines carry each resource in its proto3 JSON form, one per line.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from typing import Any

from google.protobuf import json_format, timestamp_pb2
from google.protobuf.message import Message
from google.type import date_pb2, money_pb2

from upstream.drift.v1 import resources_pb2 as drift_resources_pb2
from upstream.ingest.v1 import resources_pb2 as ingest_resources_pb2

# Chunks handed on are at most about this size (a page of claims is a few hundred KiB).
CHUNK_BYTES = 256 * 1024
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
LIST_SEPARATOR = ";"
_NANOS_PER_CENT = 10_000_000


class Text(str):
    """A cell of text from outside (an upload, a person): neutralised when written."""


Cell = Text | str | int | float | bool | None


def neutralised(text: str) -> str:
    """`text` made inert in spreadsheets: a leading `'` where it would start a formula."""
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def cell_text(value: Cell) -> str:
    if value is None:
        return ""
    if isinstance(value, Text):
        return neutralised(str(value))
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def money_text(money: money_pb2.Money) -> str:
    """A google.type.Money as a plain decimal with at least two places: `1234.50`, `-0.07`."""
    units, nanos = money.units, money.nanos
    if nanos % _NANOS_PER_CENT:  # finer than cents: every digit there is
        return str((Decimal(units) + Decimal(nanos).scaleb(-9)).normalize())
    cents = abs(units * 100 + nanos // _NANOS_PER_CENT)
    sign = "-" if units < 0 or nanos < 0 else ""
    return f"{sign}{cents // 100}.{cents % 100:02d}"


def date_text(date: date_pb2.Date) -> str | None:
    if not date.year:
        return None
    return f"{date.year:04d}-{date.month:02d}-{date.day:02d}"


def time_text(stamp: timestamp_pb2.Timestamp) -> str | None:
    if not stamp.seconds and not stamp.nanos:
        return None
    return stamp.ToJsonString()


def _joined(values: Iterable[str]) -> Text:
    return Text(LIST_SEPARATOR.join(values))


def _status(claim: ingest_resources_pb2.Claim) -> str:
    return ingest_resources_pb2.Claim.Status.Name(claim.status)


# One column per field a person uses, in this order (documented in the README).
CLAIM_COLUMNS: Sequence[tuple[str, Callable[[ingest_resources_pb2.Claim], Cell]]] = (
    ("claim_id", lambda c: Text(c.claim_id)),
    ("payer", lambda c: Text(c.payer)),
    ("payer_raw_name", lambda c: Text(c.payer_raw_name)),
    ("payer_raw_id", lambda c: Text(c.payer_raw_id)),
    ("status", _status),
    ("denied", lambda c: c.denied),
    ("partially_denied", lambda c: c.partially_denied),
    ("code_group", lambda c: Text(c.code_group)),
    ("procedure_codes", lambda c: _joined(c.procedure_codes)),
    ("service_date", lambda c: date_text(c.service_date)),
    ("submitted_date", lambda c: date_text(c.submitted_date)),
    ("received_date", lambda c: date_text(c.received_date)),
    ("decision_date", lambda c: date_text(c.decision_date)),
    ("billed_amount", lambda c: money_text(c.billed_amount)),
    ("allowed_amount", lambda c: money_text(c.allowed_amount)),
    ("paid_amount", lambda c: money_text(c.paid_amount)),
    ("patient_responsibility", lambda c: money_text(c.patient_responsibility)),
    # Adjustments as the uploads write them (`CO-50;PR-1`), their amounts in the same order.
    ("carc_codes", lambda c: _joined(f"{a.group_code}-{a.reason_code}" for a in c.adjustments)),
    (
        "adjustment_amounts",
        lambda c: LIST_SEPARATOR.join(money_text(a.amount) for a in c.adjustments),
    ),
    ("payer_claim_control_number", lambda c: Text(c.payer_claim_control_number)),
    ("upload", lambda c: Text(c.upload)),
    ("update_time", lambda c: time_text(c.update_time)),
    ("name", lambda c: Text(c.name)),
)


def _evidence(event: drift_resources_pb2.DriftEvent) -> drift_resources_pb2.DriftEvidence:
    return event.evidence


def _seasonal(event: drift_resources_pb2.DriftEvent) -> float | None:
    evidence = event.evidence
    return (
        evidence.seasonal_expected_value if evidence.HasField("seasonal_expected_value") else None
    )


EVENT_COLUMNS: Sequence[tuple[str, Callable[[drift_resources_pb2.DriftEvent], Cell]]] = (
    ("name", lambda e: Text(e.name)),
    ("payer", lambda e: Text(e.payer)),
    ("code_group", lambda e: Text(e.code_group)),
    ("metric", lambda e: drift_resources_pb2.Metric.Name(e.metric)),
    ("severity", lambda e: drift_resources_pb2.DriftEvent.Severity.Name(e.severity)),
    ("state", lambda e: drift_resources_pb2.DriftEvent.State.Name(e.state)),
    ("active", lambda e: e.active),
    ("summary", lambda e: Text(e.summary)),
    ("dollars_at_stake", lambda e: money_text(e.dollars_at_stake)),
    ("baseline_value", lambda e: _evidence(e).baseline_value),
    ("current_value", lambda e: _evidence(e).current_value),
    ("seasonal_expected_value", _seasonal),
    ("effect_size", lambda e: _evidence(e).effect_size),
    ("effect_unit", lambda e: Text(_evidence(e).effect_unit)),
    ("baseline_count", lambda e: _evidence(e).baseline_count),
    ("current_count", lambda e: _evidence(e).current_count),
    ("baseline_events", lambda e: _evidence(e).baseline_events),
    ("current_events", lambda e: _evidence(e).current_events),
    ("p_value", lambda e: _evidence(e).p_value),
    ("q_value", lambda e: _evidence(e).q_value),
    ("test", lambda e: Text(_evidence(e).test)),
    (
        "carc_codes_moved",
        lambda e: _joined(
            f"{s.code}:{s.baseline_share:.4f}>{s.current_share:.4f}"
            for s in _evidence(e).carc_codes_moved
        ),
    ),
    ("baseline_start_date", lambda e: date_text(e.baseline_window.start_date)),
    ("baseline_end_date", lambda e: date_text(e.baseline_window.end_date)),
    ("current_start_date", lambda e: date_text(e.current_window.start_date)),
    ("current_end_date", lambda e: date_text(e.current_window.end_date)),
    ("first_detected_time", lambda e: time_text(e.first_detected_time)),
    ("last_seen_time", lambda e: time_text(e.last_seen_time)),
    ("end_time", lambda e: time_text(e.end_time)),
    ("triage_note", lambda e: Text(e.triage_note)),
)


class CsvWriter:
    """Rows of resources as RFC 4180 CSV, a header first, in chunks of about CHUNK_BYTES."""

    def __init__(self, columns: Sequence[tuple[str, Callable[[Any], Cell]]]) -> None:
        self._columns = columns
        self._buffer = io.StringIO()
        self._csv = csv.writer(self._buffer, lineterminator="\r\n")
        self._csv.writerow(name for name, _ in columns)

    def rows(self, resources: Iterable[Any]) -> list[bytes]:
        """Write `resources`; the chunks that are full."""
        chunks = []
        for resource in resources:
            self._csv.writerow(cell_text(value(resource)) for _, value in self._columns)
            if self._buffer.tell() >= CHUNK_BYTES:
                chunks.append(self.flush())
        return chunks

    def flush(self) -> bytes:
        chunk = self._buffer.getvalue().encode()
        self._buffer.seek(0)
        self._buffer.truncate()
        return chunk


class JsonLinesWriter:
    """Resources in their proto3 JSON form, one compact object per line."""

    def __init__(self) -> None:
        self._buffer = io.StringIO()

    def rows(self, resources: Iterable[Message]) -> list[bytes]:
        chunks = []
        for resource in resources:
            self._buffer.write(
                json.dumps(
                    json_format.MessageToDict(resource), ensure_ascii=False, separators=(",", ":")
                )
            )
            self._buffer.write("\n")
            if self._buffer.tell() >= CHUNK_BYTES:
                chunks.append(self.flush())
        return chunks

    def flush(self) -> bytes:
        chunk = self._buffer.getvalue().encode()
        self._buffer.seek(0)
        self._buffer.truncate()
        return chunk
