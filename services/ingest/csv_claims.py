"""Claims CSV exports: header variants, US and ISO dates, `$1,234.56` and `(12.00)` amounts,
adjustments as CARC codes (`CO-50;PR-1`) or in columns of their own (group, reason, amount).

Push-based: `feed()` takes text as it arrives and returns the records of the complete rows
in it, so memory stays flat for any file size. A bad row becomes a `Rejection` naming its
line, column, raw value and the reason; it never takes the good rows with it. A row is a
claim or one line of one: rows of one claim that follow each other come out combined
(`claim_lines`), and the upload combines those further apart.
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import io
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from runtime.words import counted
from services.ingest.claim_lines import combine, same_claim
from services.ingest.records import (
    ADJUSTMENT_GROUPS,
    CARC,
    MAX_CLAIM_ID_LENGTH,
    Adjustment,
    ClaimColumns,
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
                 "patient control number", "patient account number", "account number",
                 "patient account", "encounter id", "encounter number", "visit number"),
    "payer": ("payer", "payer name", "insurance", "insurance name", "insurance company",
              "carrier", "plan", "plan name", "primary payer", "payor", "payor name",
              "primary insurance", "insurance plan", "insurance carrier", "payer plan",
              "carrier name", "primary carrier", "primary payer name"),
    "payer_id": ("payer id", "payer number", "payor id", "payer code"),
    "procedure_code": ("procedure code", "procedure", "cpt", "cpt code", "hcpcs",
                       "cpt hcpcs", "hcpcs code", "service code", "code"),
    "service_date": ("service date", "date of service", "dos", "from date", "service from",
                     "dos from", "service from date", "first date of service"),
    "submitted_date": ("submitted date", "submission date", "date submitted", "claim date",
                       "bill date", "billed date", "received date", "sent date"),
    "decision_date": ("decision date", "remit date", "remittance date", "adjudication date",
                      "adjudicated date", "processed date", "paid date", "payment date",
                      "check date", "eob date", "era date", "post date", "posted date",
                      "posting date", "paid on", "processed on", "process date",
                      "processing date"),
    "status": ("status", "claim status"),
    "billed_amount": ("billed amount", "billed", "charge", "charges", "charge amount",
                      "total charges", "billed charges", "amount billed", "total charge",
                      "claim charge", "claim charges", "total billed", "gross charges"),
    "allowed_amount": ("allowed amount", "allowed", "amount allowed", "allowed charges"),
    "paid_amount": ("paid amount", "paid", "payment", "payment amount", "amount paid",
                    "insurance paid", "ins paid", "payer paid", "insurance payment",
                    "total paid", "claim paid", "claim payment", "net paid", "reimbursement",
                    "reimbursement amount", "payments", "insurance payment amount",
                    "payer paid amount", "plan paid", "paid to provider"),
    "patient_responsibility": ("patient responsibility", "patient resp", "patient portion",
                               "pt resp", "patient amount", "patient responsibility amount",
                               "patient liability", "pr amount", "patient share",
                               "member responsibility", "member liability"),
    # The patient's share in parts, as ERA exports split it: summed where the file has no
    # patient responsibility column.
    "deductible": ("deductible amount", "deductibles"),
    "coinsurance": ("coinsurance amount", "coins"),
    "copay": ("copay amount", "copayment", "copayment amount", "copays"),
    "carc_codes": ("carc codes", "carc", "carcs", "adjustment codes", "adjustment reason codes",
                   "denial codes", "denial reason", "denial reason codes", "reason codes",
                   "denial code", "denial reasons", "carc code"),
    "payer_claim_control_number": ("payer claim control number", "payer claim number", "icn",
                                   "payer claim id", "payer icn", "internal control number",
                                   "tcn", "dcn"),
    # One adjustment in three columns; more are numbered: adj_0_group, adj_0_code, adj_0_amount.
    "adjustment_group": ("adjustment group", "adjustment group code", "adj group", "group code",
                         "claim adjustment group code", "cas group"),
    "adjustment_reason_code": ("reason code", "adjustment reason code", "adjustment reason",
                               "adj reason code", "claim adjustment reason code"),
    "adjustment_amount": ("adjustment amount", "adjustment amt", "adj amount", "adj amt"),
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
    "PAID IN FULL": ClaimStatus.PAID,
    "APPROVED": ClaimStatus.PAID,
    "PARTIAL PAY": ClaimStatus.PARTIAL,
    "PARTIAL PAYMENT": ClaimStatus.PARTIAL,
    "PARTIALLY DENIED": ClaimStatus.PARTIAL,
    "DENIAL": ClaimStatus.DENIED,
    "DENY": ClaimStatus.DENIED,
    "PAID PARTIAL": ClaimStatus.PARTIAL,
    "PARTIAL PAID": ClaimStatus.PARTIAL,
    "DECLINED": ClaimStatus.DENIED,
    "PENDED": ClaimStatus.PENDING,
    "IN PROGRESS": ClaimStatus.PENDING,
    "IN REVIEW": ClaimStatus.PENDING,
    "UNDER REVIEW": ClaimStatus.PENDING,
    "ON HOLD": ClaimStatus.PENDING,
    "SUSPENDED": ClaimStatus.PENDING,
    "RECEIVED": ClaimStatus.PENDING,
    "ACCEPTED": ClaimStatus.PENDING,
    "ACKNOWLEDGED": ClaimStatus.PENDING,
}
# Statuses that say a payer decided but not how: read as no status, so the amounts and
# adjustments decide (paid nothing for a denial reason: denied), as for a file without one.
# An appeal, a readjudication, a crossover to the next payer and a write-off all follow a
# decision; "zero pay" may be a denial or the patient's deductible.
_DECIDED_STATUSES = frozenset(
    {
        "PROCESSED", "PROCESSED AS PRIMARY", "PROCESSED AS SECONDARY", "PROCESSED AS TERTIARY",
        "ADJUDICATED", "FINALIZED", "FINALISED", "CLOSED", "COMPLETE", "COMPLETED", "REMITTED",
        "APPEALED", "IN APPEAL", "ADJUSTED", "READJUDICATED", "RE ADJUDICATED", "REPROCESSED",
        "CROSSED OVER", "CROSSOVER", "FORWARDED", "ZERO PAY", "NO PAY", "WRITTEN OFF",
        "WRITE OFF",
    }
)  # fmt: skip
_CARC = re.compile(r"^(CO|PR|OA|PI|CR)[-\s:]?([A-Z]?\d{1,3})$")
# A group written apart from its reason code (`CO 45`, `PR - 1`), joined before the cell is
# split into codes; never onto a remark code.
_GROUP_APART = re.compile(r"\b(CO|PR|OA|PI|CR)[\s:-]+(?=(?!(?:MA|M|N)[0-9])[A-Z]?[0-9]{1,3}\b)")
_REASON_SEPARATORS = re.compile(r"[;,|/\s]+")
# Remittance advice remark codes (RARCs: N290, M127, MA130), which exports list beside the
# reason codes: they explain an adjustment and are none.
_REMARK = re.compile(r"(?:MA|M|N)[0-9]{1,4}")
# Codes given with their descriptions (`CO-16 - Claim lacks information; PR-1 - Deductible`,
# `CO 45 (Charges exceed the fee schedule)`, `N290: Missing rendering provider`), as denial
# reasons are often exported: each code, then anything with a letter in it up to the next.
_DESCRIBED_CODE = re.compile(
    r"\b(?:(CO|PR|OA|PI|CR)[\s:-]*([A-Z]?[0-9]{1,3})|((?:MA|M|N)[0-9]{1,4}))\b"
)
# What may stand between a code and its description, or between described codes.
_DESCRIPTION_GLUE = " \t\r\n;,|/:()[]-\u2013\u2014."
# A reason code apart from its group, with its description (`16 - Claim lacks information`).
_DESCRIBED_REASON = re.compile(r"([A-Z]?[0-9]{1,3})\b(.*)", re.DOTALL)
# Numbered adjustment columns (after `_normalise`): `adj 0 group`, `adjustment 1 amount`.
_NUMBERED_ADJUSTMENT = re.compile(r"adj(?:ustment)? ?([0-9]{1,3}) (group|code|reason|amount|amt)")
_ADJUSTMENT_PARTS = {"group": 0, "code": 1, "reason": 1, "amount": 2, "amt": 2}
# CPT (99213, 0001U, 0503F), HCPCS and CDT (J1100, D0120), revenue codes (0450).
_PROCEDURE = re.compile(r"^(?:[0-9]{4,5}|[0-9]{4}[A-Z]|[A-Z][0-9]{4})$")
# ASCII digits only: str.isdigit() and int() also take "²", "١", "+3" and "0_3".
_DIGITS = re.compile(r"[0-9]+")
_YEAR = re.compile(r"[0-9]{4}")
_MONTH_OR_DAY = re.compile(r"[0-9]{1,2}")
# An amount's currency named by its code (`USD 12.00`, `12.00 USD`; spaces taken out).
_CURRENCY_CODE = re.compile(r"USD([^A-Z].*)|(.*[^A-Z])USD", re.IGNORECASE)
_CREDIT = re.compile(r"(?:-|CR)$", re.IGNORECASE)
# What exports write in a cell that has no value: read as an empty cell.
_NO_VALUE = frozenset({"N/A", "NA", "NULL", "NONE", "-", "--", "—"})
_NO_DATES = frozenset({"00/00/0000", "0/0/0000", "00/00/00", "0000-00-00", "00000000"})
_ACCOUNTING_ZEROS = frozenset({"-", "--", "—"})
# Excel's serial numbers of dates are days since 1899-12-30; read those of 1970 to 2099.
_EXCEL_EPOCH = dt.date(1899, 12, 30)
_EXCEL_SERIALS = (25569, 73050)
# A date with slashes whose first number is a day, not a month: `14/03/2026`.
_DAY_FIRST = re.compile(r"\s*(?:1[3-9]|2[0-9]|3[01])/(?:0?[1-9]|1[0-2])/[0-9]{2,4}\b")
_MONTHS = {
    name: number
    for number, month in enumerate(
        ("january", "february", "march", "april", "may", "june", "july", "august",
         "september", "october", "november", "december"),
        start=1,
    )
    for name in (month, month[:3], *(("sept",) if month == "september" else ()))
}  # fmt: skip
# `14-Mar-2026`, `14-MAR-26`, `14 March 2026`; a time part after it ignored.
_NAMED_MONTH_DATE = re.compile(
    r"(?P<day>[0-9]{1,2})[- ](?P<month>[A-Za-z]{3,9})\.?[- ](?P<year>[0-9]{4}|[0-9]{2})"
    r"(?:[ T].*)?"
)
# `Mar 14, 2026`, `March 14 2026`, `Sept. 4, 2026`.
_MONTH_NAME_FIRST_DATE = re.compile(
    r"(?P<month>[A-Za-z]{3,9})\.? (?P<day>[0-9]{1,2}),? (?P<year>[0-9]{4})(?:[ T].*)?"
)
_QUOTE_OR_NEWLINE = re.compile(r'["\n]')
# Cells a spreadsheet would run as a formula (OWASP CSV injection).
_FORMULA_START = ("=", "+", "@", "\t", "\r")
_FORMULA_CHARS = "=+@\t\r-"
# A leading minus is a formula too (`-2+3+cmd|...`) unless the cell is just a negative number.
_NEGATIVE_NUMBER = re.compile(r"-[0-9]+(?:\.[0-9]+)?")


def _normalise(header: str) -> str:
    # `Claim #`, `Patient Account #`: the sign says number.
    return re.sub(r"[\s_\-./]+", " ", header.strip().lower().replace("#", " number ")).strip()


# Words exports shorten ("Billed Amt", "Claim Nbr", "Pmt Dt", "Amt Pd"), read as the word.
_SHORT_WORDS = {
    "amt": "amount", "amnt": "amount", "dt": "date", "nbr": "number", "num": "number",
    "no": "number", "nr": "number", "pmt": "payment", "pymt": "payment", "pd": "paid",
    "chg": "charge", "chgs": "charges", "chrg": "charge", "svc": "service", "srv": "service",
    "ins": "insurance", "pt": "patient", "pat": "patient", "cd": "code", "nm": "name",
    "resp": "responsibility", "adj": "adjustment", "proc": "procedure", "acct": "account",
    "ctrl": "control", "chk": "check", "rcvd": "received", "recd": "received", "tot": "total",
    "co": "company", "allowable": "allowed",
}  # fmt: skip
# `Co-Insurance`, `Co Pay`: one word, not a company's ("Ins Co").
_CO_WORDS = re.compile(r"\bco (ins|insurance|pay|payment|pmt)\b")
# Words a header may hold that do not change which column it is ("Date of Service").
_FILLER_WORDS = frozenset({"of", "the"})


def _header_key(header: str) -> tuple[str, ...]:
    """A header's words, shortened ones spelled out, in any order: "Paid Amt", "Amount Paid"
    and "amt_paid" are one column's; "Billed ($)" is "billed"."""
    words = _CO_WORDS.sub(r"co\1", re.sub(r"[$():]+", " ", _normalise(header))).split()
    return tuple(sorted(_SHORT_WORDS.get(w, w) for w in words if w not in _FILLER_WORDS))


def _alias_index() -> dict[tuple[str, ...], str]:
    index: dict[tuple[str, ...], str] = {}
    for column, aliases in COLUMN_ALIASES.items():
        for alias in (column, *aliases):
            other = index.setdefault(_header_key(alias), column)
            if other != column:
                raise AssertionError(f"{alias!r} would be a header of {other} and {column}")
    return index


_ALIAS_INDEX = _alias_index()
# A header's rank among its column's spellings: where a file has two headers of one column
# ("Claim #" and "Patient Account #"), the one listed first is read.
_ALIAS_RANK = {
    key: min(
        rank
        for rank, alias in enumerate((column, *COLUMN_ALIASES[column]))
        if _header_key(alias) == key
    )
    for key, column in _ALIAS_INDEX.items()
}


class RowError(ValueError):
    def __init__(self, column: str, raw_value: str, reason: str, code: str) -> None:
        super().__init__(reason)
        self.column, self.raw_value, self.reason, self.code = column, raw_value, reason, code


def parse_date(column: str, raw: str) -> dt.date | None:
    """ISO `2026-03-14`, US `03/14/2026` or `3/14/26`, compact `20260314`, year first with
    slashes `2026/03/14`, European with dots `14.03.2026`, and with the month's name:
    `14-Mar-2026`, `14-MAR-26`, `14 March 2026`, `Mar 14, 2026`, and Excel's serial number of a
    date (`46095`, as a date cell formatted as a number saves); a time part after the date is
    ignored. Empty means no date. (`14/03/2026` is not read: day first with slashes cannot be
    told from US dates.)"""
    try:
        return _date(raw)
    except ValueError:
        reason = f"{raw!r} is not a date (use 2026-03-14 or 03/14/2026)"
        if _DAY_FIRST.match(raw):
            # A day-first export: its dates with a day up to 12 were read, month first.
            reason = (
                f"{raw!r} can only be day first, and dates with slashes are read month first "
                "(US): if the file writes its dates day first, its other dates were misread "
                "too; export them as 2026-03-14"
            )
        raise RowError(column, raw, reason, "BAD_DATE") from None


# Files repeat the same few hundred dates a million times: each spelling is read once.
@functools.lru_cache(maxsize=8192)
def _date(raw: str) -> dt.date | None:
    text = raw.strip()
    if not text or text.upper() in _NO_VALUE or text in _NO_DATES:
        return None
    if (
        len(text) == 5
        and _DIGITS.fullmatch(text)
        and _EXCEL_SERIALS[0] <= int(text) <= _EXCEL_SERIALS[1]
    ):
        # A date cell Excel saved as its serial number (the cell formatted as a number).
        return _EXCEL_EPOCH + dt.timedelta(days=int(text))
    if named := _NAMED_MONTH_DATE.fullmatch(text):
        day, month_name, year = named.group("day", "month", "year")
        month = str(_MONTHS.get(month_name.lower(), 0))
        if len(year) == 2:
            year = "20" + year
        return _checked_date(raw, year, month, day)
    if named := _MONTH_NAME_FIRST_DATE.fullmatch(text):
        month_name, day, year = named.group("month", "day", "year")
        return _checked_date(raw, year, str(_MONTHS.get(month_name.lower(), 0)), day)
    text = text.split("T")[0].split(" ")[0]
    if "-" in text:
        year, month, day = text.split("-")
    elif "/" in text:
        month, day, year = text.split("/")
        if len(month) == 4:  # 2026/03/14
            year, month, day = month, day, year
        elif len(year) == 2:
            year = "20" + year
    elif "." in text:
        day, month, year = text.split(".")
    elif len(text) == 8:
        year, month, day = text[:4], text[4:6], text[6:]
    else:
        raise ValueError(raw)
    return _checked_date(raw, year, month, day)


def _checked_date(raw: str, year: str, month: str, day: str) -> dt.date:
    if not (_YEAR.fullmatch(year) and _MONTH_OR_DAY.fullmatch(month)):
        raise ValueError(raw)
    if not _MONTH_OR_DAY.fullmatch(day):
        raise ValueError(raw)
    return dt.date(int(year), int(month), int(day))


def parse_cents(column: str, raw: str, *, decimal_comma: bool = False) -> int | None:
    """`1234.56`, `$1,234.56`, `USD 12.00`, `-12.5`, `(12.00)`, `12.00-`, `12.00 CR` (the last
    four negative) → cents; empty → None; `$ -` (accounting zero) → 0. An amount in another
    currency (`€12,50`, `GBP 5`) is refused saying so.

    European spellings too: `1.234,56`, `12,50`. Where both `.` and `,` occur the last is the
    decimal mark; a lone `,` or `.` before one or two digits is one, before three digits a
    thousands separator (`1,234`; `1.234` only where `decimal_comma`, as in semicolon files,
    and otherwise refused as ambiguous). Thousands groups must have three digits.
    """
    whole, _, fraction = raw.partition(".")
    # The plain `1234.56` most exports write, without the general path's string work.
    if (
        len(fraction) == 2
        and whole.isdigit()
        and fraction.isdigit()
        and raw.isascii()
        and len(whole) <= 12
    ):
        return int(whole + fraction)
    text = raw.strip().replace("$", "").replace(" ", "")
    if text in _ACCOUNTING_ZEROS:
        # Excel's accounting format shows a zero as a dash (`$ -`), and saves it so.
        return 0
    if not text or text.upper() in _NO_VALUE:
        return None
    negative = False
    if (text[0] in "Uu" or text[-1] in "Dd") and (currency := _CURRENCY_CODE.fullmatch(text)):
        text = currency.group(1) or currency.group(2)
    if text.startswith("(") and text.endswith(")"):
        negative, text = True, text[1:-1]
    if text.startswith("-"):
        negative, text = not negative, text[1:]
    elif text.endswith(("-", "R", "r")) and (credit := _CREDIT.search(text)):
        # A credit as accounting exports write it: `12.00-`, `12.00 CR`.
        negative, text = not negative, text[: credit.start()]
    number = _plain_number(text, decimal_comma)
    whole, _, fraction = (number or "").partition(".")
    if (
        number is None
        or not (whole or fraction)
        or (whole and not _DIGITS.fullmatch(whole))
        or (fraction and not _DIGITS.fullmatch(fraction))
        or len(fraction) > 2
        or len(whole) > 12
    ):
        raise _not_an_amount(column, raw)
    cents = int(whole or "0") * 100 + int((fraction + "00")[:2])
    return -cents if negative else cents


# Currencies an amount may be written in that are not the dollars claims are paid in.
_FOREIGN_CURRENCY = re.compile(
    r"(€|£|¥|₹|(?<![A-Z])(?:EUR|GBP|CAD|AUD|MXN|JPY|CHF|INR)(?![A-Z]))", re.IGNORECASE
)
_CURRENCY_NAMES = {
    "€": "euros", "EUR": "euros", "£": "pounds sterling", "GBP": "pounds sterling",
    "¥": "yen", "JPY": "yen", "₹": "rupees", "INR": "rupees", "CAD": "Canadian dollars",
    "AUD": "Australian dollars", "MXN": "Mexican pesos", "CHF": "Swiss francs",
}  # fmt: skip


def _not_an_amount(column: str, raw: str) -> RowError:
    if foreign := _FOREIGN_CURRENCY.search(raw):
        currency = _CURRENCY_NAMES[foreign.group(1).upper()]
        return RowError(
            column,
            raw,
            f"{raw!r} is an amount in {currency}: amounts are read in US dollars (e.g. 1234.56)",
            "BAD_AMOUNT",
        )
    return RowError(column, raw, f"{raw!r} is not an amount (e.g. 1234.56)", "BAD_AMOUNT")


def _plain_number(text: str, decimal_comma: bool) -> str | None:
    """`text` with thousands separators dropped and `.` as the decimal mark; None where the
    separators make no sense or leave the meaning open."""
    last_dot, last_comma = text.rfind("."), text.rfind(",")
    if last_dot >= 0 and last_comma >= 0:
        decimal = "." if last_dot > last_comma else ","
    elif last_dot < 0 and last_comma < 0:
        return text
    else:
        mark = "." if last_dot >= 0 else ","
        after = len(text) - max(last_dot, last_comma) - 1
        if text.count(mark) > 1 or after == 3:
            if mark == "." and not decimal_comma and text.count(mark) == 1:
                return None  # `1.234`: a thousands separator or three decimals?
            decimal = "," if mark == "." else "."  # every mark separates thousands
        else:
            decimal = mark
    thousands = "," if decimal == "." else "."
    whole, _, fraction = text.partition(decimal)
    if decimal in fraction:
        return None
    groups = whole.split(thousands)
    if len(groups) > 1 and (
        not 1 <= len(groups[0]) <= 3
        or groups[0].startswith("0")
        or any(len(group) != 3 for group in groups[1:])
    ):
        return None
    return "".join(groups) + ("." + fraction if fraction or decimal in text else "")


def parse_reasons(raw: str) -> tuple[tuple[Adjustment, ...], tuple[str, ...]]:
    """The adjustments of `CO-50;PR-1` (also `,`, `|`, `/` or spaces between codes, `CO50`,
    `CO:50`, `CO 50`), and the remark codes (RARCs) listed among them."""
    try:
        return _reasons(raw)
    except ValueError as bad:
        raise RowError(
            "carc_codes",
            raw,
            f"{_as_written(bad.args[0], raw)!r} is not a CARC code with its group (e.g. CO-50, "
            "PR-1)",
            "BAD_CARC",
        ) from None


def _as_written(token: str, raw: str) -> str:
    """`token`, found in `raw` upper-cased, as `raw` has it (`Denied` for `DENIED`)."""
    at = raw.upper().find(token)
    return raw[at : at + len(token)] if at >= 0 and len(raw.upper()) == len(raw) else token


@functools.lru_cache(maxsize=4096)
def _reasons(raw: str) -> tuple[tuple[Adjustment, ...], tuple[str, ...]]:
    adjustments, remarks = [], []
    text = raw.strip().upper()
    for code in _REASON_SEPARATORS.split(_GROUP_APART.sub(r"\1-", text)):
        if not code:
            continue
        if (found := _CARC.match(code)) is not None:
            adjustments.append(Adjustment(found.group(1), found.group(2), 0))
        elif _REMARK.fullmatch(code):
            remarks.append(code)
        elif (described := _described_reasons(text)) is not None:
            return described
        else:
            raise ValueError(code)
    return tuple(adjustments), tuple(remarks)


def _described_reasons(text: str) -> tuple[tuple[Adjustment, ...], tuple[str, ...]] | None:
    """The codes of a cell that gives each with its description (see `_DESCRIBED_CODE`);
    None unless it begins with a code and all between its codes is description, words
    rather than numbers (`CO-45 12.50` is no code and its description)."""
    adjustments, remarks, after = [], [], 0
    for found in _DESCRIBED_CODE.finditer(text):
        between = text[after : found.start()].strip(_DESCRIPTION_GLUE)
        if between and (not after or not _is_description(between)):
            return None
        group, reason, remark = found.groups()
        if remark:
            remarks.append(remark)
        else:
            adjustments.append(Adjustment(group, reason, 0))
        after = found.end()
    rest = text[after:].strip(_DESCRIPTION_GLUE)
    if not after or not _is_description(rest):
        return None
    return tuple(adjustments), tuple(remarks)


def _is_description(text: str) -> bool:
    """Whether what follows a code is its description: nothing, or words."""
    return not text or any(character.isalpha() for character in text)


def _adjustments(raw: str) -> tuple[Adjustment, ...]:
    return _reasons(raw)[0]


def _remarks(raw: str) -> tuple[str, ...]:
    """The remark codes of a cell of reason codes; none if it is not one."""
    try:
        return _reasons(raw)[1]
    except ValueError:
        return ()


@dataclass
class _RemarkCodes:
    """The rows whose reason codes list remark codes, which are not kept: told once."""

    rows: int = 0
    first: tuple[int, str] | None = None  # (line, code)

    def note(self, line: int, code: str, rows: int = 1) -> None:
        self.rows += rows
        if self.first is None or line < self.first[0]:
            self.first = (line, code)

    def warning(self) -> UploadWarning | None:
        if self.first is None:
            return None
        line, code = self.first
        many = self.rows > 1
        return UploadWarning(
            "REMARK_CODES",
            f"{counted(self.rows, 'row')} list{'' if many else 's'} remark codes (RARCs) beside "
            f"{'their' if many else 'its'} reason codes, the first {code!r} on line {line}: a "
            "remark explains an adjustment and is not kept; the reason codes and "
            f"{'the claims' if many else 'the claim'} are kept",
            line,
        )


class AdjustmentColumns(NamedTuple):
    """Where one adjustment's group code, reason code and amount are in a row (-1: absent),
    and the names its rejections give those columns."""

    group_at: int
    reason_at: int
    amount_at: int
    group: str
    reason: str
    amount: str


def split_adjustment(
    cells: list[str], columns: AdjustmentColumns, *, decimal_comma: bool = False
) -> Adjustment | None:
    """The adjustment in one set of adjustment columns, read as an 835 CAS segment is read
    (group code, reason code, amount; an export may leave the amount out); None when its
    columns are empty."""
    group_raw, reason_raw = cells[columns.group_at], cells[columns.reason_at]
    amount_raw = cells[columns.amount_at]
    group, reason = group_raw.strip().upper(), reason_raw.strip().upper()
    if not (group or reason or amount_raw.strip()):
        return None
    if not group:
        # A reason code written with its group (`CO-45`) needs no group column.
        spelled = _CARC.match(reason)
        if spelled is None and (described := _described_reasons(reason)) is not None:
            spelled = _CARC.match(_one_adjustment(described))
        if spelled is None:
            raise RowError(
                columns.group, group_raw, f"{columns.group} is required", "MISSING_FIELD"
            )
        group, reason = spelled.groups()
    if group not in ADJUSTMENT_GROUPS:
        raise RowError(
            columns.group,
            group_raw,
            f"{group_raw.strip()!r} is not an adjustment group code (CO, PR, OA, PI, CR)",
            "BAD_GROUP_CODE",
        )
    if not reason:
        raise RowError(columns.reason, reason_raw, f"{columns.reason} is required", "MISSING_FIELD")
    if not CARC.fullmatch(reason):
        reason = _described_reason(reason)
    if not CARC.fullmatch(reason):
        raise RowError(
            columns.reason,
            reason_raw,
            f"{reason_raw.strip()!r} is not a claim adjustment reason code (e.g. 45, B7)",
            "BAD_CARC",
        )
    cents = parse_cents(columns.amount, amount_raw, decimal_comma=decimal_comma)
    return Adjustment(group, reason, cents or 0)


def _described_reason(reason: str) -> str:
    """The reason code of a reason column's cell that gives it with its description
    (`16 - Claim lacks information`), or with the separator an export writes before a
    description it does not have (`16 -`, `16:`); the cell as it is otherwise."""
    found = _DESCRIBED_REASON.fullmatch(reason)
    if found is None:
        return reason
    description = found.group(2).strip(_DESCRIPTION_GLUE)
    return found.group(1) if not description or _is_description(description) else reason


def _one_adjustment(described: tuple[tuple[Adjustment, ...], tuple[str, ...]]) -> str:
    """`CO-45` of a cell that gives one reason code with its group and description; '' if
    it gives another number of them."""
    adjustments, _ = described
    return (
        f"{adjustments[0].group_code}-{adjustments[0].reason_code}" if len(adjustments) == 1 else ""
    )


def _csv_problem(error: csv.Error) -> str:
    """The csv module's complaint, as the person who sent the file can act on it."""
    if "new-line character" in str(error):
        # A carriage return alone inside a line: binary data, not an export's text.
        return "the file does not look like CSV text (a carriage return inside a value)"
    return str(error)


@functools.lru_cache(maxsize=4096)
def _procedure_code(raw: str) -> str:
    """The CPT/HCPCS code of a cell (`99213`, `99213-25` with its modifier); '' if empty."""
    code = raw.strip().upper()
    if code and not _PROCEDURE.match(code.split("-")[0].split(":")[0]):
        raise ValueError(code)
    return code.split("-")[0].split(":")[0]


def _text(column: str, raw: str, *, required: bool) -> str:
    text = raw.strip()
    if text and text[0] not in _FORMULA_CHARS:
        return text
    if required and not text:
        raise RowError(column, raw, f"{column} is required", "MISSING_FIELD")
    if text.startswith(_FORMULA_START) or (
        text.startswith("-") and not _NEGATIVE_NUMBER.fullmatch(text)
    ):
        raise RowError(column, raw, "looks like a spreadsheet formula, not a value", "FORMULA")
    return text


def _claim_id(raw: str) -> str:
    claim_id = _text("claim_id", raw, required=True)
    if len(claim_id) > MAX_CLAIM_ID_LENGTH:
        raise RowError(
            "claim_id", raw, f"claim_id is longer than {MAX_CLAIM_ID_LENGTH} characters", "TOO_LONG"
        )
    return claim_id


class CsvParser:
    """Parses a claims CSV pushed to it in pieces of text of any size.

    The header, and a row known to be over-long, are cut out of the buffer one record at a
    time. After the header, each piece of text hands all the complete records it finished to
    one csv reader at once, and only the unfinished last record stays in the buffer.
    """

    def __init__(
        self,
        column_map: Mapping[str, str] | None = None,
        limits: ParseLimits | None = None,
        *,
        by_columns: bool = True,
        as_columns: bool = False,
    ) -> None:
        """`by_columns`: read plain pieces of text column by column (`_Columns`); off, every
        row is read on its own, as the rows `_Columns` cannot read always are. `as_columns`:
        hand the claims of such a piece over as they were read, in one `ClaimColumns`
        (where no row of it is another line of the claim before it)."""
        self._column_map = dict(column_map or {})
        self._by_columns = by_columns
        self._as_columns = as_columns
        self._limits = limits or ParseLimits()
        self._buffer = ""
        self._line = 0  # physical lines consumed so far
        self._scan = _RecordScan()
        self._over_long = False  # the record being read is over-long; its text is dropped
        self._columns: dict[str, int] | None = None
        # Where each canonical column is in a row (in _CLAIM_COLUMNS order); -1 if absent.
        self._at: tuple[int, ...] = ()
        self._header_width = 0
        self._dialect: type[csv.Dialect] | csv.Dialect = csv.excel
        # The delimiter was named by a `sep=` line.
        self._named_dialect = False
        # Lines read before the header that were not it (line number, text), and why the
        # first was not.
        self._above_header: list[tuple[int, str]] = []
        self._not_header: FileError | None = None
        # A header with every required column but the payer's, waiting on the line after it:
        # a report grouped by payer names each group's payer in a heading ("Payer: Aetna").
        self._without_payer: _HeaderLine | None = None
        # In such a report, the payer of the last heading read (None: the file has a payer
        # column).
        self._heading_payer: str | None = None
        self._adjustments: tuple[AdjustmentColumns, ...] = ()
        # The columns of the patient's share in parts (name, index), without a total's.
        self._patient_parts: tuple[tuple[str, int], ...] = ()
        self._remarks = _RemarkCodes()
        self._lines = _Lines()
        self._reader = csv.reader(self._lines, self._dialect)
        # The claim of the last rows read: the next row may be another line of it.
        self._open: ClaimRecord | None = None
        self.rows_read = 0

    def feed(self, text: str) -> list[ParsedItem]:
        self._buffer += text
        return self._drain(final=False)

    def close(self) -> list[ParsedItem]:
        items = self._drain(final=True)
        if self._without_payer is not None:
            self._not_the_header(self._without_payer)
        if self._columns is None:
            raise self._not_header or FileError("the file has no header row", code="NO_HEADER")
        if self._open is not None:
            items.append(self._open)
            self._open = None
        if (remarks := self._remarks.warning()) is not None:
            items.append(remarks)
        return items

    def _take(
        self, item: ClaimRecord | Rejection | UploadWarning | None, items: list[ParsedItem]
    ) -> None:
        """Adds a row's item to `items`; a claim is held while the next rows may be more
        lines of it (exports list a claim's lines together), up to a claim's line limit."""
        if item is None:
            return
        if not isinstance(item, ClaimRecord):
            items.append(item)
            return
        held, self._open = self._open, item
        if held is None:
            return
        if (
            held.claim_id == item.claim_id
            and held.rows < self._limits.max_claim_lines
            and same_claim(held, item)
        ):
            self._open = combine(held, item)
        else:
            items.append(held)

    def _drain(self, *, final: bool) -> list[ParsedItem]:
        items: list[ParsedItem] = []
        while self._columns is None or self._over_long:
            record_end, lines = self._record_end(final)
            if record_end < 0:
                self._drop_if_over_long()
                return items
            record, self._buffer = self._buffer[:record_end], self._buffer[record_end + 1 :]
            first_line = self._line + 1
            self._line += lines
            if self._over_long or len(record) > self._limits.max_line_bytes:
                self._refuse_long_header(first_line)
                self._over_long = False
                self.rows_read += 1
                items.append(self._too_long(first_line))
            elif record.strip():
                for item in self._record(record, first_line):
                    if isinstance(item, ClaimRecord | Rejection):
                        self._take(item, items)
                    else:
                        items.append(item)
        end = self._complete_end(final)
        if end:
            complete, self._buffer = self._buffer[:end], self._buffer[end:]
            items.extend(self._records(complete))
        self._drop_if_over_long()
        return items

    def _too_long(self, line: int) -> Rejection:
        return Rejection(
            line, f"row is longer than {self._limits.max_line_bytes} bytes", "LINE_TOO_LONG"
        )

    def _drop_if_over_long(self) -> None:
        """An unfinished record over the limit is dropped as it streams; only its scan state
        and last character are kept, enough to find where it ends."""
        if len(self._buffer) > self._limits.max_line_bytes:
            self._refuse_long_header(self._line + 1)
            self._over_long = True
            self._scan.discard(len(self._buffer) - 1)
            self._buffer = self._buffer[-1:]

    def _refuse_long_header(self, line: int) -> None:
        """An over-long header is the end of the file; an over-long row is only rejected."""
        if self._columns is None:
            raise FileError(
                f"line {line} is longer than {self._limits.max_line_bytes} bytes; "
                "this does not look like a CSV header",
                code="LINE_TOO_LONG",
                line_number=line,
            )

    def _field_starts(self) -> tuple[str, ...]:
        # The header's delimiter is not known until it is read.
        if self._columns is None:
            return ("\n", *_DIALECTS)
        return ("\n", self._dialect.delimiter)

    def _record_end(self, final: bool) -> tuple[int, int]:
        """Index of the newline that ends the first complete record, and its line count."""
        scan = self._scan
        at = _scan_quotes(self._buffer, scan, self._field_starts(), first_only=True)
        if at >= 0:
            lines = scan.lines
            self._scan = _RecordScan()
            return at, lines
        if not (final and self._buffer):
            return -1, 0
        # The last record: no newline after it, or an unclosed quote runs it to the end.
        lines = scan.lines
        if not self._buffer.endswith("\n"):
            self._buffer += "\n"
            lines += 1
        self._scan = _RecordScan()
        return len(self._buffer) - 1, lines

    def _complete_end(self, final: bool) -> int:
        """Length of the buffer's complete records (all of it at the end of the file)."""
        scan, buffer = self._scan, self._buffer
        if not scan.quoted and buffer.find('"', scan.position) < 0:
            # No quote to track: records end at newlines.
            last = buffer.rfind("\n", scan.position)
            scan.position = len(buffer)
            if last >= 0:
                scan.lines = 0
        else:
            last = _scan_quotes(buffer, scan, self._field_starts(), first_only=False)
        if final and buffer:
            self._scan = _RecordScan()
            return len(buffer)
        if last < 0:
            return 0
        scan.discard(last + 1)
        return last + 1

    def _records(self, text: str) -> list[ParsedItem]:
        """The items of complete records, read by the one csv reader of the file."""
        if (
            self._by_columns
            and not self._adjustments
            and self._limits.max_line_bytes < csv.field_size_limit()
            and _plain(text)
        ):
            return self._plain_records(text)
        lines = io.StringIO(text, newline="\n").readlines()
        source, reader, limit = self._lines, self._reader, self._limits.max_line_bytes
        source.reset(lines)
        base = self._line + 1
        self._line += len(lines)
        items: list[ParsedItem] = []
        while True:
            start = source.index
            try:
                cells = next(reader)
            except StopIteration:
                return items
            except csv.Error as exc:
                # The rest of the record is skipped as a whole, whatever the error left.
                source.index = start + _record_line_count(lines, start, self._field_starts())
                self.rows_read += 1
                items.append(
                    Rejection(base + start, f"not a valid CSV row: {_csv_problem(exc)}", "BAD_CSV")
                )
                continue
            stop = source.index
            length = len(lines[start]) if stop - start == 1 else sum(map(len, lines[start:stop]))
            if lines[stop - 1].endswith("\n"):
                length -= 1
            if length > limit:
                self.rows_read += 1
                items.append(self._too_long(base + start))
            elif len(cells) > 1 or (cells and cells[0].strip()) or _text_in(lines[start:stop]):
                self._take(self._row(cells, base + start), items)

    def _plain_records(self, text: str) -> list[ParsedItem]:
        """`_records` of text without quotes, NULs or lone carriage returns, so that each line
        is one record and its cells are what splitting it at the delimiter gives, as the csv
        reader would read them. The rows of the header's width are read column by column;
        any other row, and any row with a cell the columns could not read, is read on its
        own by `_row`, which says what is wrong with it."""
        delimiter, width = self._dialect.delimiter, self._header_width
        limit = self._limits.max_line_bytes
        even = _even_columns(text, delimiter, width, limit)
        if even is not None:
            # Every line a row of the header's width (none blank, none over-long).
            count, by_column = even
            base = self._line + 1
            self._line += count
            return self._take_even(by_column, count, base)
        lines = text.split("\n")
        if lines[-1] == "":
            lines.pop()  # the text ends with a newline
        base = self._line + 1
        self._line += len(lines)
        # The length the csv path measures includes the carriage return of a CRLF line.
        lengths = list(map(len, lines))
        if "\r" in text:
            lines = [line.removesuffix("\r") for line in lines]
        cells = [line.split(delimiter) for line in lines]
        if (
            lengths
            and max(lengths) <= limit
            and width > 1
            and list(map(len, cells)).count(width) == len(cells)
        ):
            # Every line a row of the header's width, some over the limit in bytes only.
            return self._take_even(_by_column(cells), len(cells), base, list(cells))
        # An over-long line is refused whatever its cells (None); a blank line is no row ([]).
        rows = [
            None if length > limit else [] if len(row) == 1 and not row[0].strip() else row
            for length, row in zip(lengths, cells, strict=True)
        ]
        whole = [row for row in rows if row is not None and len(row) == width]
        numbers = [
            base + offset
            for offset, row in enumerate(rows)
            if row is not None and len(row) == width
        ]
        return self._take_rows(
            rows, base, _Columns(self, _by_column(whole), len(whole)).claims(numbers)
        )

    def _take_even(
        self,
        by_column: Sequence[Sequence[str]],
        count: int,
        base: int,
        rows: list[list[str] | None] | None = None,
    ) -> list[ParsedItem]:
        """The items of `count` rows of the header's width from line `base`, given by column
        (and as `rows`, if at hand): read by the columns, or, where a row has a cell they
        could not read, each in turn (that row on its own)."""
        columns, unread = _Columns(self, by_column, count).read(list(range(base, base + count)))
        if not unread:
            return self._take_all(columns)
        if rows is None:
            rows = list(map(list, zip(*by_column, strict=True)))
        return self._take_rows(rows, base, _read(columns, unread))

    def _take_rows(
        self, rows: list[list[str] | None], base: int, claims: list[ClaimRecord | None]
    ) -> list[ParsedItem]:
        """Each line's item in order: its claim from `claims` (those of the rows of the
        header's width, in order) or, where that is None, the row read on its own; nothing
        for a blank line (its row []); a rejection for an over-long one (its row None)."""
        width = self._header_width
        taken = iter(claims)
        items: list[ParsedItem] = []
        for offset, row in enumerate(rows):
            if row is None:
                self.rows_read += 1
                items.append(self._too_long(base + offset))
            elif not row:
                continue
            elif len(row) == width and (claim := next(taken)) is not None:
                self.rows_read += 1
                self._take(claim, items)
            else:
                self._take(self._row(row, base + offset), items)
        return items

    def _take_all(self, columns: ClaimColumns) -> list[ParsedItem]:
        """`_take` of each claim, at once where no claim id follows itself: the claims as
        `columns` give them, or as records, the last held (the next rows may be more lines
        of it)."""
        ids = columns.claim_id
        items: list[ParsedItem] = []
        if (self._open is not None and ids[0] == self._open.claim_id) or any(
            map(str.__eq__, ids, ids[1:])
        ):
            for claim in columns.records():
                self.rows_read += 1
                self._take(claim, items)
            return items
        self.rows_read += len(columns)
        held, self._open = self._open, columns.record(-1)
        if held is not None:
            items.append(held)
        if len(columns) > 1:
            if self._as_columns:
                items.append(columns.sliced(0, -1))
            else:
                items += columns.sliced(0, -1).records()
        return items

    def _record(self, record: str, line: int) -> Iterator[ParsedItem]:
        """The header (after Excel's `sep=` line, if the file begins with one), or a row cut
        out on its own."""
        if self._columns is None and not self._named_dialect and self._without_payer is None:
            hint = _SEPARATOR_HINT.fullmatch(record.strip("\r\n "))
            if hint is not None and not self._above_header:
                self._named_dialect = True
                self._use_dialect(_DIALECTS[hint.group(1)])
                return
            self._use_dialect(_header_dialect(record))
        try:
            cells = next(csv.reader([record.rstrip("\r")], self._dialect))
        except csv.Error as exc:
            if self._columns is None:
                raise FileError(
                    f"line {line}: {_csv_problem(exc)}", code="BAD_CSV", line_number=line
                ) from exc
            self.rows_read += 1
            yield Rejection(line, f"not a valid CSV row: {_csv_problem(exc)}", "BAD_CSV")
            return
        if self._without_payer is not None:
            yield from self._after_header_without_payer(cells, record, line)
            return
        if self._columns is None:
            if len(cells) > self._limits.max_columns:
                raise FileError(
                    f"the header has {len(cells)} columns; at most {self._limits.max_columns}",
                    code="TOO_MANY_COLUMNS",
                    line_number=line,
                )
            try:
                yield from self._header(cells, line)
            except _NotAHeaderError as not_header:
                header = _HeaderLine(cells, line, record, not_header.error)
                if not_header.missing == ("payer",) and "payer" not in self._column_map:
                    # The payer may be in the report's headings: the next line says.
                    self._without_payer = header
                else:
                    self._not_the_header(header)
                return
            if self._above_header:
                yield _lines_above_header(self._above_header, line)
            return
        if (item := self._row(cells, line)) is not None:
            yield item

    def _not_the_header(self, header: _HeaderLine) -> None:
        """A report's title or date above its header, or a file without a header: the first
        line's error is given if no line soon after is the header."""
        self._without_payer = None
        self._above_header.append((header.line, header.record))
        self._not_header = self._not_header or header.error
        if len(self._above_header) > MAX_LINES_ABOVE_HEADER:
            raise self._not_header from None

    def _after_header_without_payer(
        self, cells: list[str], record: str, line: int
    ) -> Iterator[ParsedItem]:
        """The line after a header without a payer column: a payer's heading makes the file a
        report grouped by payer (each claim's payer the last heading's); anything else, and
        that header was not the header (the line is read as one in turn)."""
        header = self._without_payer
        assert header is not None
        if not any(cell.strip() for cell in cells):
            return  # a row of empty cells between the header and the first heading
        payer = _payer_heading(cells)
        if payer is None:
            self._not_the_header(header)
            yield from self._record(record, line)
            return
        self._without_payer = None
        yield from self._header(header.cells, header.line, payer_headings=True)
        self._heading_payer = payer
        # Rows are read one by one, each after the headings above it.
        self._by_columns = False
        if self._above_header:
            yield _lines_above_header(self._above_header, header.line)
        yield UploadWarning(
            "PAYER_HEADINGS",
            "the file has no payer column: each claim's payer is the one its group's heading "
            f"names ({_shown(cells)!r} on line {line}, the first)",
            line,
        )

    def _row(self, cells: list[str], line: int) -> ClaimRecord | Rejection | UploadWarning | None:
        """The row's claim, or what is wrong with it; None for a row of empty cells (`,,,,`,
        as spreadsheets save an empty row), which is nothing, as an empty line is, and for a
        payer's heading in a report grouped by payer."""
        if self._heading_payer is not None:
            if (payer := _payer_heading(cells)) is not None:
                self._heading_payer = payer
                return None
            cells = self._with_heading_payer(cells)
        claim_at, payer_at = self._at[0], self._at[1]
        if not (
            claim_at < len(cells)
            and payer_at < len(cells)
            and cells[claim_at].strip()
            and cells[payer_at].strip()
        ):
            filled = [cell for cell in cells if cell.strip()]
            if not filled:
                return None
            if _TOTALS_LABEL.fullmatch(label := filled[0].strip()) and not (
                claim_at < len(cells) and cells[claim_at].strip()
            ):
                # A report's totals labelled in another column than the claim id's (its first,
                # say, where a payer is written once beside its claims).
                return UploadWarning(
                    "TOTALS_ROW",
                    f"line {line} is a totals row ({label!r}, without a claim id), not a claim:"
                    " skipped",
                    line,
                )
            if len(filled) == 1 and claim_at != payer_at:
                # A report's heading ("Payer: Aetna") or footer ("End of Report") among its
                # rows: one cell is never a claim (a claim names its payer too, in another
                # column unless a column map made them one).
                return UploadWarning(
                    "NOTE_LINE",
                    f"line {line} holds only {filled[0].strip()[:80]!r}: a report's heading "
                    "or note, not a claim: skipped",
                    line,
                )
        if 0 <= claim_at < len(cells) and _TOTALS_LABEL.fullmatch(cells[claim_at].strip()):
            # A report's totals, not a claim: no row of the file's claims (nor a rejection,
            # which would fail an all-or-nothing upload).
            return UploadWarning(
                "TOTALS_ROW",
                f"line {line} is a totals row ({cells[claim_at].strip()!r} as the claim id), "
                "not a claim: skipped",
                line,
            )
        self.rows_read += 1
        width = self._header_width
        if len(cells) > width:
            # The file's own count of cells (a grouped report's payer is not one of them).
            given = len(cells) - (self._heading_payer is not None)
            if given > self._limits.max_columns:
                return Rejection(
                    line, f"row has {given} columns, more than the header", "TOO_MANY_COLUMNS"
                )
            if any(c.strip() for c in cells[width:]):
                # Usually an amount like 1,234.56 (or codes like CO-45;PR-1 in a semicolon
                # file) that was not quoted: the columns have shifted.
                separators = _SEPARATOR_NAMES.get(self._dialect.delimiter, "the delimiter")
                header = width - (self._heading_payer is not None)
                return Rejection(
                    line,
                    f"row has {given} columns but the header has {header}; "
                    f"quote values that contain {separators}",
                    "COLUMN_COUNT",
                )
        try:
            return self._claim(cells, line)
        except RowError as error:
            failed = error
        if any(map(_EXCEL_TEXT.fullmatch, cells)):
            # `="0012345"`: the text Excel keeps as written (leading zeros and all), which
            # some exports write their ids and codes as; read as its text.
            try:
                return self._claim([_excel_text(cell) for cell in cells], line)
            except RowError as error:
                failed = error
        return Rejection(line, failed.reason, failed.code, failed.column, failed.raw_value[:200])

    def _with_heading_payer(self, cells: list[str]) -> list[str]:
        """A row of a report grouped by payer with its group's payer in the place after the
        header's columns (`_header`); cells beyond those follow it."""
        assert self._heading_payer is not None
        width = self._header_width - 1
        return [*cells[:width], *[""] * (width - len(cells)), self._heading_payer, *cells[width:]]

    def _use_dialect(self, dialect: type[csv.Dialect]) -> None:
        self._dialect = dialect
        self._reader = csv.reader(self._lines, dialect)

    def _header(
        self, cells: list[str], line: int, *, payer_headings: bool = False
    ) -> Iterator[ParsedItem]:
        """Takes `cells` as the header, or raises `_NotAHeaderError`. With `payer_headings`,
        the file's payers are in headings: the payer is read after a row's last cell."""
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
                raise _NotAHeaderError(
                    FileError(
                        f"column_map maps {canonical!r} to {header!r}, which is not in the header",
                        code="BAD_COLUMN_MAP",
                        line_number=line,
                    )
                )
            columns[canonical] = by_header[_normalise(header)]
        numbered: dict[int, list[int]] = {}
        named: dict[str, tuple[int, int]] = {}  # column -> (rank of its header, index)
        for name, index in by_header.items():
            key = _header_key(name)
            alias_of = _ALIAS_INDEX.get(key)
            if alias_of is not None:
                if alias_of not in named or _ALIAS_RANK[key] < named[alias_of][0]:
                    named[alias_of] = (_ALIAS_RANK[key], index)
            elif found := _NUMBERED_ADJUSTMENT.fullmatch(name):
                parts = numbered.setdefault(int(found.group(1)), [-1, -1, -1])
                parts[_ADJUSTMENT_PARTS[found.group(2)]] = index
        for column, (_, index) in named.items():
            columns.setdefault(column, index)  # a column_map's choice stands
        shares = [(name, columns.pop(name)) for name in _PATIENT_PARTS if name in columns]
        self._patient_parts = () if "patient_responsibility" in columns else tuple(shares)
        columns.update(self._patient_parts)
        # Mapped columns are used; an alias the column_map overrode is not.
        used = set(columns.values()) | {i for parts in numbered.values() for i in parts}
        ignored = [cells[index].strip() for index in by_header.values() if index not in used]
        if payer_headings:
            columns["payer"] = len(cells)
        missing = [c for c in REQUIRED_COLUMNS if c not in columns]
        if "decision_date" not in columns and "status" not in columns:
            missing.append("decision_date")
        if missing:
            wanted = "; ".join(f"{m} (or {', '.join(_other_spellings(m)[:3])})" for m in missing)
            raise _NotAHeaderError(
                FileError(
                    f"line {line}: missing required column {wanted}",
                    code="MISSING_COLUMN",
                    line_number=line,
                ),
                tuple(missing),
            )
        self._columns = columns
        self._at = tuple(columns.get(name, -1) for name in _CLAIM_COLUMNS)
        self._adjustments = _adjustment_columns(columns, numbered)
        # A grouped report's rows have their payer after their cells (`_with_heading_payer`).
        self._header_width = len(cells) + payer_headings
        if ignored:
            yield UploadWarning(
                "IGNORED_COLUMNS", "columns not used: " + ", ".join(ignored[:20]), line
            )

    def _claim(self, cells: list[str], line: int) -> ClaimRecord:
        # Runs once per row of files with millions of rows: plain indexing, cached parsing.
        if len(cells) < self._header_width:
            cells += [""] * (self._header_width - len(cells))
        cells.append("")  # what an absent column (index -1) reads
        (
            claim_at, payer_at, payer_id_at, code_at, service_at, submitted_at, decision_at,
            status_at, billed_at, allowed_at, paid_at, patient_at, carc_at, control_at,
        ) = self._at  # fmt: skip
        try:
            status = _status(cells[status_at])
        except ValueError:
            raw = cells[status_at]
            raise RowError(
                "status",
                raw,
                f"unknown status {raw!r} (PAID, PARTIAL, DENIED, PENDING, REVERSED)",
                "BAD_STATUS",
            ) from None
        decision_date = parse_date("decision_date", cells[decision_at])
        if status is ClaimStatus.PENDING:
            decision_date = None
        elif decision_date is None:
            raise RowError(
                "decision_date",
                cells[decision_at],
                "decision_date is required unless the status is PENDING",
                "MISSING_FIELD",
            )
        decimal_comma = self._dialect is _Semicolon
        billed = parse_cents("billed_amount", cells[billed_at], decimal_comma=decimal_comma) or 0
        paid = parse_cents("paid_amount", cells[paid_at], decimal_comma=decimal_comma) or 0
        adjustments, remarks = parse_reasons(cells[carc_at])
        for columns in self._adjustments:
            split = split_adjustment(cells, columns, decimal_comma=decimal_comma)
            if split is not None:
                adjustments += (split,)
        try:
            codes = _procedure_codes(cells[code_at])
        except ValueError as bad:
            raise RowError(
                "procedure_code",
                bad.args[0],
                f"{bad.args[0]!r} is not a CPT/HCPCS code",
                "BAD_PROCEDURE_CODE",
            ) from None
        claim = ClaimRecord(
            source_line=line,
            claim_id=_claim_id(cells[claim_at]),
            payer_name=_text("payer", cells[payer_at], required=True),
            payer_id=_text("payer_id", cells[payer_id_at], required=False),
            # A row that states no status is decided: the denial rules say how.
            status=status or ClaimStatus.PAID,
            status_stated=status is not None,
            procedure_codes=codes,
            service_date=parse_date("service_date", cells[service_at]),
            submitted_date=parse_date("submitted_date", cells[submitted_at]),
            decision_date=decision_date,
            billed_cents=billed,
            allowed_cents=parse_cents(
                "allowed_amount", cells[allowed_at], decimal_comma=decimal_comma
            ),
            paid_cents=paid,
            patient_responsibility_cents=sum(
                parse_cents(name, cells[at], decimal_comma=decimal_comma) or 0
                for name, at in self._patient_parts
            )
            if self._patient_parts
            else parse_cents(
                "patient_responsibility", cells[patient_at], decimal_comma=decimal_comma
            )
            or 0,
            adjustments=adjustments,
            payer_claim_control_number=_text(
                "payer_claim_control_number", cells[control_at], required=False
            ),
        )
        if remarks:
            self._remarks.note(line, remarks[0])
        return claim


_CLAIM_COLUMNS = (
    "claim_id", "payer", "payer_id", "procedure_code", "service_date", "submitted_date",
    "decision_date", "status", "billed_amount", "allowed_amount", "paid_amount",
    "patient_responsibility", "carc_codes", "payer_claim_control_number",
)  # fmt: skip
_ADJUSTMENT_COLUMNS = ("adjustment_group", "adjustment_reason_code", "adjustment_amount")
_PATIENT_PARTS = ("deductible", "coinsurance", "copay")


def _other_spellings(column: str) -> list[str]:
    """The header spellings of a column other than its own name."""
    return [a for a in COLUMN_ALIASES[column] if _normalise(a) != _normalise(column)]


def _adjustment_columns(
    columns: Mapping[str, int], numbered: Mapping[int, list[int]]
) -> tuple[AdjustmentColumns, ...]:
    """The header's sets of adjustment columns, in the order the header has them."""
    found = [
        AdjustmentColumns(
            group, reason, amount,
            f"adj_{number}_group", f"adj_{number}_code", f"adj_{number}_amount",
        )
        for number, (group, reason, amount) in numbered.items()
    ]  # fmt: skip
    if any(name in columns for name in _ADJUSTMENT_COLUMNS):
        group, reason, amount = (columns.get(name, -1) for name in _ADJUSTMENT_COLUMNS)
        found.append(AdjustmentColumns(group, reason, amount, *_ADJUSTMENT_COLUMNS))
    return tuple(sorted(found, key=lambda c: min(i for i in c[:3] if i >= 0)))


@dataclass
class _RecordScan:
    """How far the search for the end of the buffer's records has got."""

    position: int = 0
    lines: int = 0  # newlines inside the unfinished record so far
    quoted: bool = False
    closed_at: int = -2  # where the last quoted field's closing quote was

    def discard(self, characters: int) -> None:
        """The buffer lost its first `characters` characters."""
        self.position -= characters
        self.closed_at -= characters


def _scan_quotes(
    text: str, scan: _RecordScan, field_starts: tuple[str, ...], *, first_only: bool
) -> int:
    """Moves `scan` to the end of `text` (or to the first record end, with `first_only`);
    returns the index of the last (first) newline that ends a record, or -1.

    A quote opens a quoted field only at the start of a field, as the csv module reads it;
    elsewhere it is a plain character, so a stray quote cannot swallow later rows."""
    last = -1
    for found in _QUOTE_OR_NEWLINE.finditer(text, scan.position):
        at = found.start()
        if text[at] == "\n":
            scan.lines += 1
            if not scan.quoted:
                if first_only:
                    scan.position = at + 1
                    return at
                last, scan.lines = at, 0
        elif scan.quoted:
            scan.quoted, scan.closed_at = False, at
        elif at == 0 or text[at - 1] in field_starts or scan.closed_at == at - 1:
            scan.quoted = True
    scan.position = len(text)
    return last


def _record_line_count(lines: list[str], start: int, field_starts: tuple[str, ...]) -> int:
    """How many of `lines` from `start` on make up one record."""
    text = "".join(lines[start:])
    end = _scan_quotes(text, _RecordScan(), field_starts, first_only=True)
    return len(lines) - start if end < 0 else text.count("\n", 0, end) + 1


def _text_in(lines: list[str]) -> bool:
    """Whether a record that read as one empty cell is more than a blank line (`""`)."""
    return bool("".join(lines).strip())


class _Lines:
    """The lines the csv reader reads: it asks for the next only inside a quoted field, so
    after each record `index` is where the next begins."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.index = 0

    def reset(self, lines: list[str]) -> None:
        self.lines, self.index = lines, 0

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        index = self.index
        if index >= len(self.lines):
            raise StopIteration
        self.index = index + 1
        return self.lines[index]


# What a report writes in its claim id column on a totals row.
_TOTALS = re.compile(r"(?:grand |sub-?)?totals?:?", re.IGNORECASE)
# The first cell of a totals row without a claim id may say more: "Total for Aetna",
# "Total: 12 claims", "Total (Aetna)", "Aetna Total", "Aetna Subtotal:".
_TOTALS_LABEL = re.compile(
    r"(?:grand |sub-?)?totals?(?:\s+for\b.*|\s*[:(].*)?|.*\s(?:grand |sub-?)?totals?:?",
    re.IGNORECASE | re.DOTALL,
)
# A payer's heading in a report grouped by payer: a name of the payer column, a colon and the
# payer ("Payer: Aetna", "Insurance Name: Cigna"), in one cell or the name in the next.
_HEADING = re.compile(r"(?P<label>[^:]{1,40}):(?P<payer>.*)", re.DOTALL)


def _payer_heading(cells: Sequence[str]) -> str | None:
    """The payer a row names if it is a payer's heading, else None."""
    filled = [cell.strip() for cell in cells if cell.strip()]
    if not 0 < len(filled) <= 2:
        return None
    found = _HEADING.fullmatch(filled[0])
    if found is None or _ALIAS_INDEX.get(_header_key(found.group("label"))) != "payer":
        return None
    # The payer after the colon, else in the next cell ("Payer:" | "Aetna"); a count or sum
    # beside a named payer is no part of its name.
    return found.group("payer").strip() or (filled[1] if len(filled) == 2 else None)


def _shown(cells: Sequence[str]) -> str:
    """A row of one or two filled cells as a person reads it (a heading)."""
    return " ".join(cell.strip() for cell in cells if cell.strip())[:80]


# Lines a report may print above its header (title, run date, filters) before a file is
# taken to have no header.
MAX_LINES_ABOVE_HEADER = 20


def header_problem(
    cells: list[str],
    line: int,
    column_map: Mapping[str, str] | None = None,
    *,
    above: list[str] | None = None,
) -> FileError | None:
    """Why `cells`, on `line`, are not a header the parser reads (with `column_map`, if the
    upload has one); None when they are one: every required column is there under a name it
    knows. Given the row `above` them, also None when that row is a header without a payer
    column and `cells` a payer's heading: a report grouped by payer begins there."""
    error, _ = _header_problem(cells, line, column_map)
    if error is None or above is None or _payer_heading(cells) is None:
        return error
    _, missing = _header_problem(above, line - 1, column_map)
    mapped = column_map is not None and "payer" in column_map
    return None if missing == ("payer",) and not mapped else error


def _header_problem(
    cells: list[str], line: int, column_map: Mapping[str, str] | None
) -> tuple[FileError | None, tuple[str, ...]]:
    """Why `cells` are not a header (None: they are), and the required columns they lack
    when that is why."""
    try:
        for _ in CsvParser(column_map)._header(cells, line):
            pass
    except _NotAHeaderError as not_header:
        return not_header.error, not_header.missing
    except FileError as error:
        return error, ()
    return None, ()


class _NotAHeaderError(Exception):
    """The line read as the header is not one; `error` says why, `missing` the required
    columns it lacks (if that is why)."""

    def __init__(self, error: FileError, missing: tuple[str, ...] = ()) -> None:
        super().__init__(str(error))
        self.error = error
        self.missing = missing


@dataclass(frozen=True)
class _HeaderLine:
    """A line read as the header that was not taken as one (yet): its cells, line number,
    text, and why not."""

    cells: list[str]
    line: int
    record: str
    error: FileError


def _lines_above_header(lines: list[tuple[int, str]], header_line: int) -> UploadWarning:
    first, text = lines[0]
    shown = text.strip()[:80]
    return UploadWarning(
        "LINES_ABOVE_HEADER",
        f"{counted(len(lines), 'line')} above the header (line "
        f"{header_line}) {'were' if len(lines) > 1 else 'was'} skipped, from line {first}: "
        f"{shown!r}",
        first,
    )


# How a rejection names the delimiter a value must be quoted for.
_SEPARATOR_NAMES = {",": "commas", ";": "semicolons", "\t": "tabs", "|": "pipes"}


class _Semicolon(csv.excel):
    """European exports: columns separated by semicolons (the comma is the decimal mark)."""

    delimiter = ";"


class _Tab(csv.excel):
    """Tab-delimited exports (often saved as .txt or .tsv)."""

    delimiter = "\t"


class _Pipe(csv.excel):
    """Pipe-delimited exports, as many practice-management and EHR reports write them."""

    delimiter = "|"


_DIALECTS: dict[str, type[csv.Dialect]] = {
    ",": csv.excel,
    ";": _Semicolon,
    "\t": _Tab,
    "|": _Pipe,
}
# Excel's first line naming the delimiter of the file (`sep=;`), before the header.
_SEPARATOR_HINT = re.compile(r"sep=([,;\t|])", re.IGNORECASE)


def _header_dialect(record: str) -> type[csv.Dialect]:
    """The dialect of a header line: the delimiter it holds most of outside quotes (a column
    name may hold another), commas where none is."""
    unquoted = _outside_quotes(record)
    return _DIALECTS[max(_DIALECTS, key=unquoted.count)]


def _outside_quotes(text: str) -> str:
    """`text` without what is inside double quotes (a quoted header may hold anything)."""
    return "".join(text.split('"')[::2])


def _read(columns: ClaimColumns, unread: set[int]) -> list[ClaimRecord | None]:
    """The claim of each row of `columns`; None for a row to be read on its own."""
    claims: list[ClaimRecord | None] = list(columns.records())
    for i in unread:
        claims[i] = None
    return claims


def _by_column(rows: list[list[str]]) -> Sequence[Sequence[str]]:
    return list(zip(*rows, strict=True)) if rows else []


def _even_columns(
    text: str, delimiter: str, width: int, limit: int
) -> tuple[int, list[list[str]]] | None:
    """The row count and the columns of plain `text` whose every line is a row of `width`
    cells (so not blank) of at most `limit` characters (a CRLF line's carriage return
    counted); None for any other text. Split at once, not line by line. Lines are measured
    in UTF-8 bytes, where a newline or delimiter is never part of another character: a line
    of more bytes than `limit` but not more characters is left to the line-by-line path."""
    if width < 2 or not text:
        return None
    raw = np.frombuffer(text.encode(errors="surrogatepass"), dtype=np.uint8)
    ends = np.flatnonzero(raw == _NEWLINE)
    if not text.endswith("\n"):
        ends = np.append(ends, len(raw))
    starts = np.concatenate(([0], ends[:-1] + 1))
    if int((ends - starts).max()) > limit:
        return None
    delimiters = np.add.reduceat((raw == ord(delimiter)).astype(np.int32), starts)
    if not np.all(delimiters == width - 1):
        return None
    rows = len(ends)
    flat = text.replace("\r\n", "\n") if "\r" in text else text
    cells = flat.replace("\n", delimiter).split(delimiter)
    # A last newline leaves one empty cell after the last row.
    return rows, [cells[column : rows * width : width] for column in range(width)]


_NEWLINE = ord("\n")


def _plain(text: str) -> bool:
    """Whether every line of `text` is one record whose cells splitting gives (no quotes, no
    NUL, every carriage return the end of a CRLF line)."""
    return '"' not in text and "\0" not in text and text.count("\r") == text.count("\r\n")


# A whole column of amounts as most exports write them (`1234.56`, or nothing), joined by
# newlines: what `parse_cents` reads on its quick path (or as None).
_PLAIN_AMOUNTS = re.compile(r"(?:[0-9]{1,12}\.[0-9]{2})?(?:\n(?:[0-9]{1,12}\.[0-9]{2})?)*")
# A cell of a text column that `_text` refuses or changes beyond stripping: a formula's start
# (or a minus) after stripping, at the start of a line of the stripped cells joined.
_TEXT_STARTS = ("\n=", "\n+", "\n@", "\n-")
# A cell of Excel's text formula: a quoted text and nothing else (`="0012345"`).
_EXCEL_TEXT = re.compile(r'\s*="([^"]*)"\s*')


def _excel_text(cell: str) -> str:
    found = _EXCEL_TEXT.fullmatch(cell)
    return found.group(1) if found else cell


# A cell `_Columns` could not read: its row is read on its own.
_UNREAD = object()


class _Columns:
    """The claims of rows of the header's width, each column read at once: repeated cells
    (dates, statuses, codes) looked up, amounts and texts checked for the whole column in
    one pass where they are all plain. A cell that is not plain is read by the same function
    `_claim` uses; if that refuses it, the row's claim is None (the row is read on its own).
    The claims equal those `_claim` makes of the same rows."""

    def __init__(self, parser: CsvParser, columns: Sequence[Sequence[str]], rows: int) -> None:
        """`columns`: each column's cells of the `rows` rows."""
        self._rows = rows
        self._columns = columns
        self._at = parser._at
        self._decimal_comma = parser._dialect is _Semicolon
        self._remarks = parser._remarks
        self._patient_parts = parser._patient_parts
        self._unread: set[int] = set()

    def claims(self, line_numbers: list[int]) -> list[ClaimRecord | None]:
        """The claim of each row, in order (`line_numbers`: the rows' lines); None for a row
        to be read on its own."""
        if not self._rows:
            return []
        return _read(*self.read(line_numbers))

    def read(self, line_numbers: list[int]) -> tuple[ClaimColumns, set[int]]:
        """The claims of the rows as columns, and the rows to be read on their own (their
        entries in the columns mean nothing)."""
        (
            claim_at, payer_at, payer_id_at, code_at, service_at, submitted_at, decision_at,
            status_at, billed_at, allowed_at, paid_at, patient_at, carc_at, control_at,
        ) = self._at  # fmt: skip
        rows = self._rows
        statuses = self._looked_up(status_at, _status)
        decisions = self._looked_up(decision_at, _date)
        pending = ClaimStatus.PENDING
        if pending in statuses:
            decisions = [
                None if status is pending else day
                for status, day in zip(statuses, decisions, strict=True)
            ]
        if None in decisions:
            # Decided without a decision date: `_claim` says so.
            self._unread.update(
                i
                for i, (status, day) in enumerate(zip(statuses, decisions, strict=True))
                if day is None and status is not pending
            )
        stated = [status is not None for status in statuses] if None in statuses else [True] * rows
        reasons: dict[str, Any] = {}
        if None in statuses:
            statuses = [status or ClaimStatus.PAID for status in statuses]
        columns = ClaimColumns(
            line_numbers,
            self._texts(claim_at, "claim_id", required=True),
            self._texts(payer_at, "payer", required=True),
            self._texts(payer_id_at, "payer_id", required=False),
            statuses,
            stated,
            self._looked_up(code_at, _procedure_codes),
            self._looked_up(service_at, _date),
            self._looked_up(submitted_at, _date),
            decisions,
            _zero_if_none(self._amounts(billed_at, "billed_amount")),
            self._amounts(allowed_at, "allowed_amount"),
            _zero_if_none(self._amounts(paid_at, "paid_amount")),
            self._patient_share(patient_at),
            self._looked_up(carc_at, _adjustments, reasons),
            self._texts(control_at, "payer_claim_control_number", required=False),
        )
        if remarked := {cell for cell in reasons if _remarks(cell)}:
            self._note_remarks(self._column(carc_at), remarked, line_numbers)
        return columns, self._unread

    def _note_remarks(
        self, column: Sequence[str], remarked: set[str], line_numbers: list[int]
    ) -> None:
        """Note the rows read here whose reason codes list remark codes (those read on their
        own are noted as they are)."""
        rows = [i for i, cell in enumerate(column) if cell in remarked and i not in self._unread]
        if rows:
            self._remarks.note(line_numbers[rows[0]], _remarks(column[rows[0]])[0], len(rows))

    def _column(self, at: int) -> Sequence[str]:
        # An absent column (-1) reads as empty cells, as `_claim` reads it.
        return self._columns[at] if at >= 0 else ("",) * self._rows

    def _mark(self, values: list[Any]) -> list[Any]:
        """Rows whose value is _UNREAD are read on their own."""
        self._unread.update(i for i, value in enumerate(values) if value is _UNREAD)
        return values

    def _looked_up(
        self, at: int, read: Callable[[str], Any], known: dict[str, Any] | None = None
    ) -> list[Any]:
        """Each distinct cell of the column read once by `read` (a ValueError: unread), into
        `known` if given."""
        column = self._column(at)
        known = {} if known is None else known
        for cell in set(column):
            try:
                known[cell] = read(cell)
            except ValueError:
                known[cell] = _UNREAD
        values = list(map(known.__getitem__, column))
        return self._mark(values) if _UNREAD in known.values() else values

    def _patient_share(self, at: int) -> list[Any]:
        """The patient's share: its column, or its parts summed (a part not read leaves the
        row to be read on its own)."""
        if not self._patient_parts:
            return _zero_if_none(self._amounts(at, "patient_responsibility"))
        parts = [self._amounts(part_at, name) for name, part_at in self._patient_parts]
        return [sum(v for v in row if v.__class__ is int) for row in zip(*parts, strict=True)]

    def _amounts(self, at: int, name: str) -> list[int | None] | list[Any]:
        column = self._column(at)
        joined = "\n".join(column)
        if _PLAIN_AMOUNTS.fullmatch(joined):
            digits = joined.replace(".", "").split("\n")
            if "" not in digits:
                return list(map(int, digits))
            return [int(cell) if cell else None for cell in digits]
        values: list[Any] = []
        for cell in column:
            try:
                values.append(parse_cents(name, cell, decimal_comma=self._decimal_comma))
            except RowError:
                values.append(_UNREAD)
        return self._mark(values)

    def _texts(self, at: int, name: str, *, required: bool) -> list[str] | list[Any]:
        column = self._column(at)
        stripped = list(map(str.strip, column))
        joined = "\n" + "\n".join(stripped) + "\n"
        if name == "claim_id" and ("otal" in joined or "OTAL" in joined):
            # A totals row is read on its own, which says what it is.
            self._mark([_UNREAD if _TOTALS.fullmatch(cell) else cell for cell in stripped])
        if (
            not any(start in joined for start in _TEXT_STARTS)
            and not (required and "\n\n" in joined)
            and (name != "claim_id" or max(map(len, stripped)) <= MAX_CLAIM_ID_LENGTH)
        ):
            return stripped
        read = (
            _claim_id if name == "claim_id" else functools.partial(_text, name, required=required)
        )
        values: list[Any] = []
        for cell in column:
            try:
                values.append(read(cell))
            except RowError:
                values.append(_UNREAD)
        return self._mark(values)


def _zero_if_none(values: list[Any]) -> list[Any]:
    return [value or 0 for value in values] if None in values else values


# Read once per spelling: a file repeats a few statuses a million times.
@functools.lru_cache(maxsize=1024)
def _status(raw: str) -> ClaimStatus | None:
    """A status cell as `_claim` reads it: None when empty or when it says only that the
    claim was decided; ValueError when unknown."""
    text = " ".join(re.split(r"[\s_\-]+", raw.upper())).strip()
    if not text or text in _DECIDED_STATUSES:
        return None
    status = _STATUSES.get(text)
    if status is None:
        raise ValueError(raw)
    return status


# Between a claim's codes in one cell (`99213; 36415`), or a code and its modifier (`99213 25`).
_CODE_SEPARATORS = re.compile(r"[;,|\s]+")
_MODIFIER = re.compile(r"[A-Z0-9]{2}")


@functools.lru_cache(maxsize=8192)
def _procedure_codes(raw: str) -> tuple[str, ...]:
    """A cell's CPT/HCPCS codes: one, with or without its modifiers (`99213`, `99213-25`,
    `99213:25`, `99213 25`), or a claim's several (`99213; 36415`, `99213, 36415`,
    `99213|36415`); ValueError naming the cell when one is not a code."""
    text = raw.strip().upper()
    codes: list[str] = []
    for token in _CODE_SEPARATORS.split(text):
        if not token or (codes and _MODIFIER.fullmatch(token)):
            continue
        try:
            codes.append(_procedure_code(token))
        except ValueError:
            raise ValueError(text) from None
    return tuple(dict.fromkeys(codes))
