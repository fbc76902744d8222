"""Claims CSV exports: header variants, US and ISO dates, `$1,234.56` and `(12.00)` amounts.

Push-based: `feed()` takes text as it arrives and returns the records of the complete rows
in it, so memory stays flat for any file size. A bad row becomes a `Rejection` naming its
line, column, raw value and the reason; it never takes the good rows with it.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from services.ingest.records import (
    Adjustment,
    ClaimRecord,
    ClaimStatus,
    FileError,
    ParsedItem,
    ParseLimits,
    Rejection,
    UploadWarning,
)

# Canonical column → the header spellings real exports use (compared after normalising).
COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "claim_id": ("claim id", "claim number", "claim no", "claim", "claim #",
                 "patient control number", "patient account number", "account number"),
    "payer": ("payer", "payer name", "insurance", "insurance name", "insurance company",
              "carrier", "plan", "plan name", "primary payer", "payor", "payor name"),
    "payer_id": ("payer id", "payer number", "payor id", "payer code"),
    "procedure_code": ("procedure code", "procedure", "cpt", "cpt code", "hcpcs",
                       "cpt hcpcs", "hcpcs code", "service code", "code"),
    "service_date": ("service date", "date of service", "dos", "from date", "service from"),
    "submitted_date": ("submitted date", "submission date", "date submitted", "claim date",
                       "bill date", "billed date", "received date", "sent date"),
    "decision_date": ("decision date", "remit date", "remittance date", "adjudication date",
                      "adjudicated date", "processed date", "paid date", "payment date",
                      "check date", "eob date", "era date"),
    "status": ("status", "claim status"),
    "billed_amount": ("billed amount", "billed", "charge", "charges", "charge amount",
                      "total charges", "billed charges", "amount billed"),
    "allowed_amount": ("allowed amount", "allowed", "amount allowed"),
    "paid_amount": ("paid amount", "paid", "payment", "payment amount", "amount paid",
                    "insurance paid", "ins paid"),
    "patient_responsibility": ("patient responsibility", "patient resp", "patient portion",
                               "pt resp", "patient amount"),
    "carc_codes": ("carc codes", "carc", "carcs", "adjustment codes", "adjustment reason codes",
                   "denial codes", "denial reason", "denial reason codes", "reason codes"),
    "payer_claim_control_number": ("payer claim control number", "payer claim number", "icn",
                                   "payer claim id"),
}  # fmt: skip
REQUIRED_COLUMNS = ("claim_id", "payer")
_STATUSES = {
    "PAID": ClaimStatus.PAID,
    "PARTIAL": ClaimStatus.PARTIAL,
    "PARTIALLY PAID": ClaimStatus.PARTIAL,
    "DENIED": ClaimStatus.DENIED,
    "REJECTED": ClaimStatus.DENIED,
    "PENDING": ClaimStatus.PENDING,
    "IN PROCESS": ClaimStatus.PENDING,
    "OPEN": ClaimStatus.PENDING,
    "SUBMITTED": ClaimStatus.PENDING,
    "REVERSED": ClaimStatus.REVERSED,
    "REVERSAL": ClaimStatus.REVERSED,
    "VOID": ClaimStatus.REVERSED,
    "VOIDED": ClaimStatus.REVERSED,
}
_CARC = re.compile(r"^(CO|PR|OA|PI|CR)[-\s:]?([A-Z]?\d{1,3})$")
_PROCEDURE = re.compile(r"^[A-Z0-9]{4,5}$")
# ASCII digits only: str.isdigit() and int() also take "²", "١", "+3" and "0_3".
_DIGITS = re.compile(r"[0-9]+")
_YEAR = re.compile(r"[0-9]{4}")
_MONTH_OR_DAY = re.compile(r"[0-9]{1,2}")
_QUOTE_OR_NEWLINE = re.compile(r'["\n]')
# Cells a spreadsheet would run as a formula (OWASP CSV injection).
_FORMULA_START = ("=", "+", "@", "\t", "\r")
# A leading minus is a formula too (`-2+3+cmd|...`) unless the cell is just a negative number.
_NEGATIVE_NUMBER = re.compile(r"-[0-9]+(?:\.[0-9]+)?")


def _normalise(header: str) -> str:
    return re.sub(r"[\s_\-./#]+", " ", header.strip().lower()).strip()


_ALIAS_INDEX = {
    _normalise(alias): column
    for column, aliases in COLUMN_ALIASES.items()
    for alias in (column, *aliases)
}


class RowError(ValueError):
    def __init__(self, column: str, raw_value: str, reason: str, code: str) -> None:
        super().__init__(reason)
        self.column, self.raw_value, self.reason, self.code = column, raw_value, reason, code


def parse_date(column: str, raw: str) -> dt.date | None:
    """ISO `2026-03-14`, US `03/14/2026` or `3/14/26`, compact `20260314`; a time part after
    the date is ignored. Empty means no date."""
    text = raw.strip()
    if not text:
        return None
    text = text.split("T")[0].split(" ")[0]
    try:
        if "-" in text:
            year, month, day = text.split("-")
        elif "/" in text:
            month, day, year = text.split("/")
            if len(year) == 2:
                year = "20" + year
        elif len(text) == 8:
            year, month, day = text[:4], text[4:6], text[6:]
        else:
            raise ValueError
        if not (_YEAR.fullmatch(year) and _MONTH_OR_DAY.fullmatch(month)):
            raise ValueError
        if not _MONTH_OR_DAY.fullmatch(day):
            raise ValueError
        return dt.date(int(year), int(month), int(day))
    except ValueError:
        raise RowError(
            column, raw, f"{raw!r} is not a date (use 2026-03-14 or 03/14/2026)", "BAD_DATE"
        ) from None


def parse_cents(column: str, raw: str) -> int | None:
    """`1234.56`, `$1,234.56`, `-12.5`, `(12.00)` (negative) → cents; empty → None."""
    text = raw.strip().replace("$", "").replace(",", "").replace(" ", "")
    if not text:
        return None
    negative = False
    if text.startswith("(") and text.endswith(")"):
        negative, text = True, text[1:-1]
    if text.startswith("-"):
        negative, text = not negative, text[1:]
    whole, _, fraction = text.partition(".")
    if (
        not (whole or fraction)
        or (whole and not _DIGITS.fullmatch(whole))
        or (fraction and not _DIGITS.fullmatch(fraction))
        or len(fraction) > 2
        or len(whole) > 12
    ):
        raise RowError(column, raw, f"{raw!r} is not an amount (e.g. 1234.56)", "BAD_AMOUNT")
    cents = int(whole or "0") * 100 + int((fraction + "00")[:2])
    return -cents if negative else cents


def parse_adjustments(raw: str) -> tuple[Adjustment, ...]:
    """`CO-50;PR-1` (also `,`, `|` or spaces between codes, `CO50`, `CO:50`)."""
    codes = [c for c in re.split(r"[;,|\s]+", raw.strip().upper()) if c]
    adjustments = []
    for code in codes:
        found = _CARC.match(code)
        if found is None:
            raise RowError(
                "carc_codes",
                raw,
                f"{code!r} is not a CARC code with its group (e.g. CO-50, PR-1)",
                "BAD_CARC",
            )
        adjustments.append(Adjustment(found.group(1), found.group(2), 0))
    return tuple(adjustments)


def _text(column: str, raw: str, *, required: bool) -> str:
    text = raw.strip()
    if required and not text:
        raise RowError(column, raw, f"{column} is required", "MISSING_FIELD")
    if text.startswith(_FORMULA_START) or (
        text.startswith("-") and not _NEGATIVE_NUMBER.fullmatch(text)
    ):
        raise RowError(column, raw, "looks like a spreadsheet formula, not a value", "FORMULA")
    return text


class CsvParser:
    """Parses a claims CSV pushed to it in pieces of text of any size."""

    def __init__(
        self, column_map: Mapping[str, str] | None = None, limits: ParseLimits | None = None
    ) -> None:
        self._column_map = dict(column_map or {})
        self._limits = limits or ParseLimits()
        self._buffer = ""
        self._line = 0  # physical lines consumed so far
        self._scan = _RecordScan()
        self._over_long = False  # the record being read is over-long; its text is dropped
        self._columns: dict[str, int] | None = None
        self._header_width = 0
        self._dialect: type[csv.Dialect] | csv.Dialect = csv.excel
        self.rows_read = 0

    def feed(self, text: str) -> list[ParsedItem]:
        self._buffer += text
        return list(self._drain(final=False))

    def close(self) -> list[ParsedItem]:
        items = list(self._drain(final=True))
        if self._columns is None:
            raise FileError("the file has no header row", code="NO_HEADER")
        return items

    def _drain(self, *, final: bool) -> Iterator[ParsedItem]:
        """Complete records out of the buffer: a record ends at a newline outside quotes."""
        while True:
            record_end, lines = self._record_end(final)
            if record_end < 0:
                if len(self._buffer) > self._limits.max_line_bytes:
                    self._refuse_long_header(self._line + 1)
                    self._over_long = True
                    # Finding where the record ends needs only its scan state and last character.
                    self._scan.discard(len(self._buffer) - 1)
                    self._buffer = self._buffer[-1:]
                return
            record, self._buffer = self._buffer[:record_end], self._buffer[record_end + 1 :]
            first_line = self._line + 1
            self._line += lines
            if self._over_long or len(record) > self._limits.max_line_bytes:
                self._refuse_long_header(first_line)
                self._over_long = False
                self.rows_read += 1
                yield Rejection(
                    first_line,
                    f"row is longer than {self._limits.max_line_bytes} bytes",
                    "LINE_TOO_LONG",
                )
                continue
            if not record.strip():
                continue
            yield from self._record(record, first_line)

    def _refuse_long_header(self, line: int) -> None:
        """An over-long header is the end of the file; an over-long row is only rejected."""
        if self._columns is None:
            raise FileError(
                f"line {line} is longer than {self._limits.max_line_bytes} bytes; "
                "this does not look like a CSV header",
                code="LINE_TOO_LONG",
                line_number=line,
            )

    def _record_end(self, final: bool) -> tuple[int, int]:
        """Index of the newline that ends the first complete record, and its line count.

        A quote opens a quoted field only at the start of a field, as the csv module reads
        it; elsewhere it is a plain character, so a stray quote cannot swallow later rows."""
        scan, buffer = self._scan, self._buffer
        delimiter: str = self._dialect.delimiter
        field_starts = ("\n", ",", ";") if self._columns is None else ("\n", delimiter)
        for found in _QUOTE_OR_NEWLINE.finditer(buffer, scan.position):
            at = found.start()
            if buffer[at] == "\n":
                scan.lines += 1
                if not scan.quoted:
                    self._scan = _RecordScan()
                    return at, scan.lines
            elif scan.quoted:
                scan.quoted, scan.closed_at = False, at
            elif at == 0 or buffer[at - 1] in field_starts or scan.closed_at == at - 1:
                scan.quoted = True
        scan.position = len(buffer)
        if not (final and buffer):
            return -1, 0
        # The last record: no newline after it, or an unclosed quote runs it to the end.
        lines = scan.lines
        if not buffer.endswith("\n"):
            self._buffer += "\n"
            lines += 1
        self._scan = _RecordScan()
        return len(self._buffer) - 1, lines

    def _record(self, record: str, line: int) -> Iterator[ParsedItem]:
        try:
            cells = next(csv.reader([record.rstrip("\r")], self._dialect))
        except csv.Error as exc:
            if self._columns is None:
                raise FileError(f"line {line}: {exc}", code="BAD_CSV", line_number=line) from exc
            self.rows_read += 1
            yield Rejection(line, f"not a valid CSV row: {exc}", "BAD_CSV")
            return
        if len(cells) > self._limits.max_columns:
            if self._columns is None:
                raise FileError(
                    f"the header has {len(cells)} columns; at most {self._limits.max_columns}",
                    code="TOO_MANY_COLUMNS",
                    line_number=line,
                )
            self.rows_read += 1
            yield Rejection(
                line, f"row has {len(cells)} columns, more than the header", "TOO_MANY_COLUMNS"
            )
            return
        if self._columns is None:
            yield from self._header(cells, line)
            return
        self.rows_read += 1
        if len(cells) > self._header_width and any(c.strip() for c in cells[self._header_width :]):
            # Usually an amount like 1,234.56 that was not quoted: the columns have shifted.
            yield Rejection(
                line,
                f"row has {len(cells)} columns but the header has {self._header_width}; "
                "quote values that contain commas",
                "COLUMN_COUNT",
            )
            return
        try:
            yield self._claim(cells, line)
        except RowError as error:
            yield Rejection(line, error.reason, error.code, error.column, error.raw_value[:200])

    def _header(self, cells: list[str], line: int) -> Iterator[ParsedItem]:
        if len(cells) == 1 and ";" in cells[0]:
            # European exports separate columns with semicolons.
            self._dialect = _Semicolon
            cells = next(csv.reader([";".join(cells)], self._dialect))
        by_header = {_normalise(h): i for i, h in enumerate(cells)}
        columns: dict[str, int] = {}
        for canonical, header in self._column_map.items():
            if canonical not in COLUMN_ALIASES:
                raise FileError(
                    f"column_map names unknown column {canonical!r}; known: "
                    + ", ".join(COLUMN_ALIASES),
                    code="BAD_COLUMN_MAP",
                )
            if _normalise(header) not in by_header:
                raise FileError(
                    f"column_map maps {canonical!r} to {header!r}, which is not in the header",
                    code="BAD_COLUMN_MAP",
                    line_number=line,
                )
            columns[canonical] = by_header[_normalise(header)]
        for name, index in by_header.items():
            alias_of = _ALIAS_INDEX.get(name)
            if alias_of is not None:
                columns.setdefault(alias_of, index)
        # Mapped columns are used; an alias the column_map overrode is not.
        used = set(columns.values())
        ignored = [cells[index].strip() for index in by_header.values() if index not in used]
        missing = [c for c in REQUIRED_COLUMNS if c not in columns]
        if "decision_date" not in columns and "status" not in columns:
            missing.append("decision_date")
        if missing:
            wanted = "; ".join(f"{m} (or {', '.join(COLUMN_ALIASES[m][:3])})" for m in missing)
            raise FileError(
                f"line {line}: missing required column {wanted}",
                code="MISSING_COLUMN",
                line_number=line,
            )
        self._columns = columns
        self._header_width = len(cells)
        if ignored:
            yield UploadWarning(
                "IGNORED_COLUMNS", "columns not used: " + ", ".join(ignored[:20]), line
            )

    def _claim(self, cells: list[str], line: int) -> ClaimRecord:
        columns = self._columns
        assert columns is not None

        def cell(name: str) -> str:
            index = columns.get(name)
            return cells[index] if index is not None and index < len(cells) else ""

        status_text = cell("status").strip().upper()
        status = _STATUSES.get(status_text) if status_text else None
        if status_text and status is None:
            raise RowError(
                "status",
                cell("status"),
                f"unknown status {cell('status')!r} (PAID, PARTIAL, DENIED, PENDING, REVERSED)",
                "BAD_STATUS",
            )
        decision_date = parse_date("decision_date", cell("decision_date"))
        if status is ClaimStatus.PENDING:
            decision_date = None
        elif decision_date is None:
            raise RowError(
                "decision_date",
                cell("decision_date"),
                "decision_date is required unless the status is PENDING",
                "MISSING_FIELD",
            )
        billed = parse_cents("billed_amount", cell("billed_amount")) or 0
        paid = parse_cents("paid_amount", cell("paid_amount")) or 0
        adjustments = parse_adjustments(cell("carc_codes"))
        code = cell("procedure_code").strip().upper()
        if code and not _PROCEDURE.match(code.split("-")[0].split(":")[0]):
            raise RowError(
                "procedure_code", code, f"{code!r} is not a CPT/HCPCS code", "BAD_PROCEDURE_CODE"
            )
        if status is None:
            status = ClaimStatus.PENDING if decision_date is None else ClaimStatus.PAID
        return ClaimRecord(
            source_line=line,
            claim_id=_text("claim_id", cell("claim_id"), required=True),
            payer_name=_text("payer", cell("payer"), required=True),
            payer_id=_text("payer_id", cell("payer_id"), required=False),
            status=status,
            procedure_codes=(code.split("-")[0].split(":")[0],) if code else (),
            service_date=parse_date("service_date", cell("service_date")),
            submitted_date=parse_date("submitted_date", cell("submitted_date")),
            decision_date=decision_date,
            billed_cents=billed,
            allowed_cents=parse_cents("allowed_amount", cell("allowed_amount")),
            paid_cents=paid,
            patient_responsibility_cents=parse_cents(
                "patient_responsibility", cell("patient_responsibility")
            )
            or 0,
            adjustments=adjustments,
            payer_claim_control_number=_text(
                "payer_claim_control_number", cell("payer_claim_control_number"), required=False
            ),
        )


@dataclass
class _RecordScan:
    """How far the search for the end of the buffer's first record has got."""

    position: int = 0
    lines: int = 0
    quoted: bool = False
    closed_at: int = -2  # where the last quoted field's closing quote was

    def discard(self, characters: int) -> None:
        """The buffer lost its first `characters` characters."""
        self.position -= characters
        self.closed_at -= characters


class _Semicolon(csv.excel):
    delimiter = ";"
