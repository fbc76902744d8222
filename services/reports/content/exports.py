"""Claims and drift events as CSV rows and JSON Lines, written a page at a time: claims as
Arrow batches, computed a column at a time; events a row at a time.

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
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from google.protobuf import json_format, timestamp_pb2
from google.protobuf.message import Message
from google.type import date_pb2, money_pb2

from upstream.drift.v1 import resources_pb2 as drift_resources_pb2

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


# One column per field a person uses, in this order (documented in the README), each computed
# for a whole Arrow batch of claims (ingest's `StreamClaims` with the ARROW encoding) at once.
@dataclass(frozen=True)
class ClaimColumn:
    name: str
    values: Callable[[pa.RecordBatch, str], pa.Array]
    # Text from outside: neutralised, and quoted where it holds a quote, comma or line end.
    # Other columns (numbers, dates, times, flags, enum names) are written as they are.
    outside_text: bool = False


_FORMULA_START = "^[=+\\-@\t\r]"
_NEEDS_QUOTES = '[",\r\n]'


def _text_column(values: pa.Array) -> pa.Array:
    """Text from outside, neutralised (as `neutralised`) for a whole column."""
    risky = pc.match_substring_regex(values, _FORMULA_START)
    if not pc.any(risky).as_py():
        return values
    return pc.if_else(risky, pc.binary_join_element_wise("'", values, ""), values)


def _money_column(cents: pa.Array) -> pa.Array:
    """US cents as plain decimals with two places (as `money_text`): the digits of the cents,
    at least three, with a point before the last two."""
    digits = pc.utf8_lpad(pc.abs(cents).cast(pa.string()), 3, "0")
    text = pc.binary_replace_slice(digits, -2, -2, ".")
    negative = pc.less(cents, 0)
    if not pc.any(negative).as_py():
        return text
    return pc.if_else(negative, pc.binary_join_element_wise("-", text, ""), text)


def _time_column(stamps: pa.Array) -> pa.Array:
    """Microsecond times in RFC 3339, UTC, with 0, 3 or 6 decimals (as `time_text`). Each
    distinct time is formatted once: the claims of an upload share a few."""
    distinct = stamps.dictionary_encode()
    text = pc.strftime(distinct.dictionary, "%Y-%m-%dT%H:%M:%SZ")
    text = pc.replace_substring_regex(text, r"\.000000Z$", "Z")
    text = pc.replace_substring_regex(text, r"(\.\d{3})000Z$", r"\1Z")
    return text.take(distinct.indices)


def _listed(lists: pa.ListArray, values: pa.Array) -> pa.Array:
    """`values` (one per item of `lists`) joined with `;` per row."""
    return pc.binary_join(pa.ListArray.from_arrays(lists.offsets, values), LIST_SEPARATOR)


def _adjustment_amounts(batch: pa.RecordBatch, customer: str) -> pa.Array:
    adjustments = batch.column("adjustments")
    return _listed(adjustments, _money_column(adjustments.flatten().field("amount_cents")))


def _carc_codes(batch: pa.RecordBatch, customer: str) -> pa.Array:
    items = batch.column("adjustments").flatten()
    codes = pc.binary_join_element_wise(items.field("group_code"), items.field("reason_code"), "-")
    return _listed(batch.column("adjustments"), codes)


def _text(name: str) -> ClaimColumn:
    return ClaimColumn(name, lambda batch, customer: batch.column(name), outside_text=True)


def _plain(name: str) -> ClaimColumn:
    return ClaimColumn(name, lambda batch, customer: batch.column(name).cast(pa.string()))


def _money(name: str, cents: str) -> ClaimColumn:
    return ClaimColumn(name, lambda batch, customer: _money_column(batch.column(cents)))


def _resource_name(name: str, collection: str, id_column: str) -> ClaimColumn:
    def values(batch: pa.RecordBatch, customer: str) -> pa.Array:
        prefix = f"customers/{customer}/{collection}/"
        return pc.binary_join_element_wise(prefix, batch.column(id_column), "")

    return ClaimColumn(name, values, outside_text=True)


CLAIM_COLUMNS: Sequence[ClaimColumn] = (
    _text("claim_id"),
    _text("payer"),
    _text("payer_raw_name"),
    _text("payer_raw_id"),
    _plain("status"),
    _plain("denied"),
    _plain("partially_denied"),
    _text("code_group"),
    ClaimColumn(
        "procedure_codes",
        lambda batch, _: pc.binary_join(batch.column("procedure_codes"), LIST_SEPARATOR),
        outside_text=True,
    ),
    _plain("service_date"),
    _plain("submitted_date"),
    # Ingest keeps no received date (an 835's DTM*050 stands in for the submitted date).
    ClaimColumn("received_date", lambda batch, _: pa.nulls(batch.num_rows, pa.string())),
    _plain("decision_date"),
    _money("billed_amount", "billed_cents"),
    _money("allowed_amount", "allowed_cents"),
    _money("paid_amount", "paid_cents"),
    _money("patient_responsibility", "patient_responsibility_cents"),
    # Adjustments as the uploads write them (`CO-50;PR-1`), their amounts in the same order.
    ClaimColumn("carc_codes", _carc_codes, outside_text=True),
    ClaimColumn("adjustment_amounts", _adjustment_amounts),
    _text("payer_claim_control_number"),
    _resource_name("upload", "uploads", "upload_id"),
    ClaimColumn("update_time", lambda batch, _: _time_column(batch.column("update_time"))),
    _resource_name("name", "claims", "claim_uid"),
)


def _evidence(event: drift_resources_pb2.DriftEvent) -> drift_resources_pb2.DriftEvidence:
    return event.evidence


def _bound(interval: str, bound: str) -> Callable[[drift_resources_pb2.DriftEvent], Cell]:
    """One bound of one of the evidence's intervals, empty where the metric has none."""

    def cell(event: drift_resources_pb2.DriftEvent) -> Cell:
        evidence = event.evidence
        value: float = getattr(getattr(evidence, interval), bound)
        return value if evidence.HasField(interval) else None

    return cell


def _end_reason(event: drift_resources_pb2.DriftEvent) -> str | None:
    reason = event.end_reason
    return None if reason == 0 else drift_resources_pb2.DriftEvent.EndReason.Name(reason)


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
    ("untested_since", lambda e: date_text(e.untested_since)),
    ("end_reason", _end_reason),
    ("triaged_by", lambda e: Text(e.triaged_by)),
    ("triage_time", lambda e: time_text(e.triage_time)),
    *(
        (f"{interval}_{bound}", _bound(interval, bound))
        for interval in ("baseline_interval", "current_interval", "effect_interval")
        for bound in ("lower", "upper")
    ),
    ("first_run", lambda e: Text(e.first_run)),
    ("last_run", lambda e: Text(e.last_run)),
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


def _csv_cells(column: ClaimColumn, values: pa.Array) -> pa.Array:
    """Cells of one column as RFC 4180 wants them, an unset value empty; text from outside
    neutralised, and quoted (quotes doubled) where it holds a quote, a comma or a line end."""
    values = pc.fill_null(values, "")
    if not column.outside_text:
        return values
    values = _text_column(values)
    needs_quotes = pc.match_substring_regex(values, _NEEDS_QUOTES)
    if not pc.any(needs_quotes).as_py():
        return values
    quoted = pc.binary_join_element_wise('"', pc.replace_substring(values, '"', '""'), '"', "")
    return pc.if_else(needs_quotes, quoted, values)


class ArrowCsvWriter:
    """Arrow batches of claims as RFC 4180 CSV, a header first: every cell of a batch is
    computed column by column in Arrow's kernels, then the rows are joined into one piece."""

    def __init__(self, columns: Sequence[ClaimColumn], customer: str) -> None:
        self._columns = columns
        self._customer = customer

    def header(self) -> bytes:
        return (",".join(column.name for column in self._columns) + "\r\n").encode()

    def rows(self, batch: pa.RecordBatch) -> bytes:
        if not batch.num_rows:
            return b""
        cells = [
            _csv_cells(column, column.values(batch, self._customer)) for column in self._columns
        ]
        cells[-1] = pc.binary_join_element_wise(cells[-1], "\r\n", "")
        lines = pc.binary_join_element_wise(*cells, ",")
        # The rows lie end to end in the array's character buffer.
        offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32)
        start, end = int(offsets[lines.offset]), int(offsets[lines.offset + len(lines)])
        return lines.buffers()[2][start:end].to_pybytes()


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
